"""The event consumer (``@handles``) against the real broker and database: attempts counted in
our own header, slow handlers and duplicates, copies to missing queues, broken contracts,
``apply_once`` and the inbox's retention."""

import time
from datetime import UTC, datetime, timedelta

import eventlet
import pytest
from kombu import Connection
from kombu.exceptions import ChannelError
from marshmallow import Schema, fields, validates_schema
from prometheus_client import REGISTRY

from pamong.config import DEFAULTS
from pamong.events import dlq
from pamong.events.consumer import INBOX_BUCKET, Inbox, apply_once, handles, inbox_key
from pamong.events.contracts import contract
from pamong.events.envelope import Event, new_event
from pamong.events.topology import (
    ATTEMPT_HEADER,
    Binding,
    QueueOptions,
    declare,
    retry_queue_name,
)
from pamong.storage import Mongo, client_for, database_name
from pamong.testing import done_marks, publish_raw, running, wait_until
from tests.kernel_services import Consumer

pytestmark = pytest.mark.integration

SINK_QUEUE = "probesink.on_recorded"


def db_of(config, service):
    return client_for(config["MONGO_URI"])[database_name(config, service)]


def totals(config, service="probesink"):
    return {d["_id"]: d for d in db_of(config, service).totals.find()}


def envelope(key, amount=1):
    return new_event("probe", "probe.recorded", {"key": key, "amount": amount})


def parked(config, queue=SINK_QUEUE):
    return dlq.list_dlqs(config["AMQP_URI"], [queue])[0][1]


def consumed(handler, outcome, event_type="probe.recorded"):
    return REGISTRY.get_sample_value("pamong_events_consumed_total", {
        "handler": handler, "type": event_type, "outcome": outcome}) or 0


# -- finding 1: attempts in our own header ---------------------------------------------------


def stripped(headers, queue):
    return {k: v for k, v in headers.items() if k != "x-death"}


def rewritten(headers, queue):
    """What RabbitMQ 4 leaves: its own x-death, count 1, whatever the client sent."""
    return {**stripped(headers, queue),
            "x-death": [{"queue": queue, "reason": "expired", "count": 1, "exchange": ""}]}


@pytest.mark.parametrize("rewrite", [stripped, rewritten])
def test_a_failing_message_parks_after_its_last_attempt_whatever_the_broker_does_to_x_death(
        config, rewrite):
    # long delays: the test itself carries each copy back from its delay queue, as the broker
    # would, and rewrites x-death on the way as RabbitMQ 4 does
    config = {**config, "RETRY_DELAYS": [30, 30]}
    faults = db_of(config, "probesink").faults
    faults.insert_one({"_id": "doomed", "remaining": 1000})
    carried = []
    with running(config, Consumer), Connection(config["AMQP_URI"]) as connection:
        channel = connection.channel()
        producer = connection.Producer(channel)

        def carry_back():
            for step in (1, 2):
                message = channel.basic_get(retry_queue_name(SINK_QUEUE, step), no_ack=False)
                if message is not None:
                    producer.publish(
                        message.body, exchange="", routing_key=SINK_QUEUE,
                        headers=rewrite(message.headers, retry_queue_name(SINK_QUEUE, step)),
                        content_type=message.content_type,
                        content_encoding=message.content_encoding,
                        message_id=message.properties.get("message_id"),
                        type=message.properties.get("type"))
                    channel.basic_ack(message.delivery_tag)
                    carried.append((step, message.headers.get(ATTEMPT_HEADER)))
            return parked(config) == 1 or len(carried) > 4  # parked, or cycling for ever

        publish_raw(config, "probe", "probe.recorded", envelope("doomed"))
        wait_until(carry_back, timeout=20, message="parked or cycling")
        entries = dlq.show(config["AMQP_URI"], SINK_QUEUE)
    assert carried == [(1, 2), (2, 3)]
    [entry] = entries
    assert entry["reason"] == "exhausted" and entry["attempts"] == 3
    assert faults.find_one({"_id": "doomed"})["remaining"] == 1000 - 3


# -- finding 2: a live worker's claim is renewed ----------------------------------------------


class SlowSink:
    name = "slowsink"
    db = Mongo()

    @handles("probe", "probe.recorded")
    def on_recorded(self, event):
        self.db.starts.update_one({"_id": event.data["key"]}, {"$inc": {"n": 1}}, upsert=True)
        time.sleep(event.data["amount"])
        self.db.totals.update_one({"_id": event.data["key"]}, {"$inc": {"times": 1}},
                                  upsert=True)


def outlive_first_lease(config, event):
    """Wait until the claim on ``event`` has outlived the lease it was first given (and so
    stands only because it was renewed)."""
    key = inbox_key("slowsink.on_recorded", event["id"],
                    datetime.fromisoformat(event["occurred_at"]))
    claims = db_of(config, "slowsink")[key.bucket]
    first_until = wait_until(lambda: (claims.find_one({"_id": key.id}) or {}).get("until"),
                             message="the claim")
    wait_until(lambda: time.time() > first_until + 0.2, timeout=10,
               message="the claim's first lease over")


def test_a_duplicate_delivered_while_a_slow_handler_runs_is_not_applied_again(config):
    config = {**config, "INBOX_LEASE_SECONDS": 1}
    handler = "slowsink.on_recorded"
    before = consumed(handler, "ok") + consumed(handler, "duplicate")
    event = envelope("slow", 3)  # the handler takes 3 s, three times the lease
    with running(config, SlowSink):
        publish_raw(config, "probe", "probe.recorded", event)
        wait_until(lambda: db_of(config, "slowsink").starts.find_one({"_id": "slow"}))
        outlive_first_lease(config, event)  # its worker is still busy
        publish_raw(config, "probe", "probe.recorded", event)
        wait_until(lambda: consumed(handler, "ok") + consumed(handler, "duplicate") == before + 2,
                   timeout=15, message="both deliveries settled")
    assert db_of(config, "slowsink").starts.find_one({"_id": "slow"})["n"] == 1
    assert totals(config, "slowsink")["slow"]["times"] == 1


def test_a_slow_handler_keeps_its_claim_while_the_service_stops(config):
    config = {**config, "INBOX_LEASE_SECONDS": 1}
    event = envelope("draining", 3)  # the handler takes 3 s, three times the lease
    key = inbox_key("slowsink.on_recorded", event["id"],
                    datetime.fromisoformat(event["occurred_at"]))
    other_replica = Inbox(db_of(config, "slowsink"), lease=1)
    with running(config, SlowSink) as runner:
        publish_raw(config, "probe", "probe.recorded", event)
        wait_until(lambda: db_of(config, "slowsink").starts.find_one({"_id": "draining"}))
        stopping = eventlet.spawn(runner.stop)  # waits for the handler, as a draining pod does
        outlive_first_lease(config, event)  # its worker is still busy
        seen_elsewhere = other_replica.claim(key)
        stopping.wait()  # before asserting: a second stop racing this one would hang
    assert seen_elsewhere == "busy"  # a duplicate delivered to another replica does not run
    assert totals(config, "slowsink")["draining"]["times"] == 1
    assert done_marks(db_of(config, "slowsink")) == 1


# -- finding 4: a copy whose queue is missing does not ack the original -----------------------


def delete_queue(config, name):
    with Connection(config["AMQP_URI"]) as connection:
        connection.default_channel.queue_delete(name)


def declare_again(config):
    binding = Binding("probesink", "on_recorded", "probe", "probe.recorded")
    with Connection(config["AMQP_URI"]) as connection:
        declare(connection.default_channel, binding, len(config["RETRY_DELAYS"]),
                QueueOptions.from_config(config))


def test_a_failure_while_the_retry_queue_is_missing_keeps_the_message(config):
    db_of(config, "probesink").faults.insert_one({"_id": "kept", "remaining": 2})
    with running(config, Consumer):
        delete_queue(config, retry_queue_name(SINK_QUEUE, 1))
        publish_raw(config, "probe", "probe.recorded", envelope("kept", 4))
        # the copy is returned, the original requeued after a pause and tried again
        wait_until(lambda: totals(config).get("kept"), timeout=15, message="effect of kept")
    assert totals(config)["kept"]["times"] == 1
    assert db_of(config, "probesink").faults.find_one({"_id": "kept"})["remaining"] == 0


def test_an_invalid_message_is_kept_until_its_dlq_exists_again(config):
    bad = envelope("bad")
    bad["data"]["amount"] = "eleven"
    with running(config, Consumer):
        delete_queue(config, f"{SINK_QUEUE}.dlq")
        held_back = REGISTRY.get_sample_value("pamong_events_held_back_total",
                                              {"handler": SINK_QUEUE}) or 0
        publish_raw(config, "probe", "probe.recorded", bad)
        wait_until(lambda: (REGISTRY.get_sample_value("pamong_events_held_back_total",
                                                      {"handler": SINK_QUEUE}) or 0) > held_back,
                   message="the park refused and the message given back")
        declare_again(config)
        wait_until(lambda: parked(config) == 1, timeout=15, message="parked once the DLQ is back")
        [entry] = dlq.show(config["AMQP_URI"], SINK_QUEUE)
    assert entry["message_id"] == bad["id"] and entry["reason"] == "invalid"


def test_personal_data_in_a_handler_error_is_masked_in_the_broker_headers(config):
    config = {**config, "RETRY_DELAYS": [30]}  # the retry copy waits: the test reads it
    key = "NIK 3510041211870001 HP 0812-3456-7890"
    shown = "injected fault for NIK 3510********0001 HP +62812****7890"
    db_of(config, "probesink").faults.insert_one({"_id": key, "remaining": 1000})
    with running(config, Consumer), Connection(config["AMQP_URI"]) as connection:
        channel = connection.channel()
        publish_raw(config, "probe", "probe.recorded", envelope(key))
        retry = wait_until(lambda: channel.basic_get(retry_queue_name(SINK_QUEUE, 1)),
                           message="retry copy")
        assert retry.headers["x-pamong-error"].endswith(shown)
        # carried back at once instead of after 30 s: its last attempt fails and parks it
        connection.Producer(channel).publish(
            retry.body, exchange="", routing_key=SINK_QUEUE, headers=retry.headers,
            content_type=retry.content_type, content_encoding=retry.content_encoding,
            message_id=retry.properties.get("message_id"))
        channel.basic_ack(retry.delivery_tag)
        wait_until(lambda: parked(config) == 1, timeout=15, message="parked")
        [entry] = dlq.show(config["AMQP_URI"], SINK_QUEUE)
    assert entry["reason"] == "exhausted" and entry["error"].endswith(shown)


def queue_exists(config, name):
    with Connection(config["AMQP_URI"]) as connection:
        try:
            connection.channel().queue_declare(name, passive=True)
        except ChannelError:  # 404 NOT_FOUND
            return False
        return True


def test_a_config_without_retry_delays_gets_the_default_schedule(config):
    config = {k: v for k, v in config.items() if k != "RETRY_DELAYS"}
    with running(config, Consumer):
        pass
    steps = len(DEFAULTS["RETRY_DELAYS"])
    assert queue_exists(config, retry_queue_name(SINK_QUEUE, steps))
    assert not queue_exists(config, retry_queue_name(SINK_QUEUE, steps + 1))


# -- finding 7: a contract that breaks parks the message, the service stays up ----------------


@contract("probe.fragile", 1)
class ProbeFragile(Schema):
    key = fields.String(required=True)

    @validates_schema
    def check(self, data, **kwargs):
        raise KeyError("rule")  # a contract's bug, not a ValidationError


class FragileSink:
    name = "fragilesink"
    db = Mongo()

    @handles("probe", "probe.fragile")
    def on_fragile(self, event):
        self.db.totals.insert_one({"_id": event.id})


def test_a_contract_raising_something_else_than_a_validation_error_parks_the_message(config):
    queue = "fragilesink.on_fragile"
    events = [new_event("probe", "probe.fragile", {"key": k}) for k in ("one", "two")]
    with running(config, FragileSink):
        for event in events:  # the second is taken only by a consumer still alive
            publish_raw(config, "probe", "probe.fragile", event)
        wait_until(lambda: parked(config, queue) == 2, timeout=15, message="both parked")
        entries = dlq.show(config["AMQP_URI"], queue)
    assert {e["message_id"] for e in entries} == {e["id"] for e in events}
    assert {e["reason"] for e in entries} == {"invalid"}
    assert "KeyError" in entries[0]["error"]
    assert not totals(config, "fragilesink")


# -- finding 3: apply_once --------------------------------------------------------------------


def as_event(key):
    return Event(**{**envelope(key), "occurred_at": datetime.now(UTC)})


def test_apply_once_applies_an_event_once_and_remembers_a_bounded_number(config):
    collection = db_of(config, "once").counters
    first = as_event("c")
    assert apply_once(collection, {"_id": "c"}, {"$inc": {"n": 1}}, first, upsert=True)
    assert not apply_once(collection, {"_id": "c"}, {"$inc": {"n": 1}}, first, upsert=True)
    later = [as_event(f"e{i}") for i in range(210)]
    for event in later:
        assert apply_once(collection, {"_id": "c"}, {"$inc": {"n": 1}}, event)
    stored = collection.find_one({"_id": "c"})
    assert stored["n"] == 211
    # cut back to the newest 100 at the 200th id, then 11 more: bounded, the newest kept
    assert len(stored["_applied"]) == stored["_applied_n"] == 111
    assert stored["_applied"] == [e.id for e in later[-111:]]
    assert first.id not in stored["_applied"]
    assert not apply_once(collection, {"_id": "c"}, {"$inc": {"n": 1}}, later[-111])


def test_apply_once_with_a_version_compare_leaves_a_newer_document_alone(config):
    collection = db_of(config, "once").records
    collection.insert_one({"_id": "r", "version": 5})
    older = as_event("r")
    assert not apply_once(collection, {"_id": "r", "version": {"$lte": 3}},
                          {"$set": {"version": 3}}, older, upsert=True)
    assert collection.find_one({"_id": "r"}) == {"_id": "r", "version": 5}


# -- finding 8: claims become done marks; whole days are purged -------------------------------


def test_a_handled_event_leaves_one_done_mark_and_no_claim(config):
    with running(config, Consumer):
        publish_raw(config, "probe", "probe.recorded", envelope("k", 1))
        wait_until(lambda: done_marks(db_of(config, "probesink")) == 1)
    db = db_of(config, "probesink")
    [bucket] = [n for n in db.list_collection_names() if n.startswith(INBOX_BUCKET)]
    assert bucket == f"{INBOX_BUCKET}{datetime.now(UTC):%Y%m%d}"
    [mark] = db[bucket].find()
    assert mark["_id"].startswith(f"{SINK_QUEUE}:") and "at" in mark
    assert "_inbox" not in db.list_collection_names()


def test_purge_drops_the_days_older_than_the_retention_and_keeps_the_rest(config):
    db = db_of(config, "probesink")
    inbox = Inbox(db, lease=60)
    now = datetime.now(UTC)
    ages = {"old": timedelta(hours=80), "edge": timedelta(hours=47), "today": timedelta(0)}
    keys = {name: inbox_key(SINK_QUEUE, name, now - age) for name, age in ages.items()}
    for key in keys.values():
        assert inbox.claim(key) == "run"
        inbox.done(key)
    db.unrelated_20000101.insert_one({"_id": 1})

    dropped = inbox.purge(retention_hours=48)

    assert dropped == [keys["old"].bucket]
    assert inbox.claim(keys["edge"]) == inbox.claim(keys["today"]) == "done"
    assert "unrelated_20000101" in db.list_collection_names()


def test_a_retention_shorter_than_the_retries_is_refused(config):
    config = {**config, "RETRY_DELAYS": [600, 3600], "INBOX_DONE_RETENTION_HOURS": 1}
    with pytest.raises(ValueError, match="INBOX_DONE_RETENTION_HOURS"):
        with running(config, Consumer):
            pass


# -- a handler's own concurrency ---------------------------------------------------------------


class NarrowSink:
    """Two handlers of one event: one bounded to 2 at once, one with the container's workers."""

    name = "narrowsink"
    db = Mongo()
    running = {"narrow": 0, "wide": 0}
    peak = {"narrow": 0, "wide": 0}

    def _hold(self, which, event):
        self.running[which] += 1
        self.peak[which] = max(self.peak[which], self.running[which])
        eventlet.sleep(0.3)  # a slow handler: its events pile up meanwhile
        self.running[which] -= 1
        self.db.totals.update_one({"_id": which}, {"$inc": {"times": 1}}, upsert=True)

    @handles("probe", "probe.recorded", concurrency=2)
    def on_recorded(self, event):
        self._hold("narrow", event)

    @handles("probe", "probe.recorded")
    def on_recorded_wide(self, event):
        self._hold("wide", event)


def test_a_handler_with_a_concurrency_runs_at_most_that_many_events_at_once(config):
    events = [envelope(f"n{i}") for i in range(8)]
    with running(config, NarrowSink):
        for event in events:
            publish_raw(config, "probe", "probe.recorded", event)
        wait_until(lambda: {k: v["times"] for k, v in totals(config, "narrowsink").items()}
                   == {"narrow": 8, "wide": 8}, timeout=30, message="every event handled")
    assert NarrowSink.peak["narrow"] == 2  # bounded, and it did use both
    assert NarrowSink.peak["wide"] > 2  # the other handler of the same service was not


# -- a handler without the inbox (its effect is idempotent by itself) ---------------------------


class BareSink:
    """Records every run: ``inbox=False`` leaves duplicates to the handler, and this one does
    nothing about them, so the test sees each run. ``faults`` make it fail."""

    name = "baresink"
    db = Mongo()

    @handles("probe", "probe.recorded", inbox=False)
    def on_recorded(self, event):
        fault = self.db.faults.find_one_and_update(
            {"_id": event.data["key"], "remaining": {"$gt": 0}}, {"$inc": {"remaining": -1}})
        if fault is not None:
            raise RuntimeError(f"injected fault for {event.data['key']}")
        self.db.runs.insert_one({"event": event.id, "key": event.data["key"]})


BARE_QUEUE = "baresink.on_recorded"


def inbox_buckets(db):
    return [n for n in db.list_collection_names() if n.startswith(INBOX_BUCKET)]


def test_a_handler_without_the_inbox_runs_a_duplicate_again_and_writes_no_inbox(config):
    before = {o: consumed(BARE_QUEUE, o) for o in ("ok", "duplicate")}
    event = envelope("twice")
    with running(config, BareSink):
        publish_raw(config, "probe", "probe.recorded", event)
        publish_raw(config, "probe", "probe.recorded", event)
        wait_until(lambda: consumed(BARE_QUEUE, "ok") == before["ok"] + 2, timeout=15,
                   message="both deliveries handled")
    db = db_of(config, "baresink")
    assert [r["event"] for r in db.runs.find()] == [event["id"]] * 2
    assert consumed(BARE_QUEUE, "duplicate") == before["duplicate"]
    assert inbox_buckets(db) == []


def test_a_failing_handler_without_the_inbox_is_retried_then_parked(config):
    db = db_of(config, "baresink")
    db.faults.insert_many([{"_id": "flaky", "remaining": 1},
                           {"_id": "doomed", "remaining": 1000}])
    doomed = envelope("doomed")
    with running(config, BareSink):
        publish_raw(config, "probe", "probe.recorded", envelope("flaky"))
        publish_raw(config, "probe", "probe.recorded", doomed)
        wait_until(lambda: db.runs.find_one({"key": "flaky"}) and parked(config, BARE_QUEUE),
                   timeout=15, message="flaky handled on its retry, doomed parked")
        [entry] = dlq.show(config["AMQP_URI"], BARE_QUEUE)
    assert entry["message_id"] == doomed["id"]
    assert entry["reason"] == "exhausted" and entry["attempts"] == 3
    assert db.faults.find_one({"_id": "doomed"})["remaining"] == 1000 - 3
    assert db.runs.count_documents({}) == 1  # flaky once; doomed never
    assert inbox_buckets(db) == []
