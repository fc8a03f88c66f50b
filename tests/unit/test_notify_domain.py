"""Notify's rules (``services.notify.domain``): identities, the forward-only status machine,
error classes, backoff with jitter, quiet hours (wrapping midnight, other time zones) and the
transitions of a notification (fallback, retries, unknown outcomes settled by a status).

The expectations are written out from the issue (points 4-6) and DOMAIN "Notifications and
WhatsApp", not derived from the code they test."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify import domain
from services.notify.domain import Result

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Jakarta
RETRY = {"delays": [10, 60, 300], "jitter": 0.0, "unknown_window": 300}


def notification(channels=("whatsapp", "sms"), priority="normal", **recipient):
    return domain.new_notification(
        id=domain.notification_id("ev-1", "permit_registered", "applicant"),
        rule="permit_registered", priority=priority, template="permit_registered",
        event={"id": "ev-1", "type": "permit.registered", "source": "permits",
               "occurred_at": NOW, "opd": "3510.01"},
        recipient={"key": "applicant", "person": None, "name": "Siti",
                   "phone": "+6281234567890", "email": "siti@example.id",
                   "timezone": "Asia/Jakarta", **recipient},
        channels=list(channels),
        content={"whatsapp": {"template": "permit_registered", "language": "id",
                              "parameters": ["A-1"]}, "sms": {"text": "Terdaftar A-1"}},
        now=NOW)


def sending(doc, channel="whatsapp"):
    return domain.start_attempt(doc, channel, domain.address_of(doc, channel), NOW, 15)


# -- identities -----------------------------------------------------------------------------

def test_notification_id_is_stable_and_holds_no_personal_data():
    one = domain.notification_id("ev-1", "rule", "+6281234567890")
    assert one == domain.notification_id("ev-1", "rule", "+6281234567890")
    assert len(one) == 32 and "6281234567890" not in one
    assert one != domain.notification_id("ev-2", "rule", "+6281234567890")
    assert one != domain.notification_id("ev-1", "rule2", "+6281234567890")
    assert one != domain.notification_id("ev-1", "rule", "+6281234567891")


def test_callback_data_round_trips_and_rejects_foreign_values():
    data = domain.callback_data("abc123", "whatsapp", 2)
    assert data == "abc123:whatsapp:2"
    assert domain.parse_callback(data) == ("abc123", "whatsapp", 2)
    for foreign in (None, "", "x", "a:b:c", "abc:fax:1", "abc:sms:x", 5, "a b:sms:1"):
        assert domain.parse_callback(foreign) is None


def test_addresses_are_normalised_per_channel():
    assert domain.normalize_address("whatsapp", "0812-3456-7890") == "+6281234567890"
    assert domain.normalize_address("sms", "62 812 3456 7890") == "+6281234567890"
    assert domain.normalize_address("email", " Siti@Example.ID ") == "Siti@example.id"
    assert domain.normalize_address("inapp", "198609262015051001") == "198609262015051001"
    for channel, bad in (("whatsapp", "12345"), ("email", "no-at-sign"), ("inapp", " "),
                         ("fax", "1")):
        with pytest.raises(ValueError):
            domain.normalize_address(channel, bad)


def test_masked_addresses_hide_the_middle():
    assert domain.mask_address("whatsapp", "+6281234567890") == "+62812****7890"
    assert domain.mask_address("email", "siti@example.id") == "s***@example.id"
    assert domain.mask_address("inapp", "1986") is None


def test_new_notification_starts_created_with_nothing_sent():
    doc = notification()
    assert doc["state"] == "created" and doc["version"] == 1 and doc["round"] == 0
    assert doc["deliveries"] == [] and doc["channel"] == "whatsapp"
    with pytest.raises(ValueError):
        domain.new_notification(**{**_args(), "channels": ["fax"]})
    with pytest.raises(ValueError):
        domain.new_notification(**{**_args(), "priority": "urgent"})


def _args():
    return {"id": "x", "rule": "r", "priority": "normal", "template": "t", "event": {},
            "recipient": {}, "channels": ["sms"], "content": {}, "now": NOW}


# -- the status machine ---------------------------------------------------------------------

@pytest.mark.parametrize(("state", "status", "expected"), [
    ("sending", "sent", "sent"), ("sending", "delivered", "delivered"),
    ("sending", "read", "read"), ("sent", "delivered", "delivered"),
    ("sent", "read", "read"),  # delivered skipped: read at once
    ("delivered", "read", "read"),
    ("sent", "sent", None), ("delivered", "sent", None), ("read", "delivered", None),
    ("read", "sent", None),
    ("sending", "failed", "failed"), ("sent", "failed", "failed"),
    ("delivered", "failed", None), ("read", "failed", None), ("failed", "sent", None),
    ("failed", "delivered", None), ("sent", "bogus", None),
])
def test_advance_moves_forward_only(state, status, expected):
    assert domain.advance(state, status) == expected


@given(st.lists(st.sampled_from(domain.PROVIDER_STATUSES), max_size=12))
def test_any_order_of_statuses_never_moves_a_delivery_back(statuses):
    state, seen_rank = "sending", 1
    for status in statuses:
        new = domain.advance(state, status)
        if new is None:
            continue
        if new == "failed":
            assert seen_rank < domain.RANK["delivered"]
        else:
            assert domain.RANK[new] > seen_rank
            seen_rank = domain.RANK[new]
        state = new


# -- error classes and backoff --------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "kind"), [
    ({"status": 200}, domain.OK), ({"status": 202}, domain.OK),
    ({"status": 500}, domain.TEMPORARY), ({"status": 503}, domain.TEMPORARY),
    ({"status": 429}, domain.TEMPORARY), ({"status": 429, "code": 130429}, domain.TEMPORARY),
    ({"status": 400, "code": 130429}, domain.TEMPORARY),
    ({"status": 400, "code": 131026}, domain.PERMANENT),
    ({"status": 400, "code": 131047}, domain.PERMANENT),
    ({"status": 400}, domain.PERMANENT), ({"status": 404}, domain.PERMANENT),
    ({"status": 401}, domain.TECHNICAL), ({"status": 401, "code": 190}, domain.TECHNICAL),
    ({"status": 400, "code": 132001}, domain.TECHNICAL),
    ({"failure": "refused"}, domain.TEMPORARY), ({"failure": "timeout"}, domain.UNKNOWN),
    ({"failure": "lost"}, domain.UNKNOWN), ({"failure": "config"}, domain.TECHNICAL),
    ({"failure": "invalid"}, domain.PERMANENT),
])
def test_classify_by_error_class(kwargs, kind):
    assert domain.classify(**kwargs) == kind


def test_backoff_follows_the_schedule_with_bounded_jitter():
    delays = [10, 60, 300]
    assert domain.backoff_seconds(1, delays, 0.0) == 10
    assert domain.backoff_seconds(3, delays, 0.0) == 300
    assert domain.backoff_seconds(4, delays, 0.0) is None
    assert domain.backoff_seconds(0, delays, 0.0) is None
    assert domain.backoff_seconds(2, delays, 0.2, rand=lambda: 0.0) == pytest.approx(48)
    assert domain.backoff_seconds(2, delays, 0.2, rand=lambda: 1.0) == pytest.approx(72)


@given(st.integers(1, 3), st.floats(0, 0.5), st.floats(0, 1, exclude_max=True))
def test_backoff_stays_within_its_jitter(attempt, jitter, r):
    delays = [10, 60, 300]
    wait = domain.backoff_seconds(attempt, delays, jitter, rand=lambda: r)
    base = delays[attempt - 1]
    assert base * (1 - jitter) - 1e-9 <= wait <= base * (1 + jitter) + 1e-9


# -- quiet hours ----------------------------------------------------------------------------

JAKARTA = ZoneInfo("Asia/Jakarta")


@pytest.mark.parametrize(("local", "until"), [
    (datetime(2026, 3, 2, 22, 30), datetime(2026, 3, 3, 6, 0)),
    (datetime(2026, 3, 2, 21, 0), datetime(2026, 3, 3, 6, 0)),
    (datetime(2026, 3, 3, 2, 0), datetime(2026, 3, 3, 6, 0)),
    (datetime(2026, 3, 3, 5, 59), datetime(2026, 3, 3, 6, 0)),
    (datetime(2026, 3, 3, 6, 0), None), (datetime(2026, 3, 2, 12, 0), None),
    (datetime(2026, 3, 2, 20, 59), None),
])
def test_quiet_hours_wrap_midnight(local, until):
    got = domain.quiet_until(local.replace(tzinfo=JAKARTA), "21:00-06:00")
    assert got == (None if until is None else until.replace(tzinfo=JAKARTA))


def test_quiet_hours_within_one_day_and_off():
    noon = datetime(2026, 3, 2, 12, 30, tzinfo=JAKARTA)
    assert domain.quiet_until(noon, "12:00-13:00") == noon.replace(hour=13, minute=0)
    assert domain.quiet_until(noon, "") is None
    assert domain.quiet_until(noon, None) is None
    assert domain.parse_quiet_hours("21:00-06:00") == (time(21), time(6))
    assert domain.parse_quiet_hours("21:00:30-06:00") == (time(21, 0, 30), time(6))
    for bad in ("late", "25:00-06:00", "21:00"):
        with pytest.raises(ValueError):
            domain.parse_quiet_hours(bad)


def test_quiet_hours_follow_the_recipients_time_zone():
    now = datetime(2026, 3, 2, 13, 30, tzinfo=UTC)  # 20:30 WIB, 21:30 WITA, 22:30 WIT
    assert domain.quiet_until_utc(now, "Asia/Jakarta", "21:00-06:00") is None
    assert domain.quiet_until_utc(now, "Asia/Makassar", "21:00-06:00") == \
        datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 06:00 WITA
    assert domain.quiet_until_utc(now, "Asia/Jayapura", "21:00-06:00") == \
        datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # 06:00 WIT


# -- preferences and the 24 h window ----------------------------------------------------------

def test_preferences_and_window():
    prefs = {"channels": {"whatsapp": {"opted_out": True}, "sms": {"opted_out": False}}}
    assert domain.person_opted_out(prefs, "whatsapp")
    assert not domain.person_opted_out(prefs, "sms")
    assert not domain.person_opted_out(None, "email")
    assert domain.within_window({"last_inbound_at": NOW - timedelta(hours=23)}, NOW)
    assert not domain.within_window({"last_inbound_at": NOW - timedelta(hours=25)}, NOW)
    assert not domain.within_window(None, NOW)


# -- transitions ----------------------------------------------------------------------------

def test_a_claim_records_an_attempt_without_outcome():
    doc, n = sending(notification())
    assert n == 1 and doc["state"] == "sending"
    attempt = doc["deliveries"][0]["attempts"][0]
    assert attempt["outcome"] is None and attempt["lease_until"] == NOW + timedelta(seconds=15)
    assert domain.in_flight(doc) == attempt
    again, n2 = domain.start_attempt(doc, "whatsapp", "+6281234567890", NOW, 15)
    assert n2 == 2 and len(again["deliveries"]) == 1


def test_ok_makes_it_sent_with_one_event():
    doc, n = sending(notification())
    step = domain.record_result(doc, "whatsapp", n, Result("ok", provider_id="wamid.1"),
                                NOW, **RETRY)
    assert step.doc["state"] == "sent" and step.doc["deliveries"][0]["provider_id"] == "wamid.1"
    assert [t for t, _ in step.events] == ["notification.sent"]
    assert step.pending is None and not step.continue_now


def test_temporary_failures_retry_with_backoff_then_fail_over():
    doc, n = sending(notification())
    waits = []
    for _ in range(3):
        step = domain.record_result(doc, "whatsapp", n, Result("temporary", error="http 500"),
                                    NOW, **RETRY)
        assert step.doc["state"] == "temporary_failure" and step.pending[1] == "retry"
        waits.append((step.pending[0] - NOW).total_seconds())
        doc, n = domain.start_attempt(step.doc, "whatsapp", "+6281234567890", NOW, 15)
    assert waits == [10, 60, 300]
    step = domain.record_result(doc, "whatsapp", n, Result("temporary"), NOW, **RETRY)
    assert step.doc["deliveries"][0]["state"] == "permanent_failure"
    assert step.doc["state"] == "queued" and step.doc["channel"] == "sms"
    assert step.continue_now and step.events == []


def test_permanent_failure_falls_back_to_the_next_channel_then_fails():
    doc, n = sending(notification())
    step = domain.record_result(doc, "whatsapp", n,
                                Result("permanent", error="not_whatsapp_user", code=131026),
                                NOW, **RETRY)
    assert step.doc["state"] == "queued" and step.doc["channel"] == "sms" and step.continue_now
    doc, n = domain.start_attempt(step.doc, "sms", "+6281234567890", NOW, 15)
    step = domain.record_result(doc, "sms", n, Result("permanent", error="invalid_number"),
                                NOW, **RETRY)
    assert step.doc["state"] == "permanent_failure"
    assert [t for t, _ in step.events] == ["notification.failed"]


def test_technical_failure_everywhere_is_a_technical_failure():
    doc, n = sending(notification(channels=("whatsapp",)))
    step = domain.record_result(doc, "whatsapp", n, Result("technical", error="config"), NOW,
                                **RETRY)
    assert step.doc["state"] == "technical_failure"


def test_unknown_outcome_waits_for_a_status_and_the_status_settles_it():
    doc, n = sending(notification())
    step = domain.record_result(doc, "whatsapp", n, Result("unknown", error="timeout"), NOW,
                                **RETRY)
    assert step.doc["state"] == "deferred" and step.doc["reason"] == "unknown_outcome"
    assert step.pending == (NOW + timedelta(seconds=300), "unknown_outcome")
    later = NOW + timedelta(seconds=30)
    settled = domain.record_status(step.doc, "whatsapp", n, "wamid.9", "delivered", later,
                                   later)
    assert settled.doc["state"] == "delivered" and settled.unpend
    assert settled.doc["deliveries"][0]["attempts"][0]["outcome"] == "ok"
    assert [t for t, _ in settled.events] == ["notification.sent", "notification.delivered"]


def test_status_before_the_reply_is_kept_and_the_reply_moves_nothing_back():
    doc, n = sending(notification())
    early = domain.record_status(doc, "whatsapp", n, "wamid.1", "delivered", NOW, NOW)
    assert early.doc["state"] == "delivered"
    late = domain.record_result(early.doc, "whatsapp", n,
                                Result("ok", provider_id="wamid.1", latency_ms=80), NOW,
                                **RETRY)
    assert late.doc["state"] == "delivered" and late.events == []
    assert late.doc["deliveries"][0]["attempts"][0]["latency_ms"] == 80


def test_duplicate_and_out_of_order_statuses():
    doc, n = sending(notification())
    doc = domain.record_result(doc, "whatsapp", n, Result("ok", provider_id="w"), NOW,
                               **RETRY).doc
    read = domain.record_status(doc, "whatsapp", n, "w", "read", NOW, NOW)
    assert read.doc["state"] == "read" and [t for t, _ in read.events] == [
        "notification.delivered"]
    assert domain.record_status(read.doc, "whatsapp", n, "w", "read", NOW, NOW) is None
    late = domain.record_status(read.doc, "whatsapp", n, "w", "delivered", NOW, NOW)
    assert late.doc["state"] == "read" and late.events == []
    assert [s["status"] for s in late.doc["deliveries"][0]["statuses"]] == ["read",
                                                                            "delivered"]
    failed = domain.record_status(late.doc, "whatsapp", n, "w", "failed", NOW, NOW)
    assert failed.doc["state"] == "read" and failed.events == [] and not failed.continue_now


def test_a_failed_status_after_sent_falls_back():
    doc, n = sending(notification())
    doc = domain.record_result(doc, "whatsapp", n, Result("ok", provider_id="w"), NOW,
                               **RETRY).doc
    step = domain.record_status(doc, "whatsapp", n, "w", "failed", NOW, NOW,
                                error="131026")
    assert step.doc["state"] == "queued" and step.doc["channel"] == "sms" and step.continue_now


def test_skipping_every_channel_cancels():
    doc = notification()
    doc = domain.skip_channel(doc, "whatsapp", None, "skipped", "opted_out", NOW)
    assert doc["state"] == "queued" and doc["channel"] == "sms"
    doc = domain.skip_channel(doc, "sms", None, "skipped", "opted_out", NOW)
    assert doc["state"] == "cancelled" and doc["reason"] == "opted_out"


def test_unknown_outcomes_end_after_the_retries():
    doc, n = sending(notification(channels=("whatsapp",)))
    for _ in range(3):
        step = domain.record_result(doc, "whatsapp", n, Result("unknown"), NOW, **RETRY)
        assert step.doc["state"] == "deferred"
        doc, n = domain.start_attempt(step.doc, "whatsapp", "+6281234567890", NOW, 15)
    step = domain.record_result(doc, "whatsapp", n, Result("unknown"), NOW, **RETRY)
    assert step.doc["state"] == "permanent_failure" and step.doc["reason"] == \
        "retries_exhausted"


def test_event_data_masks_the_address():
    doc, n = sending(notification(person="198609262015051001"))
    data = domain.event_data(doc, "whatsapp", NOW)
    assert data["address_masked"] == "+62812****7890" and data["person"] == "198609262015051001"
    assert data["event_type"] == "permit.registered" and "6281234567890" not in str(data)


def test_a_kept_pacing_slot_is_used_unless_left_far_behind():
    doc = domain.defer(notification(), "paced", NOW, NOW,
                       slot={"channel": "whatsapp", "at": NOW})
    assert domain.kept_slot(doc, "whatsapp", NOW + timedelta(seconds=5), 6) == doc["slot"]
    assert domain.kept_slot(doc, "whatsapp", NOW + timedelta(seconds=7), 6) is None
    assert domain.kept_slot(doc, "sms", NOW, 6) is None
    assert domain.kept_slot(notification(), "whatsapp", NOW, 6) is None
