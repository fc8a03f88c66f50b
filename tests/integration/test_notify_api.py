"""The notify HTTP API against a running notify service (the ``notify`` fixture: real broker,
database, WhatsApp / SMTP / SMS stand-ins): the in-app inbox, preferences and opt-outs, the
ad-hoc send with its Idempotency-Key, the admin list and the "why did this person not get
it" view. Each state change is tested repeated, with bad input and concurrently."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pamong.testing import race, wait_until
from services.notify import store
from services.notify.rules import load as load_rules
from tests.integration.attendance_support import NIP_OTHER, NIP_STAFF, NIP_STAFF2
from tests.integration.notify_support import start_notify_process

pytestmark = pytest.mark.integration

API = "/api/notify/v1"
CITIZEN = "citizen-7f3a"  # a pemohon's account sub
TERMINAL = ("sent", "delivered", "read", "cancelled", "permanent_failure",
            "technical_failure")


# -- helpers ----------------------------------------------------------------------------------

def phone():
    """A fresh Indonesian mobile number per call (pacing is per address)."""
    return "+62813" + str(uuid.uuid4().int)[:8]


def token(notify, roles=("pegawai",), sub=None, nip=None, opd="3510.03.01"):
    return notify.client.token(roles=roles, opd=opd, sub=sub or nip or "admin-1", nip=nip)


def admin(notify):
    return token(notify, roles=("admin",), sub="admin-1", opd="3510")


def service(notify):
    return token(notify, roles=("service",), sub="permits-svc", opd=None)


def employee(notify, nip=NIP_STAFF):
    return token(notify, nip=nip)


def citizen(notify, sub=CITIZEN):
    return token(notify, roles=("pemohon",), sub=sub, opd=None)


def call(notify, method, path, tok, **kwargs):
    return notify.client.request(method, API + path, token=tok, **kwargs)


def send(notify, body, key=None, tok=None):
    headers = {} if key is False else {"Idempotency-Key": key or f"k-{uuid.uuid4().hex}"}
    return call(notify, "POST", "/notifications", tok or service(notify), json=body,
                headers=headers)


def inapp_body(person, title="Rapat", text="Rapat staf pukul 09.00", **more):
    return {"recipient": {"person": person}, "channels": ["inapp"],
            "content": {"inapp": {"title": title, "body": text}}, **more}


def wa_body(number, **more):
    return {"recipient": {"phone": number, "name": "Budi"}, "channels": ["whatsapp"],
            "content": {"whatsapp": {"template": "pemberitahuan_umum",
                                     "parameters": ["Budi", "jadwal layanan berubah"]}},
            **more}


def doc(notify, notification_id):
    return notify.db[store.NOTIFICATIONS].find_one({"_id": notification_id})


def settled(notify, notification_id, states=TERMINAL):
    return wait_until(lambda: (d := doc(notify, notification_id)) and d["state"] in states
                      and d, timeout=20, message=f"notification {notification_id} settled")


def inbox(notify, tok, **params):
    r = call(notify, "GET", "/inbox", tok, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def in_inbox(notify, tok, notification_id):
    return wait_until(lambda: any(i["id"] == notification_id
                                  for i in inbox(notify, tok, limit=200)["items"]),
                      timeout=20, message="the message in the inbox")


def unread(notify, tok):
    r = call(notify, "GET", "/inbox/unread", tok)
    assert r.status_code == 200, r.text
    return r.json()["unread"]


def deliver_inapp(notify, person, **more):
    r = send(notify, inapp_body(person, **more))
    assert r.status_code == 202, r.text
    return r.json()["id"]


# -- the in-app inbox -------------------------------------------------------------------------

def test_inbox_lists_newest_first_across_months_with_a_cursor(notify):
    tok = employee(notify)
    ids = []
    for n in range(3):  # one after the other: the inbox orders by arrival
        ids.append(deliver_inapp(notify, NIP_STAFF, title=f"Pesan {n}"))
        in_inbox(notify, tok, ids[-1])
    # two older messages, filed in earlier months by the in-app channel's own write
    now = datetime.now(UTC)
    older = [("a" * 32, now - timedelta(days=40)), ("b" * 32, now - timedelta(days=75))]
    for notification_id, at in older:
        store.inbox_write(notify.db, NIP_STAFF, notification_id,
                          {"title": "Lama", "body": "pesan lama", "at": at, "read_at": None,
                           "event_type": "leave.decided"}, at)
    first = inbox(notify, tok, limit=2)
    assert [i["title"] for i in first["items"]] == ["Pesan 2", "Pesan 1"]
    assert first["unread"] == 5 and first["next_cursor"]
    second = inbox(notify, tok, limit=2, cursor=first["next_cursor"])
    assert [i["id"] for i in second["items"]] == [ids[0], "a" * 32]
    third = inbox(notify, tok, limit=2, cursor=second["next_cursor"])
    assert [i["id"] for i in third["items"]] == ["b" * 32] and third["next_cursor"] is None
    # someone else's inbox is theirs: empty
    assert inbox(notify, employee(notify, NIP_STAFF2))["items"] == []


def test_mark_read_counts_once_on_repeat_and_unread_filter(notify):
    tok = citizen(notify)
    ids = [deliver_inapp(notify, CITIZEN) for _ in range(2)]
    for notification_id in ids:
        in_inbox(notify, tok, notification_id)
    assert unread(notify, tok) == 2
    r = call(notify, "POST", f"/inbox/{ids[0]}/read", tok)
    assert r.status_code == 200, r.text
    assert r.json()["unread"] == 1
    again = call(notify, "POST", f"/inbox/{ids[0]}/read", tok)
    assert again.status_code == 200
    assert again.json() == r.json()  # the first read_at, the same count
    assert unread(notify, tok) == 1
    assert [i["id"] for i in inbox(notify, tok, unread="true")["items"]] == [ids[1]]
    listed = {i["id"]: i for i in inbox(notify, tok)["items"]}
    assert listed[ids[0]]["read_at"] is not None and listed[ids[1]]["read_at"] is None


def test_mark_read_concurrent_requests_count_once(notify):
    tok = employee(notify, NIP_OTHER)
    ids = [deliver_inapp(notify, NIP_OTHER) for _ in range(2)]
    for notification_id in ids:
        in_inbox(notify, tok, notification_id)
    results = race(range(6), lambda _: call(notify, "POST", f"/inbox/{ids[0]}/read", tok))
    assert {r.status_code for r in results} == {200}
    assert len({r.json()["read_at"] for r in results}) == 1
    assert unread(notify, tok) == 1


def test_mark_read_after_a_crash_between_its_writes_counts_once(notify):
    tok = employee(notify, NIP_STAFF2)
    notification_id = deliver_inapp(notify, NIP_STAFF2)
    in_inbox(notify, tok, notification_id)
    assert unread(notify, tok) == 1
    # what a crash after the item's write and before the count leaves behind
    month = next(d["_id"] for d in notify.db[store.INBOX].find(
        {f"items.{notification_id}": {"$exists": True}}))
    notify.db[store.INBOX].update_one(
        {"_id": month}, {"$set": {f"items.{notification_id}.read_at": datetime.now(UTC)}})
    assert unread(notify, tok) == 1
    for _ in range(2):
        r = call(notify, "POST", f"/inbox/{notification_id}/read", tok)
        assert r.status_code == 200, r.text
        assert r.json()["unread"] == 0
    assert unread(notify, tok) == 0


def test_mark_read_bad_input_and_roles(notify):
    tok = employee(notify)
    notification_id = deliver_inapp(notify, NIP_STAFF)
    in_inbox(notify, tok, notification_id)
    assert call(notify, "POST", "/inbox/not-an-id/read", tok).status_code == 404
    assert call(notify, "POST", f"/inbox/{'c' * 32}/read", tok).status_code == 404
    # another person's message is not in my inbox (404, nothing changes)
    other = employee(notify, NIP_OTHER)
    assert call(notify, "POST", f"/inbox/{notification_id}/read", other).status_code == 404
    assert unread(notify, tok) >= 1
    assert call(notify, "GET", "/inbox", None).status_code == 401
    assert call(notify, "GET", "/inbox", service(notify)).status_code == 403
    r = call(notify, "GET", "/inbox", tok, params={"cursor": "garbage"})
    assert r.status_code == 400
    assert call(notify, "GET", "/inbox", tok, params={"limit": 0}).status_code == 422


# -- preferences and opt-outs ---------------------------------------------------------------

def test_own_preferences_default_set_repeat_and_keep_other_channels(notify):
    tok = citizen(notify, "citizen-prefs")
    r = call(notify, "GET", "/preferences", tok)
    assert r.status_code == 200
    assert r.json()["channels"] == {c: {"opted_out": False}
                                    for c in ("whatsapp", "sms", "email", "inapp")}
    body = {"channels": {"whatsapp": {"opted_out": True}}}
    first = call(notify, "PUT", "/preferences", tok, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["channels"]["whatsapp"] == {"opted_out": True}
    assert first.json()["person"] == "citizen-prefs"
    again = call(notify, "PUT", "/preferences", tok, json=body)
    assert again.json()["channels"] == first.json()["channels"]
    call(notify, "PUT", "/preferences", tok, json={"channels": {"email": {"opted_out": True}}})
    shown = call(notify, "GET", "/preferences", tok).json()["channels"]
    assert shown["whatsapp"]["opted_out"] and shown["email"]["opted_out"]
    assert not shown["sms"]["opted_out"]
    assert "critical" in call(notify, "GET", "/preferences", tok).json()["note"].lower()


def test_preferences_bad_input_changes_nothing(notify):
    tok = employee(notify)
    for body in ({"channels": {"fax": {"opted_out": True}}},
                 {"channels": {"whatsapp": {"opted_out": "maybe"}}},
                 {"channels": {"whatsapp": {}}}, {"whatsapp": True}, {}):
        r = call(notify, "PUT", "/preferences", tok, json=body)
        assert r.status_code == 422, (body, r.text)
    assert notify.db[store.PEOPLE].find_one({"_id": NIP_STAFF}) is None


def test_preferences_concurrent_changes_of_two_channels_both_land(notify):
    tok = employee(notify, NIP_STAFF2)
    bodies = [{"channels": {c: {"opted_out": True}}} for c in ("whatsapp", "sms", "email")]
    results = race(bodies, lambda body: call(notify, "PUT", "/preferences", tok, json=body))
    assert {r.status_code for r in results} == {200}
    shown = call(notify, "GET", "/preferences", tok).json()["channels"]
    assert shown == {"whatsapp": {"opted_out": True}, "sms": {"opted_out": True},
                     "email": {"opted_out": True}, "inapp": {"opted_out": False}}


def test_admin_sets_a_persons_preferences_others_may_not(notify):
    body = {"channels": {"sms": {"opted_out": True}}}
    path = f"/people/{NIP_OTHER}/preferences"
    assert call(notify, "PUT", path, employee(notify), json=body).status_code == 403
    assert call(notify, "GET", path, service(notify)).status_code == 403
    r = call(notify, "PUT", path, admin(notify), json=body)
    assert r.status_code == 200, r.text
    assert r.json()["updated_by"] == "admin-1"
    own = call(notify, "GET", "/preferences", employee(notify, NIP_OTHER)).json()
    assert own["channels"]["sms"] == {"opted_out": True}
    assert call(notify, "GET", "/people/bad person!/preferences",
                admin(notify)).status_code == 404


def test_address_opt_out_normalises_repeats_and_refuses_bad_input(notify):
    tok = admin(notify)
    number = phone()
    local = "0" + number[3:]
    r = call(notify, "PUT", f"/addresses/whatsapp/{local}", tok, json={"opted_out": True})
    assert r.status_code == 200, r.text
    assert r.json()["address"] == number and r.json()["opted_out"] is True
    opted_at = r.json()["opted_at"]
    again = call(notify, "PUT", f"/addresses/whatsapp/{number}", tok, json={"opted_out": True})
    assert again.json()["opted_at"] == opted_at  # a repeat changes nothing
    shown = call(notify, "GET", f"/addresses/whatsapp/{number}", tok).json()
    assert shown["opted_out"] is True and shown["opted_by"] == "admin-1"
    assert notify.db[store.ADDRESSES].find_one({"_id": f"whatsapp:{number}"})["opted_out"]
    assert call(notify, "PUT", "/addresses/whatsapp/12345", tok,
                json={"opted_out": True}).status_code == 422
    assert call(notify, "PUT", "/addresses/fax/123", tok,
                json={"opted_out": True}).status_code == 404
    assert call(notify, "PUT", f"/addresses/sms/{number}", tok,
                json={"opted_out": "yes"}).status_code == 422
    assert call(notify, "PUT", f"/addresses/sms/{number}", employee(notify),
                json={"opted_out": True}).status_code == 403
    email = call(notify, "PUT", "/addresses/email/Budi@Example.GO.ID", tok,
                 json={"opted_out": True})
    assert email.status_code == 200 and email.json()["address"] == "Budi@example.go.id"


def test_address_opt_out_concurrent_requests_agree(notify):
    tok = admin(notify)
    number = phone()
    results = race([True, True, True, True], lambda value: call(
        notify, "PUT", f"/addresses/sms/{number}", tok, json={"opted_out": value}))
    assert {r.status_code for r in results} == {200}
    assert notify.db[store.ADDRESSES].count_documents({"_id": f"sms:{number}"}) == 1
    assert notify.db[store.ADDRESSES].find_one({"_id": f"sms:{number}"})["opted_out"] is True


def test_opt_out_skips_the_channel_and_critical_ignores_it(notify):
    number = phone()
    call(notify, "PUT", f"/addresses/whatsapp/{number}", admin(notify),
         json={"opted_out": True})
    skipped = send(notify, {**wa_body(number), "channels": ["whatsapp", "sms"],
                            "content": {**wa_body(number)["content"],
                                        "sms": {"text": "Jadwal layanan berubah."}}})
    assert skipped.status_code == 202, skipped.text
    final = settled(notify, skipped.json()["id"])
    assert final["channel"] == "sms" and final["state"] in ("sent", "delivered")
    assert notify.wa.received(to=number[1:]) == []
    critical = send(notify, wa_body(number, priority="critical"))
    settled(notify, critical.json()["id"])
    wait_until(lambda: len(notify.wa.received(to=number[1:])) == 1, timeout=20,
               message="the critical message on WhatsApp despite the opt-out")


# -- the ad-hoc send --------------------------------------------------------------------------

def test_send_delivers_once_and_a_repeat_answers_the_first(notify):
    number = phone()
    key = f"k-{uuid.uuid4().hex}"
    first = send(notify, wa_body(number), key=key)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["rule"] == "adhoc" and body["event"]["type"] is None
    assert body["recipient"]["phone"] != number and body["recipient"]["phone"].endswith(
        number[-4:])  # masked
    settled(notify, body["id"])
    again = send(notify, wa_body(number), key=key)
    assert again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == body["id"]
    sent = notify.wa.received(to=number[1:])
    assert len(sent) == 1
    assert sent[0]["template"]["name"] == "pemberitahuan_umum"
    assert notify.db[store.NOTIFICATIONS].count_documents({"_id": body["id"]}) == 1


def test_send_concurrent_requests_with_one_key_make_one_message(notify):
    number = phone()
    key = f"k-{uuid.uuid4().hex}"
    results = race(range(6), lambda _: send(notify, wa_body(number), key=key))
    assert {r.status_code for r in results} == {202}, [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    settled(notify, results[0].json()["id"])
    assert len(notify.wa.received(to=number[1:])) == 1


def test_send_one_key_to_two_replicas_at_once_makes_one_message(config, notify):
    other = start_notify_process(config, notify.settings)
    try:
        number = phone()
        key = f"k-{uuid.uuid4().hex}"
        clients = [notify.client, other.client] * 3
        results = race(clients, lambda client: client.request(
            "POST", f"{API}/notifications", token=service(notify), json=wa_body(number),
            headers={"Idempotency-Key": key}))
        assert {r.status_code for r in results} == {202}, [r.text for r in results]
        assert len({r.json()["id"] for r in results}) == 1
        settled(notify, results[0].json()["id"])
        assert len(notify.wa.received(to=number[1:])) == 1
    finally:
        other.stop()


def test_send_same_key_with_another_body_is_refused(notify):
    key = f"k-{uuid.uuid4().hex}"
    assert send(notify, wa_body(phone()), key=key).status_code == 202
    r = send(notify, wa_body(phone()), key=key)
    assert r.status_code == 422
    assert "Idempotency-Key" in r.json()["errors"]


def test_send_requires_a_key_and_a_sender_role(notify):
    body = inapp_body(NIP_STAFF)
    r = send(notify, body, key=False)
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["errors"]
    assert send(notify, body, key="short").status_code == 400
    assert send(notify, body, tok=employee(notify)).status_code == 403
    assert send(notify, body, tok=admin(notify)).status_code == 202
    assert call(notify, "POST", "/notifications", None, json=body).status_code == 401


@pytest.mark.parametrize(("body", "field"), [
    ({"recipient": {"phone": "12345"}, "channels": ["sms"],
      "content": {"sms": {"text": "x"}}}, "recipient.phone"),
    ({"recipient": {"person": CITIZEN}, "channels": ["whatsapp"],
      "content": {"whatsapp": {"text": "x"}}}, "channels"),
    ({"recipient": {"person": CITIZEN}, "channels": ["inapp"]}, "_schema"),
    ({"recipient": {"person": CITIZEN}, "channels": ["inapp"], "template": "permit_registered",
      "content": {"inapp": {"title": "t", "body": "b"}}}, "_schema"),
    ({"recipient": {"person": CITIZEN}, "channels": ["inapp", "sms"],
      "content": {"inapp": {"title": "t", "body": "b"}}}, "content.sms"),
    ({"recipient": {"person": CITIZEN}, "channels": ["pager"],
      "content": {"inapp": {"title": "t", "body": "b"}}}, "channels.0"),
    ({"recipient": {"person": CITIZEN}, "channels": ["inapp", "inapp"],
      "content": {"inapp": {"title": "t", "body": "b"}}}, "channels"),
    ({"recipient": {"phone": "081234567890"}, "channels": ["sms"],
      "content": {"sms": {"text": "x" * 919}}}, "content.sms.text"),
    ({"recipient": {"person": CITIZEN}, "channels": ["inapp"], "template": "no_such_template",
      "data": {}}, "template"),
    ({"recipient": {"person": CITIZEN}, "channels": ["inapp"], "priority": "urgent",
      "content": {"inapp": {"title": "t", "body": "b"}}}, "priority"),
    ({"recipient": {"person": CITIZEN}, "channels": ["inapp"], "surprise": 1,
      "content": {"inapp": {"title": "t", "body": "b"}}}, "surprise"),
])
def test_send_bad_input_is_422_and_stores_nothing(notify, body, field):
    before = notify.db[store.NOTIFICATIONS].count_documents({})
    r = send(notify, body)
    assert r.status_code == 422, r.text
    assert field in r.json()["errors"], r.json()
    assert notify.db[store.NOTIFICATIONS].count_documents({}) == before


def _template_with_sample(channel="inapp"):
    """A shipped template that has ``channel`` and a sample with at least one field."""
    for template in load_rules().templates.values():
        if channel in template.channels and template.sample:
            names = set(template.placeholders()) - {"recipient", "event", "links"}
            if names & set(template.sample):
                return template, sorted(names & set(template.sample))
    raise AssertionError("no shipped template with a sample")


def test_send_from_a_template_renders_it_and_names_a_missing_placeholder(notify):
    template, names = _template_with_sample()
    ok = send(notify, {"recipient": {"person": NIP_STAFF}, "channels": ["inapp"],
                       "template": template.name, "data": template.sample})
    assert ok.status_code == 202, ok.text
    content = doc(notify, ok.json()["id"])["content"]["inapp"]
    assert content["title"] and content["body"]
    assert ok.json()["recipient"]["name"]  # from the directory replica
    missing = {k: v for k, v in template.sample.items() if k != names[0]}
    r = send(notify, {"recipient": {"person": NIP_STAFF}, "channels": ["inapp"],
                      "template": template.name, "data": missing})
    assert r.status_code == 422, r.text
    assert f"data.{names[0]}" in r.json()["errors"]
    assert names[0] in r.json()["detail"]


def test_send_to_an_employee_takes_the_phone_from_the_directory(notify):
    r = send(notify, {"recipient": {"person": NIP_OTHER}, "channels": ["sms"],
                      "content": {"sms": {"text": "Mohon hadir rapat pukul 09.00."}}})
    assert r.status_code == 202, r.text
    stored = doc(notify, r.json()["id"])
    assert stored["recipient"]["phone"].startswith("+628")
    assert stored["recipient"]["name"] == "Agus Salim"


# -- admin: list and "why" ------------------------------------------------------------------

def test_admin_lists_newest_first_with_filters_masked_unless_looked_up(notify):
    number = phone()
    ids = []
    for n in range(3):
        r = send(notify, {"recipient": {"phone": number, "person": f"list-{n % 2}"},
                          "channels": ["inapp"],
                          "content": {"inapp": {"title": f"t{n}", "body": "b"}}})
        ids.append(r.json()["id"])
    for notification_id in ids:
        settled(notify, notification_id)
    tok = admin(notify)
    by_phone = call(notify, "GET", "/notifications", tok, params={"phone": "0" + number[3:]})
    assert by_phone.status_code == 200, by_phone.text
    assert [i["id"] for i in by_phone.json()["items"]] == ids[::-1]
    assert {i["recipient"]["phone"] for i in by_phone.json()["items"]} == {number}
    by_person = call(notify, "GET", "/notifications", tok, params={"person": "list-0"}).json()
    assert [i["id"] for i in by_person["items"]] == [ids[2], ids[0]]
    assert by_person["items"][0]["recipient"]["phone"] != number  # masked
    assert "****" in by_person["items"][0]["recipient"]["phone"]
    page1 = call(notify, "GET", "/notifications", tok,
                 params={"phone": number, "limit": 2}).json()
    page2 = call(notify, "GET", "/notifications", tok,
                 params={"phone": number, "limit": 2, "cursor": page1["next_cursor"]}).json()
    assert [i["id"] for i in page1["items"] + page2["items"]] == ids[::-1]
    assert page2["next_cursor"] is None
    states = call(notify, "GET", "/notifications", tok,
                  params={"person": "list-1", "state": "sent"}).json()["items"]
    assert [i["id"] for i in states] == [ids[1]]
    assert call(notify, "GET", "/notifications", tok,
                params={"state": "lost"}).status_code == 422
    assert call(notify, "GET", "/notifications", tok,
                params={"phone": "12"}).status_code == 422
    assert call(notify, "GET", "/notifications", service(notify)).status_code == 403
    assert call(notify, "GET", "/notifications", employee(notify)).status_code == 403


def test_why_view_shows_attempts_statuses_and_masks_the_phone(notify):
    notify.wa.auto_status = ["sent", "delivered"]
    number = phone()
    r = send(notify, wa_body(number))
    notification_id = r.json()["id"]
    settled(notify, notification_id, states=("delivered", "read"))
    tok = admin(notify)
    why = call(notify, "GET", f"/notifications/{notification_id}", tok)
    assert why.status_code == 200, why.text
    view = why.json()
    delivery = view["notification"]["deliveries"][0]
    assert delivery["channel"] == "whatsapp" and delivery["attempts"][0]["outcome"] == "ok"
    assert {s["status"] for s in delivery["statuses"]} >= {"sent", "delivered"}
    assert number not in why.text  # masked everywhere
    assert view["addresses"][0]["channel"] == "whatsapp"
    assert view["addresses"][0]["opted_out"] is False
    assert view["quiet_hours"]["window"] and view["pending"] is None
    assert any("attempt 1" in line for line in view["explanation"])
    looked_up = call(notify, "GET", f"/notifications/{notification_id}", tok,
                     params={"phone": number}).json()
    assert looked_up["notification"]["recipient"]["phone"] == number
    assert call(notify, "GET", f"/notifications/{'d' * 32}", tok).status_code == 404
    assert call(notify, "GET", "/notifications/../x", tok).status_code == 404
    assert call(notify, "GET", f"/notifications/{notification_id}",
                service(notify)).status_code == 403


def test_why_view_explains_an_opt_out(notify):
    person = "citizen-why"
    call(notify, "PUT", "/preferences", citizen(notify, person),
         json={"channels": {"inapp": {"opted_out": True}}})
    r = send(notify, inapp_body(person))
    notification_id = r.json()["id"]
    final = settled(notify, notification_id)
    assert final["state"] == "cancelled" and final["reason"] == "opted_out"
    view = call(notify, "GET", f"/notifications/{notification_id}", admin(notify)).json()
    assert view["preferences"]["inapp"] is True
    assert any("opted out" in line for line in view["explanation"])
    assert view["explanation"][-1].startswith("Cancelled")


def test_why_view_explains_a_quiet_hours_deferral(notify_with):
    night = notify_with(NOTIFY_QUIET_HOURS="00:00-23:59")  # always quiet
    number = phone()
    r = send(night, wa_body(number))
    assert r.status_code == 202, r.text
    notification_id = r.json()["id"]
    settled(night, notification_id, states=("deferred",))
    view = call(night, "GET", f"/notifications/{notification_id}", admin(night)).json()
    assert view["quiet_hours"]["deferred"] is True and view["quiet_hours"]["applies"] is True
    assert view["quiet_hours"]["window"] == "00:00-23:59"
    assert view["pending"]["reason"] == "quiet_hours"
    assert "quiet hours 00:00-23:59" in view["explanation"][-1]
    assert night.wa.received(to=number[1:]) == []
    # the list finds it by its event id and by the rule
    listed = call(night, "GET", "/notifications", admin(night),
                  params={"event": view["notification"]["event"]["id"]}).json()["items"]
    assert [i["id"] for i in listed] == [notification_id]
    assert listed[0]["state"] == "deferred" and listed[0]["reason"] == "quiet_hours"
    by_rule = call(night, "GET", "/notifications", admin(night),
                   params={"rule": "adhoc", "state": "deferred"}).json()["items"]
    assert notification_id in [i["id"] for i in by_rule]
