"""Inputs the API fuzzer (tests/fuzz) found answered with a status the notify OpenAPI document
did not name; each is now documented, and stays so."""

import pytest

from tests.integration.fuzz_found_support import assert_documented_refusal
from tests.integration.notify_support import API

pytestmark = pytest.mark.integration


def test_unsigned_webhooks_are_documented_refusals(notify):
    # found: POST /webhooks/whatsapp and /webhooks/sms without a signature (401), GET
    # /webhooks/whatsapp without the verify token (403)
    for path in ("/webhooks/whatsapp", "/webhooks/sms"):
        r = notify.client.request("POST", f"{API}{path}", json={})
        assert_documented_refusal(r, "notify", f"{API}{path}", 401)
    r = notify.client.request("GET", f"{API}/webhooks/whatsapp",
                              params={"hub.mode": "subscribe", "hub.challenge": "1"})
    assert_documented_refusal(r, "notify", f"{API}/webhooks/whatsapp", 403)


def test_a_garbage_cursor_is_a_documented_400(notify):
    # found: GET /notifications?cursor=%5E%22..., /inbox?cursor=...
    r = notify.client.request("GET", f"{API}/notifications", params={"cursor": '^"s'},
                              token=notify.client.token(roles=("admin",), opd=None))
    assert_documented_refusal(r, "notify", f"{API}/notifications", 400)
    r = notify.client.request("GET", f"{API}/inbox", params={"cursor": '^"s'},
                              token=notify.client.token(roles=("pegawai",), opd="3510.03.01",
                                                        sub="198609262015051001",
                                                        nip="198609262015051001"))
    assert_documented_refusal(r, "notify", f"{API}/inbox", 400)
