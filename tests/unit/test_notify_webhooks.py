"""Webhook bodies and signatures, without a server: what Meta and the SMS gateway send."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from services.notify.webhooks import (
    e164_of,
    parse_sms_report,
    parse_whatsapp,
    signature_valid,
)

pytestmark = pytest.mark.unit


def sign(secret, raw):
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def test_signature_on_the_raw_bytes():
    raw = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    assert signature_valid("s3cret", raw, sign("s3cret", raw))
    assert signature_valid("s3cret", raw, sign("s3cret", raw)[len("sha256="):])  # bare hex
    assert signature_valid("s3cret", raw, sign("s3cret", raw).upper().replace("SHA256=",
                                                                               "sha256="))
    assert not signature_valid("s3cret", raw + b" ", sign("s3cret", raw))  # re-serialised
    assert not signature_valid("other", raw, sign("s3cret", raw))
    assert not signature_valid("s3cret", raw, None)
    assert not signature_valid("s3cret", raw, "")
    assert not signature_valid(None, raw, sign("", raw))  # no secret: nothing passes
    assert not signature_valid("s3cret", raw, "sha256=zz")


def envelope(value, phone_number_id="100200300"):
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp",
                                        "metadata": {"phone_number_id": phone_number_id},
                                        **value}}]}]}


def test_parse_statuses_and_messages():
    body = envelope({
        "statuses": [{"id": "wamid.1", "status": "delivered", "timestamp": "1796534048",
                      "recipient_id": "6281234567890",
                      "biz_opaque_callback_data": "abc:whatsapp:1"},
                     {"id": "wamid.2", "status": "failed", "timestamp": "1796534049",
                      "recipient_id": "6281234567890",
                      "errors": [{"code": 131026, "title": "Message undeliverable"}]}],
        "messages": [{"from": "6281234567890", "id": "wamid.3", "timestamp": "1796534050",
                      "type": "text", "text": {"body": "STATUS REG-2026-000001"}},
                     {"from": "6281234567890", "id": "wamid.4", "timestamp": "1796534051",
                      "type": "button", "button": {"text": "BANTUAN", "payload": "x"}},
                     {"from": "6281234567890", "id": "wamid.5", "timestamp": "1796534052",
                      "type": "image", "image": {"id": "m1"}}]})
    found_statuses, messages = parse_whatsapp(body, "100200300")
    assert found_statuses[0] == {
        "provider_id": "wamid.1", "status": "delivered",
        "at": datetime.fromtimestamp(1796534048, UTC), "callback_data": "abc:whatsapp:1",
        "recipient": "6281234567890", "error": None}
    assert found_statuses[1]["error"] == "131026: Message undeliverable"
    assert found_statuses[1]["callback_data"] is None
    assert [(m["id"], m["from"], m["type"], m["text"]) for m in messages] == [
        ("wamid.3", "+6281234567890", "text", "STATUS REG-2026-000001"),
        ("wamid.4", "+6281234567890", "button", "BANTUAN"),
        ("wamid.5", "+6281234567890", "image", "")]


def test_another_phone_number_is_left_out_and_bad_bodies_raise():
    body = envelope({"statuses": [{"id": "w", "status": "sent", "timestamp": "1"}]}, "999")
    assert parse_whatsapp(body, "100200300") == ([], [])
    assert len(parse_whatsapp(body, None)[0]) == 1
    for bad in ({}, {"object": "page", "entry": []}, [],
                envelope({"statuses": [{"status": "sent"}]}),
                envelope({"messages": [{"id": "w"}]})):
        with pytest.raises(ValueError):
            parse_whatsapp(bad, "100200300")


def test_e164_of_wa_ids():
    assert e164_of("6281234567890") == "+6281234567890"
    assert e164_of("14155550100") == "+14155550100"  # not Indonesian: kept


def test_sms_reports():
    report = parse_sms_report({"id": "sms-1", "reference": "abc:sms:1", "status": "DELIVERED",
                               "timestamp": "2026-12-06T01:02:03+00:00", "error": None})
    assert report == {"provider_id": "sms-1", "callback_data": "abc:sms:1",
                      "status": "delivered", "at": datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC),
                      "error": None}
    failed = parse_sms_report({"id": "sms-1", "reference": "abc:sms:1", "status": "expired",
                               "error": {"code": "ttl", "message": "expired"}})
    assert failed["status"] == "failed" and failed["error"] == "ttl: expired"
    assert parse_sms_report({"status": "accepted"})["status"] is None
    with pytest.raises(ValueError):
        parse_sms_report({"id": "x"})
