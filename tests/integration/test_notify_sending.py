"""Sending (issue 15, points 4-6): exactly one message per (event, rule, recipient, channel)
across redeliveries, duplicate requests, a crash mid-send and two replicas; unknown outcomes
reconciled by a status webhook before any resend; retries by error class with backoff;
fallback; quiet hours, pacing and the global rate queue (never drop); critical rules; email
with both parts; the in-app inbox exactly once; retention.

Notifications are arranged as the rules' handlers build them (``domain.new_notification``)
and handed to the running service over the bus (``notification.requested``, the event the
ad-hoc API, the service desk and the pending timer publish), or through a permit event the
shipped rules turn into notifications. Real broker, database, WhatsApp, SMTP and SMS
stand-ins; timers are run by the test (``pending_timer``) inside the running service."""

import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.testing.services import entrypoint_hook
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from pamong.events.consumer import INBOX_BUCKET
from pamong.events.envelope import new_event
from pamong.storage import client_for, database_name, db_now
from pamong.testing import EventRecorder, publish_raw, race, wait_until
from services.notify import domain, store
from tests.integration.notify_support import start_notify_process, wa_digits

pytestmark = pytest.mark.integration


def a_phone():
    return "+62812" + "".join(random.choice("0123456789") for _ in range(8))


def new_doc(channels=("whatsapp",), priority="normal", phone=None, email="warga@contoh.id",
            person=None, rule="test_rule", timezone="Asia/Jakarta", text=None):
    event_id = str(uuid.uuid4())
    phone = phone or a_phone()
    now = datetime.now(UTC)
    whatsapp = {"text": text} if text else {"template": "permit_registered", "language": "id",
                                            "parameters": ["PBG-2026-0001", "Siti"]}
    return domain.new_notification(
        id=domain.notification_id(event_id, rule, person or phone), rule=rule,
        priority=priority, template="permit_registered",
        event={"id": event_id, "type": "permit.registered", "source": "permits",
               "occurred_at": now, "opd": "3510.01"},
        recipient={"key": person or phone, "person": person, "name": "Siti", "phone": phone,
                   "email": email, "timezone": timezone},
        channels=list(channels),
        content={"whatsapp": whatsapp,
                 "sms": {"text": "Permohonan PBG-2026-0001 terdaftar."},
                 "email": {"subject": "Permohonan terdaftar",
                           "html": "<p>Permohonan <b>PBG-2026-0001</b> terdaftar.</p>",
                           "text": "Permohonan PBG-2026-0001 terdaftar."},
                 "inapp": {"title": "Permohonan terdaftar", "body": "PBG-2026-0001"}},
        now=now)


def request(notify, doc, round_=0):
    """Store ``doc`` ready to send and publish its ``notification.requested``."""
    notify.db.notifications.insert_one({**doc, "state": "queued"})
    publish_requested(notify.settings, doc["_id"], round_)
    return doc["_id"]


def publish_requested(config, notification_id, round_=0):
    """Publish a ``notification.requested``; its event id."""
    envelope = new_event("notify", "notification.requested",
                         {"id": notification_id, "round": round_})
    publish_raw(config, "notify", "notification.requested", envelope)
    return envelope["id"]


REQUESTED = ("notify.deliver_requested", "notification.requested")
REGISTERED = ("notify.intake_permit_registered", "permit.registered")


def handled(handler, outcome="ok"):
    """How many events ``handler`` (``(queue, event type)``) has handled in the test's
    process (the ``notify`` fixture's container). These handlers have no inbox, so its
    done marks cannot tell; the kernel's counter can."""
    queue, event_type = handler
    return REGISTRY.get_sample_value("pamong_events_consumed_total", {
        "handler": queue, "type": event_type, "outcome": outcome}) or 0


def handled_by_process(process, handler, outcome="ok"):
    """``handled`` for a notify child process, from its ``/metrics``."""
    queue, event_type = handler
    wanted = {"handler": queue, "type": event_type, "outcome": outcome}
    text = process.client.request("GET", "/metrics").text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "pamong_events_consumed_total" and sample.labels == wanted)


def inbox_marks(notify, queue):
    """The kernel inbox's claims and done marks of ``queue`` (none: it has no inbox)."""
    return [d["_id"] for name in notify.db.list_collection_names()
            if name.startswith(INBOX_BUCKET)
            for d in notify.db[name].find({"_id": {"$regex": f"^{queue}:"}})]


def permit_registered(phone):
    """A ``permit.registered`` envelope for an applicant reached on WhatsApp at ``phone``."""
    return new_event("permits", "permit.registered", {
        "id": uuid.uuid4().hex, "registration_number": "PBG-2026-0042", "type": "PBG",
        "type_name": "Persetujuan Bangunan Gedung", "opd": "3510.01",
        "contact": {"phone": phone, "email": None, "channel": "whatsapp"},
        "registered_at": datetime.now(UTC).isoformat(), "sla_days": 10,
        "due_on": datetime.now(UTC).date().isoformat()}, opd="3510.01")


def stored(notify, notification_id):
    return notify.db.notifications.find_one({"_id": notification_id}, {"_outbox": 0})


def state_of(notify, notification_id, *states):
    doc = stored(notify, notification_id)
    return doc if doc is not None and doc["state"] in states else None


def timer_round(notify, container=None, now=None):
    with entrypoint_hook(container or notify.container, "pending_timer") as hook:
        return hook(now=now) if now is not None else hook()


def sends_to(notify, phone):
    return notify.wa.received(to=wa_digits(phone))


def attempts(doc, channel="whatsapp"):
    return next(d for d in doc["deliveries"] if d["channel"] == channel)["attempts"]


@pytest.fixture
def events(config):
    recorder = EventRecorder(config, "notify")
    yield recorder
    recorder.close()


# -- exactly once ---------------------------------------------------------------------------

def test_a_requested_notification_is_sent_once_with_its_callback_data(notify, events):
    doc = new_doc()
    request(notify, doc)
    sent = wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    [body] = sends_to(notify, doc["recipient"]["phone"])
    assert body["type"] == "template" and body["template"]["name"] == "permit_registered"
    assert body["template"]["components"][0]["parameters"][0]["text"] == "PBG-2026-0001"
    assert body["biz_opaque_callback_data"] == f"{doc['_id']}:whatsapp:1"
    [delivery] = sent["deliveries"]
    assert delivery["provider_id"].startswith("wamid.") and delivery["state"] == "sent"
    assert attempts(sent)[0]["outcome"] == "ok" and attempts(sent)[0]["latency_ms"] >= 0
    [event] = wait_until(lambda: events.of("notification.sent"), message="sent event")
    assert event["data"]["id"] == doc["_id"] and event["data"]["channel"] == "whatsapp"
    assert doc["recipient"]["phone"][4:] not in str(event["data"])  # masked


def test_the_same_request_three_times_and_at_once_sends_once(notify):
    """Three more requests of one round, two of them racing: the handler has no inbox, so
    each runs (a redelivered request alike), and the notification's own claim lets one
    send."""
    before = handled(REQUESTED)
    doc = new_doc()
    request(notify, doc)
    race([1, 2], lambda _: publish_requested(notify.settings, doc["_id"]))
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    publish_requested(notify.settings, doc["_id"])
    wait_until(lambda: handled(REQUESTED) == before + 4, message="all four handled")
    assert len(sends_to(notify, doc["recipient"]["phone"])) == 1
    assert len(attempts(stored(notify, doc["_id"]))) == 1


def test_a_permit_event_delivered_three_times_sends_one_whatsapp_message(notify):
    """The same ``permit.registered`` envelope published three times (a publisher that
    repeated itself): the handler runs three times (no inbox), and the shipped rule's
    notification to the applicant is created and sent once."""
    before = handled(REGISTERED)
    phone = a_phone()
    envelope = permit_registered(phone)
    for _ in range(3):
        publish_raw(notify.settings, "permits", "permit.registered", envelope)
    wait_until(lambda: sends_to(notify, phone), message="sent")
    wait_until(lambda: handled(REGISTERED) == before + 3, message="all three handled")
    [doc] = notify.db.notifications.find({"event.id": envelope["id"]})
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent state")
    assert len(sends_to(notify, phone)) == 1
    assert inbox_marks(notify, REGISTERED[0]) == []


def test_a_duplicate_meeting_a_live_claim_never_moves_the_senders_entry_earlier(notify):
    """A duplicate request runs while another worker sends (no inbox): it only makes sure
    the timer looks once the claim runs out. The entry the sender wrote for its result (a
    retry in ten minutes) stays: an earlier one would wake the notification before its
    time, and the timer would drop the entry it waits on."""
    now = db_now()
    doc = new_doc()
    claimed, _ = domain.start_attempt(doc, "whatsapp", doc["recipient"]["phone"], now, 60)
    notify.db.notifications.insert_one(claimed)
    retry_at = now + timedelta(minutes=10)
    notify.db.pending.insert_one({"_id": doc["_id"], "due_at": retry_at, "reason": "retry",
                                  "round": 0, "since": now})
    before = handled(REQUESTED)
    publish_requested(notify.settings, doc["_id"])
    wait_until(lambda: handled(REQUESTED) == before + 1, message="the duplicate handled")
    entry = notify.db.pending.find_one({"_id": doc["_id"]})
    assert (entry["due_at"], entry["reason"]) == (retry_at, "retry")
    assert notify.wa.requests == [] and stored(notify, doc["_id"])["version"] == 1

    # a stale entry (the timer is about to delete it by its time) moves to the lease's end,
    # and with no entry one is made: somebody looks if the sender died
    lease_until = now + timedelta(seconds=60)
    notify.db.pending.update_one({"_id": doc["_id"]}, {"$set": {"due_at": now}})
    store.watch_claim(notify.db, doc["_id"], lease_until, 0, now)
    assert notify.db.pending.find_one({"_id": doc["_id"]})["due_at"] == lease_until
    notify.db.pending.delete_one({"_id": doc["_id"]})
    store.watch_claim(notify.db, doc["_id"], lease_until, 0, now)
    entry = notify.db.pending.find_one({"_id": doc["_id"]})
    assert (entry["due_at"], entry["reason"]) == (lease_until, "unknown_outcome")


def test_a_request_for_an_unknown_notification_sends_nothing(notify):
    publish_requested(notify.settings, "0" * 32)
    doc = new_doc()
    request(notify, doc)  # the handler goes on with the next one
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    assert len(notify.wa.requests) == 1


def test_a_stale_round_changes_nothing(notify):
    doc = new_doc()
    notify.db.notifications.insert_one({**doc, "state": "queued", "round": 3})
    publish_requested(notify.settings, doc["_id"], round_=2)
    publish_requested(notify.settings, doc["_id"], round_=3)
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    assert len(notify.wa.requests) == 1


# -- unknown outcomes -------------------------------------------------------------------------

def test_timeout_with_unknown_outcome_is_reconciled_by_a_later_status(notify_with):
    notify = notify_with(NOTIFY_UNKNOWN_WINDOW_SECONDS=0.5)
    notify.wa.plan("timeout")
    doc = new_doc()
    request(notify, doc)
    waiting = wait_until(lambda: state_of(notify, doc["_id"], "deferred"), timeout=15,
                         message="unknown outcome recorded")
    assert waiting["reason"] == "unknown_outcome"
    assert attempts(waiting)[0]["outcome"] == "unknown"
    assert notify.db.pending.find_one({"_id": doc["_id"]})["reason"] == "unknown_outcome"
    [held] = notify.wa.requests
    response = notify.wa.post_status(held["wamid"], "delivered")
    assert response.status_code == 200
    settled = wait_until(lambda: state_of(notify, doc["_id"], "delivered"), message="settled")
    assert settled["deliveries"][0]["provider_id"] == held["wamid"]
    assert attempts(settled)[0]["outcome"] == "ok"
    # the window passes: nothing is sent again
    wait_until(lambda: datetime.now(UTC) > waiting["due_at"].replace(tzinfo=UTC),
               message="window over")
    timer_round(notify)
    assert notify.db.pending.find_one({"_id": doc["_id"]}) is None
    assert len(notify.wa.requests) == 1


def test_timeout_without_a_status_is_retried_as_a_new_attempt(notify_with):
    notify = notify_with(NOTIFY_UNKNOWN_WINDOW_SECONDS=0.5)
    notify.wa.plan("timeout")
    doc = new_doc()
    request(notify, doc)
    wait_until(lambda: state_of(notify, doc["_id"], "deferred"), timeout=15,
               message="unknown outcome recorded")
    sent = wait_until(lambda: timer_round(notify) is not None and
                      state_of(notify, doc["_id"], "sent"), timeout=15, message="retried")
    assert [a["outcome"] for a in attempts(sent)] == ["unknown", "ok"]
    bodies = sends_to(notify, doc["recipient"]["phone"])
    assert [b["biz_opaque_callback_data"][-2:] for b in bodies] == [":1", ":2"]


def test_a_late_status_of_the_first_attempt_does_not_move_the_retry_back(notify_with):
    notify = notify_with(NOTIFY_UNKNOWN_WINDOW_SECONDS=0.5)
    notify.wa.plan("timeout")
    doc = new_doc()
    request(notify, doc)
    wait_until(lambda: state_of(notify, doc["_id"], "deferred"), timeout=15, message="unknown")
    wait_until(lambda: timer_round(notify) is not None and
               state_of(notify, doc["_id"], "sent"), timeout=15, message="retried")
    first = notify.wa.requests[0]
    notify.wa.post_status(first["wamid"], "read")
    notify.wa.post_status(first["wamid"], "sent")
    after = wait_until(lambda: state_of(notify, doc["_id"], "read"), message="read")
    assert len(notify.wa.requests) == 2 and after["deliveries"][0]["state"] == "read"


# -- retries and fallback ---------------------------------------------------------------------

def test_5xx_and_429_are_retried_with_backoff(notify, events):
    notify.wa.plan(500, 429)
    doc = new_doc()
    request(notify, doc)
    first = wait_until(lambda: state_of(notify, doc["_id"], "temporary_failure"),
                       message="first failure")
    entry = notify.db.pending.find_one({"_id": doc["_id"]})
    assert entry["reason"] == "retry"
    waited = (entry["due_at"] - attempts(first)[0]["at"]).total_seconds()
    assert 0.9 <= waited <= 1.2  # NOTIFY_RETRY_DELAYS [1, 2, 4], no jitter in the fixture
    second = wait_until(lambda: timer_round(notify) is not None and
                        len(attempts(stored(notify, doc["_id"]))) == 2 and
                        state_of(notify, doc["_id"], "temporary_failure"), timeout=15,
                        message="second failure")
    entry = notify.db.pending.find_one({"_id": doc["_id"]})
    waited = (entry["due_at"] - attempts(second)[1]["at"]).total_seconds()
    assert 1.9 <= waited <= 2.2  # exponential
    done = wait_until(lambda: timer_round(notify) is not None and
                      state_of(notify, doc["_id"], "sent"), timeout=15, message="sent")
    assert [a["outcome"] for a in attempts(done)] == ["temporary", "temporary", "ok"]
    assert [a["error"] for a in attempts(done)][:2] == ["http 500 code 131000",
                                                        "http 429 code 130429"]
    wait_until(lambda: events.of("notification.sent"), message="the sent event")
    assert len(events.of("notification.sent")) == 1


def test_a_4xx_is_not_retried_and_falls_back_to_sms(notify, events):
    notify.wa.plan(("error", 131026))
    doc = new_doc(channels=("whatsapp", "sms"))
    request(notify, doc)
    done = wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent by sms")
    assert done["channel"] == "sms"
    whatsapp, sms = done["deliveries"]
    assert (whatsapp["state"], whatsapp["reason"]) == ("permanent_failure", "not_whatsapp_user")
    assert len(whatsapp["attempts"]) == 1 and sms["state"] == "sent"
    [sent] = notify.sms.received(to=doc["recipient"]["phone"])
    assert sent["text"] == "Permohonan PBG-2026-0001 terdaftar."
    assert sent["reference"] == f"{doc['_id']}:sms:1"
    [event] = wait_until(lambda: events.of("notification.sent"), message="event")
    assert event["data"]["channel"] == "sms"


def test_a_permanent_failure_on_every_channel_fails_with_a_reason(notify, events):
    notify.wa.plan(400)
    notify.sms.plan(("error", "invalid_number"))
    doc = new_doc(channels=("whatsapp", "sms"))
    request(notify, doc)
    done = wait_until(lambda: state_of(notify, doc["_id"], "permanent_failure"),
                      message="failed")
    assert done["reason"] == "invalid_number"
    [event] = wait_until(lambda: events.of("notification.failed"), message="failed event")
    assert event["data"]["state"] == "permanent_failure"
    assert event["data"]["reason"] == "invalid_number"


def test_a_failed_status_after_sent_falls_back_to_sms(notify):
    doc = new_doc(channels=("whatsapp", "sms"))
    request(notify, doc)
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    [held] = notify.wa.requests
    notify.wa.post_status(held["wamid"], "failed", error=131026)
    wait_until(lambda: notify.sms.received(to=doc["recipient"]["phone"]),
               message="fallback by sms")
    done = wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    assert done["channel"] == "sms" and done["deliveries"][0]["state"] == "failed"


def test_missing_provider_settings_are_a_technical_failure_then_fallback(notify_with):
    notify = notify_with(NOTIFY_WHATSAPP_TOKEN="")
    doc = new_doc(channels=("whatsapp", "email"))
    request(notify, doc)
    done = wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent by email")
    assert done["deliveries"][0]["state"] == "technical_failure"
    assert done["deliveries"][0]["reason"] == "whatsapp_not_configured"
    assert notify.wa.requests == [] and len(notify.smtp.messages) == 1


# -- quiet hours, pacing, rate ------------------------------------------------------------------

def _window_around_now(before=600, after=2.0, zone="Asia/Jakarta"):
    local = datetime.now(ZoneInfo(zone))
    start, end = local - timedelta(seconds=before), local + timedelta(seconds=after)
    return f"{start:%H:%M:%S}-{end:%H:%M:%S}", end


def test_quiet_hours_defer_to_the_morning_and_release(notify_with):
    quiet, end = _window_around_now(after=2.0)
    notify = notify_with(NOTIFY_QUIET_HOURS=quiet)
    doc = new_doc()
    inapp = new_doc(channels=("inapp",), person="198609262015051001")
    request(notify, doc)
    request(notify, inapp)
    waiting = wait_until(lambda: state_of(notify, doc["_id"], "deferred"), message="deferred")
    assert waiting["reason"] == "quiet_hours"
    assert abs((waiting["due_at"].replace(tzinfo=UTC) - end).total_seconds()) < 1.1
    assert notify.db.pending.find_one({"_id": doc["_id"]})["reason"] == "quiet_hours"
    assert notify.wa.requests == []
    wait_until(lambda: state_of(notify, inapp["_id"], "sent"), message="in-app is silent")
    assert timer_round(notify) == 0  # not yet
    wait_until(lambda: timer_round(notify) is not None and
               state_of(notify, doc["_id"], "sent"), timeout=15, message="released")
    assert len(sends_to(notify, doc["recipient"]["phone"])) == 1


def test_quiet_hours_follow_the_recipients_time_zone(notify_with):
    quiet, _ = _window_around_now(after=3600, zone="Asia/Jayapura")
    notify = notify_with(NOTIFY_QUIET_HOURS=quiet)
    east = new_doc(timezone="Asia/Jayapura")
    west = new_doc(timezone="Asia/Jakarta")  # two hours earlier there: not quiet
    request(notify, east)
    request(notify, west)
    wait_until(lambda: state_of(notify, west["_id"], "sent"), message="west sent")
    wait_until(lambda: state_of(notify, east["_id"], "deferred"), message="east deferred")


def test_critical_ignores_quiet_hours_and_opt_out(notify_with):
    quiet, _ = _window_around_now(after=3600)
    notify = notify_with(NOTIFY_QUIET_HOURS=quiet)
    person = "198609262015051001"
    phone = a_phone()
    notify.db.people.insert_one({"_id": person, "channels": {"whatsapp": {"opted_out": True}}})
    notify.db.addresses.insert_one({"_id": f"whatsapp:{phone}", "opted_out": True})
    critical = new_doc(priority="critical", phone=phone, person=person)
    normal = new_doc(phone=phone, person=person, channels=("whatsapp",))
    request(notify, critical)
    request(notify, normal)
    wait_until(lambda: state_of(notify, critical["_id"], "sent"), message="critical sent")
    cancelled = wait_until(lambda: state_of(notify, normal["_id"], "cancelled"),
                           message="normal cancelled")
    assert cancelled["reason"] == "opted_out"
    assert len(sends_to(notify, phone)) == 1


def test_an_opted_out_address_falls_back_to_the_next_channel(notify):
    phone = a_phone()
    notify.db.addresses.insert_one({"_id": f"whatsapp:{phone}", "opted_out": True})
    doc = new_doc(phone=phone, channels=("whatsapp", "sms"))
    request(notify, doc)
    done = wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    assert done["channel"] == "sms" and done["deliveries"][0]["reason"] == "opted_out"
    assert notify.wa.requests == []


def test_free_text_outside_the_24_hour_window_is_not_sent(notify):
    doc = new_doc(text="Balasan bebas", channels=("whatsapp",))
    request(notify, doc)
    done = wait_until(lambda: state_of(notify, doc["_id"], "permanent_failure"),
                      message="refused")
    assert done["deliveries"][0]["reason"] == "outside_24h_window"
    assert notify.wa.requests == []


def test_per_recipient_pacing_queues_many_to_one_person_and_a_restart_keeps_them(notify_with):
    # a pace of 1 s: a request handled up to that late after the first still finds its slot
    # ahead (on a loaded machine the six are not all handled within a few tenths)
    settings = {"NOTIFY_PACE_WHATSAPP_SECONDS": 1.0}
    notify = notify_with(**settings)
    phone = a_phone()
    docs = [new_doc(phone=phone) for _ in range(6)]
    for doc in docs:
        request(notify, doc)
    wait_until(lambda: all(state_of(notify, d["_id"], "sent", "deferred") for d in docs),
               message="all handled")
    assert len(sends_to(notify, phone)) == 1
    slots = sorted(d["slot"]["at"] for d in notify.db.notifications.find(
        {"_id": {"$in": [d["_id"] for d in docs]}, "state": "deferred"}))
    assert len(slots) == 5
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)]
    assert all(gap >= 0.99 for gap in gaps)  # one slot each, none shared
    notify.container.stop()  # a restart: the queue is in the database
    # down until every slot is more than a pace behind, as a real restart leaves them (the
    # default pace is 6 s): each is taken anew, in order (a slot released less than a pace
    # late is kept, and may go out less than a pace after the one before)
    pace = settings["NOTIFY_PACE_WHATSAPP_SECONDS"]
    behind = slots[-1] + timedelta(seconds=pace)
    wait_until(lambda: datetime.now(UTC) > behind, timeout=15, message="every slot a pace behind")
    again = notify_with(**settings)
    wait_until(lambda: timer_round(again) is not None and
               len(sends_to(notify, phone)) == 6, timeout=30, message="all six sent")
    assert all(state_of(again, d["_id"], "sent") for d in docs)
    times = [r["at"] for r in notify.wa.requests]
    assert all((b - a).total_seconds() >= 0.75 for a, b in zip(times, times[1:], strict=False))


def test_concurrent_reservations_on_a_new_address_get_slots_one_pace_apart(config):
    """Six workers reserve on an address nobody wrote yet: one grouped insert creates it
    (that slot is now), the others queue behind it through the compare-and-set."""
    db = client_for(config["MONGO_URI"])[database_name(config, "notify")]
    key, now, pace = f"whatsapp:{a_phone()}", db_now(), timedelta(seconds=2)
    threads = [eventlet.spawn(store.reserve_slot, db, key, now, 2) for _ in range(6)]
    reserved = sorted((t.wait() for t in threads), key=lambda r: r[0])
    assert [slot for slot, _ in reserved] == [now + i * pace for i in range(6)]
    assert reserved[0][1] == {"_id": key, "next_at": now + pace}  # the inserted document
    assert db.addresses.find_one({"_id": key})["next_at"] == now + 6 * pace
    # once its last slot has passed, the address is free again: the slot is now
    later = now + 7 * pace
    assert store.reserve_slot(db, key, later, 2)[0] == later
    assert db.addresses.find_one({"_id": key})["next_at"] == later + pace


def test_the_global_rate_defers_what_is_over_it(notify_with):
    notify = notify_with(NOTIFY_RATE_WHATSAPP=2)
    docs = [new_doc() for _ in range(6)]
    for doc in docs:
        request(notify, doc)
    wait_until(lambda: all(state_of(notify, d["_id"], "sent", "deferred") for d in docs),
               message="all handled")
    reasons = {d["reason"] for d in notify.db.notifications.find({"state": "deferred"})}
    assert reasons <= {"rate"}
    wait_until(lambda: timer_round(notify) is not None and len(notify.wa.requests) == 6,
               timeout=20, message="all sent")
    per_second = {}
    for r in notify.wa.requests:
        second = int(r["at"].timestamp())
        per_second[second] = per_second.get(second, 0) + 1
    assert max(per_second.values()) <= 3  # 2 per second, the stand-in's clock a hair apart


# -- channels ---------------------------------------------------------------------------------

def test_email_arrives_with_subject_html_and_text_parts(notify):
    doc = new_doc(channels=("email",))
    request(notify, doc)
    done = wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    [message] = wait_until(lambda: notify.smtp.messages, message="email received")
    assert message["Subject"] == "Permohonan terdaftar"
    assert message["To"] == "warga@contoh.id"
    assert message["Message-ID"] == done["deliveries"][0]["provider_id"]
    parts = {part.get_content_type(): part.get_content() for part in message.walk()
             if not part.is_multipart()}
    assert "PBG-2026-0001" in parts["text/plain"]
    assert "<b>PBG-2026-0001</b>" in parts["text/html"]
    assert done["deliveries"][0]["statuses"][0]["status"] == "sent"


def test_inapp_goes_to_the_inbox_exactly_once(notify):
    person = "198609262015051001"
    doc = new_doc(channels=("inapp",), person=person)
    request(notify, doc)
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    month = notify.db.inbox.find_one({"_id": f"{person}:{doc['created_at']:%Y-%m}"})
    item = month["items"][doc["_id"]]
    assert (item["title"], item["read_at"]) == ("Permohonan terdaftar", None)
    assert notify.db.inbox.find_one({"_id": person})["unread"] == 1
    # the delivery repeated (a crash after the inbox write): nothing more
    notify.db.notifications.update_one({"_id": doc["_id"]},
                                       {"$set": {"state": "queued", "deliveries": []}})
    publish_requested(notify.settings, doc["_id"])
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent again")
    assert notify.db.inbox.find_one({"_id": person})["unread"] == 1
    assert len(notify.db.inbox.find_one({"_id": month["_id"]})["items"]) == 1


def test_sms_delivery_report_moves_it_forward(notify):
    doc = new_doc(channels=("sms",))
    notify.sms.auto_report = ["delivered"]
    request(notify, doc)
    done = wait_until(lambda: state_of(notify, doc["_id"], "delivered"), message="delivered")
    assert done["deliveries"][0]["provider_id"].startswith("sms-")


# -- two replicas, a crash ----------------------------------------------------------------------

def test_two_notify_processes_on_one_database_send_each_message_once(config, notify):
    other = start_notify_process(config, notify.settings)
    try:
        docs = [new_doc() for _ in range(20)]
        for doc in docs:
            request(notify, doc)
            publish_requested(notify.settings, doc["_id"])  # a duplicate request each
        wait_until(lambda: all(state_of(notify, d["_id"], "sent") for d in docs), timeout=30,
                   message="all sent")
        callbacks = [r["callback_data"] for r in notify.wa.requests]
        assert len(callbacks) == 20 and len(set(callbacks)) == 20
    finally:
        other.stop()


def test_one_event_delivered_to_two_processes_at_once_sends_once(config, notify):
    """Ten ``permit.registered`` envelopes, each published twice at once while two notify
    processes consume: without an inbox both copies run, often in both processes at once;
    the notification's insert (its id derives from the event) lets one send."""
    other = start_notify_process(config, notify.settings)
    try:
        before = handled(REGISTERED)
        phones = [a_phone() for _ in range(10)]
        envelopes = [permit_registered(phone) for phone in phones]
        for envelope in envelopes:
            race([1, 2], lambda _, e=envelope: publish_raw(
                notify.settings, "permits", "permit.registered", e))
        wait_until(lambda: handled(REGISTERED) - before + handled_by_process(
            other, REGISTERED) == 20, timeout=30, message="all twenty copies handled")
        assert handled_by_process(other, REGISTERED) > 0  # both processes took copies
        for envelope, phone in zip(envelopes, phones, strict=True):
            [doc] = notify.db.notifications.find({"event.id": envelope["id"]})
            wait_until(lambda d=doc: state_of(notify, d["_id"], "sent"), message="sent")
            assert len(sends_to(notify, phone)) == 1
        assert inbox_marks(notify, REGISTERED[0]) == []
    finally:
        other.stop()


def test_two_pending_timers_at_once_request_each_notification_once(notify_with):
    notify = notify_with(NOTIFY_RATE_WHATSAPP=1)
    other = notify_with(NOTIFY_RATE_WHATSAPP=1)
    docs = [new_doc() for _ in range(4)]
    for doc in docs:
        request(notify, doc)
    wait_until(lambda: all(state_of(notify, d["_id"], "sent", "deferred") for d in docs),
               message="handled")
    wait_until(lambda: sum(race([notify.container, other.container],
                                lambda c: timer_round(notify, c))) >= 0 and
               len(notify.wa.requests) == 4, timeout=20, message="all sent")
    callbacks = [r["callback_data"] for r in notify.wa.requests]
    assert len(set(callbacks)) == 4 and all(c.endswith(":whatsapp:1") for c in callbacks)


def test_a_restart_mid_send_sends_once(config, notify):
    """The first process is killed while WhatsApp holds the reply; the event runs again in a
    second process after the inbox lease, finds the claimed attempt, waits for its lease,
    records an unknown outcome, and the status webhook of the held send settles it."""
    fast = {"INBOX_LEASE_SECONDS": 2, "NOTIFY_PENDING_INTERVAL_SECONDS": 0.2,
            "NOTIFY_UNKNOWN_WINDOW_SECONDS": 30, "NOTIFY_PROVIDER_TIMEOUT_SECONDS": 10,
            "NOTIFY_ATTEMPT_LEASE_MARGIN_SECONDS": 0}
    notify.container.stop()  # only child processes handle the event
    notify.wa.hold_seconds = 30
    notify.wa.plan("timeout")
    first = start_notify_process(config, notify.settings, **fast)
    doc = new_doc()
    request(notify, doc)
    wait_until(lambda: notify.wa.requests, message="the send reached WhatsApp")
    first.kill()
    claimed = stored(notify, doc["_id"])
    assert claimed["state"] == "sending" and attempts(claimed)[0]["outcome"] is None
    second = start_notify_process(config, notify.settings, **fast)
    notify.wa.webhook_url = second.webhook_url
    try:
        waiting = wait_until(lambda: state_of(notify, doc["_id"], "deferred"), timeout=40,
                             message="unknown outcome after the lease")
        assert waiting["reason"] == "unknown_outcome"
        [held] = notify.wa.requests
        notify.wa.post_status(held["wamid"], "sent")
        wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="settled")
        assert len(notify.wa.requests) == 1
    finally:
        second.stop()


# -- retention ----------------------------------------------------------------------------------

def test_retention_purges_bodies_and_keeps_the_delivery_record(notify):
    doc = new_doc()
    request(notify, doc)
    wait_until(lambda: state_of(notify, doc["_id"], "sent"), message="sent")
    recent = new_doc()
    notify.db.notifications.insert_one({**recent, "state": "sent"})
    with entrypoint_hook(notify.container, "purge_timer") as purge:
        assert purge(now=datetime.now(UTC) + timedelta(days=29)) == 0
        assert purge(now=datetime.now(UTC) + timedelta(days=30, seconds=5)) == 2
        assert purge(now=datetime.now(UTC) + timedelta(days=31)) == 0
    purged = stored(notify, doc["_id"])
    assert purged["content"] is None and purged["purged_at"] is not None
    assert purged["deliveries"][0]["provider_id"].startswith("wamid.")


def test_pending_gauges_count_the_backlog(notify_with):
    quiet, _ = _window_around_now(after=3600)
    notify = notify_with(NOTIFY_QUIET_HOURS=quiet, NOTIFY_GAUGE_SECONDS=0)
    docs = [new_doc() for _ in range(3)]
    for doc in docs:
        request(notify, doc)
    wait_until(lambda: notify.db.pending.count_documents({}) == 3, message="deferred")
    assert timer_round(notify) == 0
    text = notify.client.request("GET", "/metrics").text
    assert "pamong_notify_pending_depth 3.0" in text
    assert "pamong_notify_pending_overdue 0.0" in text
    assert 'pamong_notify_messages_total{channel="whatsapp",state="deferred"}' in text
