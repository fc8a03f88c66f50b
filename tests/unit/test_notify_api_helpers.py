"""The pure parts of notify's API: inbox months and cursors, masking in admin answers, ad-hoc
ids and the "why" explanation."""

from datetime import UTC, datetime, timedelta

from services.notify import admin, inbox
from services.notify.preferences import opted_out_channels, preferences_out

NOW = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


def test_months_back_and_between_cross_the_year():
    assert inbox.months_back("2026-02", 4) == ["2026-02", "2026-01", "2025-12", "2025-11"]
    assert inbox.months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01",
                                                          "2026-02"]
    assert inbox.months_between("2026-03", "2026-02") == []
    assert inbox.month_of(datetime(2026, 11, 30, 20, tzinfo=UTC)) == "2026-11"


def test_items_of_a_month_newest_first_and_after_a_cursor():
    doc = {"items": {"a": {"at": NOW, "title": "A"},
                     "b": {"at": NOW - timedelta(hours=1), "title": "B"},
                     "c": {"at": NOW, "title": "C"}}}
    items = inbox.sorted_items(doc)
    assert [i["id"] for i in items] == ["c", "a", "b"]
    assert [i["id"] for i in inbox.after_cursor(items, {"at": NOW, "id": "c"})] == ["a", "b"]
    assert inbox.sorted_items({}) == []


def test_preferences_default_opted_in():
    assert opted_out_channels(None) == {"whatsapp": False, "sms": False, "email": False,
                                        "inapp": False}
    out = preferences_out("p", {"channels": {"sms": {"opted_out": True}}})
    assert out["channels"]["sms"] == {"opted_out": True} and out["person"] == "p"


def test_adhoc_ids_depend_on_caller_and_key_only():
    assert admin.adhoc_ids("svc", "k-00000001") == admin.adhoc_ids("svc", "k-00000001")
    assert admin.adhoc_ids("svc", "k-00000001") != admin.adhoc_ids("other", "k-00000001")
    assert len(admin.adhoc_ids("svc", "k-00000001")[1]) == 32


def test_shown_masks_what_the_admin_did_not_give():
    shown = admin.Shown(phone="+6281234567890")
    assert shown.address("whatsapp", "+6281234567890") == "+6281234567890"
    assert shown.address("sms", "+6281298765432") == "+62812****5432"
    assert shown.address("email", "budi@example.go.id") == "b***@example.go.id"
    assert admin.Shown(email="budi@example.go.id").address(
        "email", "budi@example.go.id") == "budi@example.go.id"
    assert shown.address("inapp", "198609262015051001") == "198609262015051001"
    recipient = shown.recipient({"phone": "+6281298765432", "email": None, "name": "Budi"})
    assert recipient == {"phone": "+62812****5432", "email": None, "name": "Budi"}


def test_notification_out_masks_numbers_in_the_content():
    doc = {"_id": "x", "recipient": {"phone": "+6281298765432"}, "_outbox": [1],
           "idempotency": {"body_sha256": "s"},
           "deliveries": [{"channel": "sms", "address": "+6281298765432"}],
           "content": {"sms": {"text": "Hubungi 081298765432 untuk info"}}}
    out = admin.notification_out(doc, admin.Shown())
    assert "_outbox" not in out and "idempotency" not in out and out["id"] == "x"
    assert out["deliveries"][0]["address"] == "+62812****5432"
    assert "081298765432" not in out["content"]["sms"]["text"]


def _doc(**more):
    base = {"_id": "n1", "rule": "permit_registered", "priority": "normal",
            "event": {"id": "e1", "type": "permit.registered"},
            "recipient": {"person": "p1", "phone": "+6281298765432", "email": None},
            "channels": ["whatsapp", "sms"], "state": "created", "reason": None,
            "deliveries": [], "created_at": NOW}
    return {**base, **more}


QUIET = {"window": "21:00-06:00", "timezone": "Asia/Jakarta"}


def explain(doc, preferences=None, addresses=None, pending=None):
    return admin.explain(doc, preferences=preferences or {}, addresses=addresses or {},
                         pending=pending, quiet=QUIET, now=NOW)


def test_explain_quiet_hours_deferral():
    due = NOW + timedelta(hours=3)
    lines = explain(_doc(state="deferred", reason="quiet_hours", due_at=due),
                    pending={"due_at": due, "reason": "quiet_hours"})
    assert "quiet hours 21:00-06:00 in Asia/Jakarta" in lines[-1]
    assert lines[0].startswith("Created") and "permit.registered" in lines[0]


def test_explain_opt_out_and_fallback():
    doc = _doc(state="sent", channel="sms", deliveries=[
        {"channel": "whatsapp", "state": "skipped", "attempts": [], "statuses": []},
        {"channel": "sms", "state": "sent", "attempts": [
            {"n": 1, "at": NOW, "outcome": "ok"}], "statuses": []}])
    lines = explain(doc, preferences={"whatsapp": True},
                    addresses={"whatsapp": {"opted_out": True, "opted_at": NOW,
                                            "opted_by": "inbound"}})
    assert "whatsapp: the person opted out of it." in lines
    assert any(line.startswith("whatsapp: the address opted out") for line in lines)
    assert "sms: attempt 1 at 2026-12-06 05:00:00 UTC: ok" in lines
    assert lines[-1] == "Now sent on sms."


def test_explain_critical_and_unknown_outcome():
    doc = _doc(priority="critical", state="deferred", reason="unknown_outcome",
               channel="whatsapp", due_at=NOW, deliveries=[
                   {"channel": "whatsapp", "state": "sending", "attempts": [
                       {"n": 1, "at": NOW - timedelta(minutes=1), "outcome": "unknown",
                        "error": "timeout"}], "statuses": []}])
    lines = explain(doc, preferences={"whatsapp": True})
    assert any("critical" in line for line in lines)
    assert "whatsapp: the person opted out of it (ignored: critical)." in lines
    assert "outcome unknown" in lines[-1] and "no timer entry" in lines[-1]


def test_explain_attempt_without_result_after_a_crash():
    doc = _doc(state="sending", channel="whatsapp", deliveries=[
        {"channel": "whatsapp", "state": "sending", "attempts": [
            {"n": 1, "at": NOW - timedelta(minutes=5), "outcome": None,
             "lease_until": NOW - timedelta(minutes=4)}], "statuses": []}])
    assert any("no result recorded" in line for line in explain(doc))


def test_explain_cancelled_without_address_and_purged():
    lines = explain(_doc(state="cancelled", reason="no_address", rule="adhoc",
                         recipient={}, purged_at=NOW))
    assert lines[0].startswith("Sent ad hoc")
    assert any("no address" in line for line in lines)
    assert any(line.startswith("Cancelled: there was no phone number") for line in lines)
    assert "purged" in lines[-1]


def test_quiet_block():
    doc = _doc()
    night = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)  # 22:00 WIB
    block = admin.quiet_block(doc, "21:00-06:00", "Asia/Jakarta", None, night)
    assert block["applies"] and not block["deferred"]
    assert block["now_quiet_until"] == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    assert not admin.quiet_block(_doc(priority="critical"), "21:00-06:00", "Asia/Jakarta",
                                 None, night)["applies"]


def test_explain_a_desk_reply():
    assert explain(_doc(rule="desk"))[0].startswith("A reply of the WhatsApp service desk")
