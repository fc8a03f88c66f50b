"""Provider webhooks against a running notify: Meta's handshake, signatures checked on the raw
body (a bad one stores nothing), statuses duplicated, out of order and ahead of the send's
reply (forward only), inbound messages stored once, SMS delivery reports."""

import json
import time

import pytest
import requests

from pamong.testing import EventRecorder, race, wait_until
from services.notify.standins.sms import signature as sms_signature
from services.notify.standins.whatsapp import signature
from tests.integration.notify_support import (
    WA_APP_SECRET,
    WA_VERIFY_TOKEN,
    adhoc,
    stored,
    wait_state,
)

pytestmark = pytest.mark.integration

PHONE = "+6281234567890"
DIGITS = PHONE[1:]


@pytest.fixture
def notify_events(config):
    rec = EventRecorder(config, "notify")
    yield rec
    rec.close()


def sent_whatsapp(notify, **kwargs):
    """An ad-hoc WhatsApp message, sent: (notification id, its send at the stand-in)."""
    created = adhoc(notify, **kwargs)
    wait_until(lambda: notify.wa.requests, message="the send at the stand-in")
    return created["id"], notify.wa.requests[-1]


def statuses_of(doc, channel="whatsapp"):
    delivery = next(d for d in doc["deliveries"] if d["channel"] == channel)
    return [s["status"] for s in delivery.get("statuses") or []]


# -- the handshake ------------------------------------------------------------------------------

def test_handshake_answers_the_challenge_only_with_our_verify_token(notify):
    r = notify.wa.handshake(WA_VERIFY_TOKEN, challenge="1158201444")
    assert r.status_code == 200
    assert r.text == "1158201444" and r.headers["Content-Type"].startswith("text/plain")
    assert notify.wa.handshake("someone-elses-token").status_code == 403
    r = requests.get(notify.webhook_url, params={"hub.mode": "unsubscribe",
                                                 "hub.verify_token": WA_VERIFY_TOKEN,
                                                 "hub.challenge": "1"}, timeout=10)
    assert r.status_code == 403
    assert requests.get(notify.webhook_url, timeout=10).status_code == 403


# -- signatures ----------------------------------------------------------------------------------

def inbound_body(wamid="wamid.TEST1", text="BANTUAN", digits=DIGITS, timestamp=None):
    return {"object": "whatsapp_business_account", "entry": [{"id": "200300400", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "6281100000000",
                         "phone_number_id": "100200300"},
            "contacts": [{"profile": {"name": "Siti"}, "wa_id": digits}],
            "messages": [{"from": digits, "id": wamid,
                          "timestamp": str(timestamp or int(time.time())), "type": "text",
                          "text": {"body": text}}]}}]}]}


def test_a_bad_or_missing_signature_is_401_and_stores_nothing(notify):
    raw = json.dumps(inbound_body()).encode()
    for header in (None, "", "sha256=" + "0" * 64, signature("another-secret", raw),
                   signature(WA_APP_SECRET, raw + b" ")):
        r = notify.wa.post_raw(raw, header)
        assert r.status_code == 401, header
        assert r.headers["Content-Type"] == "application/problem+json"
    # the same bytes re-serialised (what a framework that parses first would check) fail too
    reserialised = json.dumps(json.loads(raw), indent=1).encode()
    assert notify.wa.post_raw(reserialised, signature(WA_APP_SECRET, raw)).status_code == 401
    assert notify.db.inbound.count_documents({}) == 0
    assert notify.db.addresses.count_documents({}) == 0
    assert notify.db.notifications.count_documents({}) == 0
    # a signed status with a bad signature changes nothing either
    notification_id, send = sent_whatsapp(notify)
    before = wait_state(notify, notification_id, "sent")
    status = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{
        "value": {"statuses": [{"id": send["wamid"], "status": "delivered",
                                "timestamp": str(int(time.time())),
                                "biz_opaque_callback_data": send["callback_data"]}]}}]}]})
    assert notify.wa.post_raw(status.encode(), "sha256=" + "1" * 64).status_code == 401
    assert stored(notify, notification_id)["version"] == before["version"]
    # signed with the right secret it is applied
    r = notify.wa.post_raw(status.encode(), signature(WA_APP_SECRET, status.encode()))
    assert r.status_code == 200 and r.json() == {"received": 1}
    assert stored(notify, notification_id)["state"] == "delivered"


def test_a_signed_body_that_is_not_a_webhook_is_400(notify):
    for raw in (b"not json", b'{"object": "page", "entry": []}', b"[1, 2]"):
        r = notify.wa.post_raw(raw, signature(WA_APP_SECRET, raw))
        assert r.status_code == 400, raw
    assert notify.db.inbound.count_documents({}) == 0


# -- statuses -------------------------------------------------------------------------------------

def test_duplicated_and_out_of_order_statuses_only_move_forward(notify, notify_events):
    notify.wa.auto_status = ["sent", "delivered", "read"]
    notify.wa.duplicate_statuses = notify.wa.reverse_order = True
    notification_id, send = sent_whatsapp(notify)
    wait_until(lambda: len(notify.wa.posted) == 6, message="six status posts")
    assert all(p["status"] == 200 for p in notify.wa.posted)
    doc = wait_state(notify, notification_id, "read")
    # read arrived first; delivered and sent came late and moved nothing back
    assert doc["state"] == "read"
    delivery = doc["deliveries"][0]
    assert delivery["state"] == "read" and delivery["provider_id"] == send["wamid"]
    assert statuses_of(doc) == ["read", "delivered", "sent"]  # duplicates not even recorded
    wait_until(lambda: notify_events.of("notification.delivered"),
               message="notification.delivered")
    assert len(notify_events.of("notification.delivered")) == 1
    assert len(notify_events.of("notification.sent")) == 1
    assert len(notify.wa.requests) == 1


def test_a_status_before_the_send_reply_is_kept(notify):
    notify.wa.auto_status = ["delivered"]
    notify.wa.status_before_reply = True
    notification_id, send = sent_whatsapp(notify)
    doc = wait_state(notify, notification_id, "delivered")
    wait_until(lambda: stored(notify, notification_id)["deliveries"][0]["attempts"][0].get(
        "outcome") is not None, message="the send's result recorded")
    doc = stored(notify, notification_id)
    assert doc["state"] == "delivered"  # the send's own "sent" did not move it back
    assert doc["deliveries"][0]["state"] == "delivered"
    assert doc["deliveries"][0]["provider_id"] == send["wamid"]
    assert len(notify.wa.requests) == 1


def test_the_same_status_posted_twice_at_once_applies_once(notify, notify_events):
    notification_id, send = sent_whatsapp(notify)
    wait_state(notify, notification_id, "sent")
    responses = race(range(4), lambda _: notify.wa.post_status(send["wamid"], "delivered"))
    assert [r.status_code for r in responses] == [200] * 4
    doc = wait_state(notify, notification_id, "delivered")
    assert statuses_of(doc) == ["delivered"]
    wait_until(lambda: notify_events.of("notification.delivered"), message="delivered event")
    assert len(notify_events.of("notification.delivered")) == 1


def test_a_failed_status_after_sent_falls_back_to_sms(notify):
    notification_id, send = sent_whatsapp(notify, channels=("whatsapp", "sms"))
    wait_state(notify, notification_id, "sent")
    assert notify.wa.post_status(send["wamid"], "failed", error=131026).status_code == 200
    wait_until(lambda: notify.sms.requests, message="the SMS fallback sent")
    assert notify.sms.requests[0]["to"] == PHONE
    doc = wait_state(notify, notification_id, "sent")
    assert doc["channel"] == "sms"
    whatsapp = next(d for d in doc["deliveries"] if d["channel"] == "whatsapp")
    assert whatsapp["state"] == "failed" and "131026" in whatsapp["reason"]


def test_statuses_that_are_not_ours_are_ignored(notify):
    notification_id, send = sent_whatsapp(notify)
    before = wait_state(notify, notification_id, "sent")
    for callback in (None, "not-ours", "0123456789abcdef0123456789abcdef:whatsapp:1"):
        r = notify.wa.post_status("wamid.elsewhere", "delivered", callback_data=callback)
        assert r.status_code == 200
    # and a change for another of the business's numbers
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{
        "value": {"metadata": {"phone_number_id": "999"}, "statuses": [{
            "id": send["wamid"], "status": "read", "timestamp": "1",
            "biz_opaque_callback_data": send["callback_data"]}]}}]}]}).encode()
    assert notify.wa.post_raw(body, signature(WA_APP_SECRET, body)).status_code == 200
    assert stored(notify, notification_id)["version"] == before["version"]


# -- inbound ---------------------------------------------------------------------------------

def test_an_inbound_message_is_stored_once_and_opens_the_window(notify):
    raw = json.dumps(inbound_body("wamid.RETRIED", "BANTUAN")).encode()
    header = signature(WA_APP_SECRET, raw)
    # Meta retries a webhook it thinks failed; two copies may even arrive together
    responses = race(range(3), lambda _: notify.wa.post_raw(raw, header))
    assert [r.status_code for r in responses] == [200] * 3
    assert notify.db.inbound.count_documents({}) == 1
    inbound = notify.db.inbound.find_one({"_id": "wamid.RETRIED"})
    assert inbound["from"] == PHONE and inbound["text"] == "BANTUAN"
    assert notify.db.addresses.find_one({"_id": f"whatsapp:{PHONE}"})["last_inbound_at"]
    # the desk answers it once
    wait_until(lambda: notify.wa.received(to=DIGITS), message="the desk's reply")
    wait_until(lambda: notify.db.inbound.find_one({"_id": "wamid.RETRIED"})["handled"],
               message="marked handled")
    assert len(notify.wa.received(to=DIGITS)) == 1


def test_an_older_inbound_message_does_not_move_the_window_back(notify):
    now = int(time.time())
    for wamid, at in (("wamid.NEW", now), ("wamid.OLD", now - 3600)):
        raw = json.dumps(inbound_body(wamid, "halo", timestamp=at)).encode()
        assert notify.wa.post_raw(raw, signature(WA_APP_SECRET, raw)).status_code == 200
    last = notify.db.addresses.find_one({"_id": f"whatsapp:{PHONE}"})["last_inbound_at"]
    assert int(last.timestamp()) == now


# -- SMS delivery reports ---------------------------------------------------------------------

def test_sms_delivery_reports_signed_forward_only(notify):
    notify.sms.auto_report = ["delivered"]
    created = adhoc(notify, channels=("sms",))
    doc = wait_state(notify, created["id"], "delivered")
    assert doc["deliveries"][0]["provider_id"] == notify.sms.requests[0]["id"]
    reference = notify.sms.requests[0]["reference"]
    # a late "sent" and a duplicate change nothing; a "failed" after delivered neither
    for status in ("sent", "delivered", "failed"):
        assert notify.sms.post_report(reference, status).status_code == 200
    doc = stored(notify, created["id"])
    assert doc["state"] == "delivered" and doc["deliveries"][0]["state"] == "delivered"
    # unsigned or wrongly signed: 401, nothing applied
    body = json.dumps({"id": "x", "reference": reference, "status": "failed"}).encode()
    for header in (None, sms_signature("wrong", body), sms_signature("sms-secret", b"{}")):
        assert notify.sms.post_raw(body, header).status_code == 401
    assert notify.sms.post_raw(b"nope", sms_signature("sms-secret", b"nope")).status_code == 400
    assert stored(notify, created["id"])["version"] == doc["version"]


def test_two_replicas_take_a_repeated_webhook_once(config, notify, notify_events):
    """Meta's retry of a webhook may reach the other replica while the first still works."""
    from tests.integration.notify_support import start_notify_process

    other = start_notify_process(config, notify.settings)
    try:
        notification_id, send = sent_whatsapp(notify)
        wait_state(notify, notification_id, "sent")
        status = json.dumps(notify.wa._status_body(
            notify.wa.request_of(send["wamid"]), "delivered", 1)).encode()
        inbound = json.dumps(inbound_body("wamid.BOTH", "BANTUAN", digits="6281298765432")
                             ).encode()
        notify.wa.open_window("6281298765432")
        targets = [notify.webhook_url, other.webhook_url] * 2

        def post(url):
            return [requests.post(url, data=raw, timeout=10, headers={
                "X-Hub-Signature-256": signature(WA_APP_SECRET, raw),
                "Content-Type": "application/json"}).status_code for raw in (status, inbound)]

        assert race(targets, post) == [[200, 200]] * 4
        doc = wait_state(notify, notification_id, "delivered")
        assert statuses_of(doc) == ["delivered"]
        assert notify.db.inbound.count_documents({}) == 1
        wait_until(lambda: notify.wa.received(to="6281298765432"), message="one reply")
        wait_until(lambda: notify.db.inbound.find_one({"_id": "wamid.BOTH"})["handled"],
                   message="the inbound handled")
        assert len(notify.wa.received(to="6281298765432")) == 1
        wait_until(lambda: notify_events.of("notification.delivered"), message="delivered")
        assert len(notify_events.of("notification.delivered")) == 1
    finally:
        other.stop()
