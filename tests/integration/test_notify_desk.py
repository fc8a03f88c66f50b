"""The WhatsApp service desk against a running notify and the WhatsApp stand-in: opt-out and
opt-in by inbound message, STATUS answered from the real permits module (only for the
applicant's own phone), BANTUAN, the menu, permits not running, and one reply per inbound
message whatever is repeated."""

import json
import time

import pytest

from pamong.events.envelope import new_event
from pamong.testing import publish_raw, race, wait_until
from services.notify import desk
from services.notify.standins.whatsapp import signature
from tests.integration.notify_support import WA_APP_SECRET, adhoc, wait_state
from tests.integration.test_notify_webhooks import inbound_body

pytestmark = pytest.mark.integration

PHONE = "+6281234567890"
DIGITS = PHONE[1:]
OTHER = "6281298765432"


def texts_to(wa, digits):
    """The free-form texts the stand-in received for ``digits``, in order."""
    return [b["text"]["body"] for b in wa.received(to=digits) if b.get("type") == "text"]


def reply_to(notify, digits, n=1, timeout=15):
    """Wait for the ``n``-th text to ``digits``; it."""
    return wait_until(lambda: len(texts_to(notify.wa, digits)) >= n
                      and texts_to(notify.wa, digits)[n - 1], timeout=timeout,
                      message=f"reply {n} to {digits}")


def address(notify, phone=PHONE):
    return notify.db.addresses.find_one({"_id": f"whatsapp:{phone}"}) or {}


def post_signed(notify, body):
    raw = json.dumps(body).encode()
    return notify.wa.post_raw(raw, signature(WA_APP_SECRET, raw))


# -- opt-out and opt-in -------------------------------------------------------------------------

def test_berhenti_opts_out_and_mulai_opts_back_in(notify):
    notify.wa.post_inbound(DIGITS, "BERHENTI")
    assert reply_to(notify, DIGITS) == desk.STOP_TEXT  # the confirmation still goes out
    assert address(notify)["opted_out"] is True
    # a normal notification to that number is not sent on WhatsApp now
    blocked = adhoc(notify, phone=PHONE)
    doc = wait_state(notify, blocked["id"], "cancelled")
    assert doc["reason"] == "opted_out"
    # a critical one still is
    critical = adhoc(notify, phone=PHONE, priority="critical")
    wait_state(notify, critical["id"], "sent")
    notify.wa.post_inbound(DIGITS, "mulai")
    assert reply_to(notify, DIGITS, 2) == desk.START_TEXT
    assert address(notify)["opted_out"] is False
    allowed = adhoc(notify, phone=PHONE)
    wait_state(notify, allowed["id"], "sent")
    templates = [b for b in notify.wa.received(to=DIGITS) if b["type"] == "template"]
    assert len(templates) == 2  # the critical one and the one after MULAI


def test_stop_and_start_handled_out_of_order_end_by_the_messages_own_time(notify):
    now = int(time.time())
    # MULAI written after BERHENTI, but its webhook arrives first
    assert post_signed(notify, inbound_body("wamid.LATER", "MULAI", timestamp=now)).ok
    reply_to(notify, DIGITS)
    assert post_signed(notify, inbound_body("wamid.EARLIER", "STOP", timestamp=now - 5)).ok
    reply_to(notify, DIGITS, 2)
    assert address(notify)["opted_out"] is False  # the later choice stands


def test_concurrent_opt_out_and_opt_in_end_by_the_messages_own_time(notify):
    now = int(time.time())
    bodies = [inbound_body("wamid.A", "BERHENTI", timestamp=now - 2),
              inbound_body("wamid.B", "MULAI", timestamp=now - 1),
              inbound_body("wamid.C", "BERHENTI", timestamp=now)]
    responses = race(bodies, lambda body: post_signed(notify, body))
    assert all(r.status_code == 200 for r in responses)
    reply_to(notify, DIGITS, 3)
    assert address(notify)["opted_out"] is True
    assert address(notify)["opted_at"].timestamp() == now


# -- one reply per inbound message ------------------------------------------------------------

def test_a_redelivered_inbound_event_gets_one_reply(notify, config):
    wamid = notify.wa.post_inbound(DIGITS, "BANTUAN")
    assert reply_to(notify, DIGITS) == desk.HELP_TEXT
    # the event again under another event id (a publisher that repeated it, a replay from
    # the DLQ): the reply's id comes from the wamid, so nothing new is sent
    publish_raw(config, "notify", "notification.inbound_received",
                new_event("notify", "notification.inbound_received", {"id": wamid}))
    # and the webhook again
    post_signed(notify, inbound_body(wamid, "BANTUAN"))
    marker = notify.wa.post_inbound(DIGITS, "menu")  # a later message: everything before is done
    assert reply_to(notify, DIGITS, 2) == desk.MENU_TEXT
    assert texts_to(notify.wa, DIGITS) == [desk.HELP_TEXT, desk.MENU_TEXT]
    replies = list(notify.db.notifications.find({"rule": "desk"}))
    assert len(replies) == 2
    assert notify.db.inbound.find_one({"_id": marker})["handled"] is True


def test_bantuan_menu_and_messages_without_text(notify):
    notify.wa.post_inbound(DIGITS, "Bantuan")
    assert reply_to(notify, DIGITS) == desk.HELP_TEXT
    notify.wa.post_inbound(DIGITS, "selamat siang, izin saya sudah sampai mana ya?")
    assert reply_to(notify, DIGITS, 2) == desk.MENU_TEXT
    body = inbound_body("wamid.IMG", "x")
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update(type="image", image={"id": "media-1", "mime_type": "image/jpeg"})
    del message["text"]
    assert post_signed(notify, body).status_code == 200
    assert reply_to(notify, DIGITS, 3) == desk.MENU_TEXT
    notify.wa.post_inbound(DIGITS, "STATUS")
    assert reply_to(notify, DIGITS, 4) == desk.ASK_NUMBER_TEXT


# -- STATUS --------------------------------------------------------------------------------------

def test_status_end_to_end_with_the_permits_module(notify, permits):
    from tests.integration.permits_support import officer, publish_type, step, submitted

    client = permits.client
    publish_type(client)
    app = step(client, submitted(client), "register", officer(client))
    number = app["registration_number"]

    notify.wa.post_inbound(DIGITS, f"status {number.lower()}")
    answer = reply_to(notify, DIGITS)
    assert answer.startswith(f"Permohonan {number}")
    assert "Status: Terdaftar" in answer
    assert "Sisa waktu layanan: 5 hari kerja." in answer
    assert "Riwayat terakhir:" in answer and "Terdaftar" in answer.split("Riwayat")[1]

    # another phone asking about the same number, and an unknown number: one neutral answer
    notify.wa.post_inbound(OTHER, f"STATUS {number}")
    assert reply_to(notify, OTHER) == desk.NOT_FOUND_TEXT.format(number=number)
    notify.wa.post_inbound(DIGITS, "STATUS REG-2026-999999")
    assert reply_to(notify, DIGITS, 2) == desk.NOT_FOUND_TEXT.format(number="REG-2026-999999")


def test_status_when_permits_is_not_running_says_try_later(notify_with):
    notify = notify_with(RPC_TIMEOUT_SECONDS=1)
    notify.wa.post_inbound(DIGITS, "STATUS REG-2026-000001")
    assert reply_to(notify, DIGITS) == desk.UNAVAILABLE_TEXT
    # the desk is not stuck: the next message is answered
    notify.wa.post_inbound(DIGITS, "BANTUAN")
    assert reply_to(notify, DIGITS, 2) == desk.HELP_TEXT
    inbound = notify.db.inbound.find_one({"text": "STATUS REG-2026-000001"})
    assert inbound["handled"] is True and inbound["command"] == "status"
