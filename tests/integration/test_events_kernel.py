"""The outbox, relay and consumer kernel against the real RabbitMQ and database."""

import json
import time
from datetime import UTC, datetime, timedelta

import bson
import eventlet
import pymongo
import pytest
from kombu import Connection, Queue
from marshmallow import ValidationError
from prometheus_client import REGISTRY

from pamong.cli.main import main as pamong_cli
from pamong.events import dlq
from pamong.events.envelope import new_event
from pamong.events.outbox import (
    OUTBOX,
    ConfirmingPublisher,
    OutboxWriter,
    Relay,
    batch_document,
    unpack,
)
from pamong.events.topology import ATTEMPT_HEADER, REPLAYS_HEADER
from pamong.storage import client_for, database_name
from pamong.testing import (
    EventRecorder,
    broker,
    publish_raw,
    rpc_proxy,
    running,
    wait_until,
)
from tests.kernel_services import Consumer, Producer

pytestmark = pytest.mark.integration

SINK_QUEUE = "probesink.on_recorded"


def db_of(config, service):
    return client_for(config["MONGO_URI"])[database_name(config, service)]


def totals(config):
    return {d["_id"]: d for d in db_of(config, "probesink").totals.find()}


def consumed(outcome):
    """Deliveries the sink's handler has taken so far with ``outcome`` (this process)."""
    return REGISTRY.get_sample_value("pamong_events_consumed_total", {
        "handler": SINK_QUEUE, "type": "probe.recorded", "outcome": outcome}) or 0


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


class Before(pymongo.monitoring.CommandListener):
    """Runs ``action`` once, just before the first ``command`` on ``collection`` leaves this
    client: another writer's step lands deterministically between two steps of the code under
    test (which gets its database from ``hooked_db``)."""

    def __init__(self, command, collection, action):
        self.command, self.collection, self.action = command, collection, action
        self.fired = False

    def started(self, event):
        if not self.fired and event.command_name == self.command \
                and event.command.get(self.command) == self.collection:
            self.fired = True
            self.action()

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


class Commands(pymongo.monitoring.CommandListener):
    """The (command, collection) pairs a client sends."""

    def __init__(self):
        self.sent = []

    def started(self, event):
        self.sent.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
def hooked_db(config):
    """``hooked_db(listener, service)``: that service's database through a client of its own
    that reports every command to ``listener``."""
    clients = []

    def connect(listener, service="probe"):
        clients.append(pymongo.MongoClient(config["MONGO_URI"], event_listeners=[listener]))
        return clients[-1][database_name(config, service)]

    yield connect
    for client in clients:
        client.close()


def envelope(key, amount=1, **overrides):
    event = new_event("probe", "probe.recorded", {"key": key, "amount": amount})
    event.update(overrides)
    return event


def declare_consumer(config, monkeypatch):
    """The consumer's queues exist before the services start, as `make run` declares the bus:
    a producer's first sweep may publish before the consumer has declared them itself."""
    monkeypatch.setenv("AMQP_URI", config["AMQP_URI"])
    assert pamong_cli(["bus", "declare", "--service", "tests.kernel_services:Consumer"]) == 0


def write_pending(config, keys):
    """Documents with unpublished events, as a producer that died before relaying leaves them
    (its relay, which never runs here, held them only in memory)."""
    db = db_of(config, "probe")
    dead = {**config, "OUTBOX_WRITER_LEASE_SECONDS": 0}  # its lease ran out at once
    writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", dead))
    for amount, key in enumerate(keys):
        event = writer.event("probe.recorded", {"key": key, "amount": amount})
        writer.insert("records", {"_id": key, "amount": amount}, [event])


def test_recorded_event_changes_consumer_state_once(config):
    with running(config, Producer, Consumer), rpc_proxy(config) as rpc:
        rpc.probe.record("a", 5)
        wait_until(lambda: totals(config).get("a"), message="effect of a")
        wait_until(lambda: not db_of(config, "probe").records.find_one({"_id": "a"})[OUTBOX],
                   message="outbox emptied")
    assert totals(config)["a"]["times"] == 1
    assert totals(config)["a"]["sum"] == 5


def test_same_event_delivered_twice_changes_state_once(config):
    event = envelope("twice", 3)
    duplicates = consumed("duplicate")
    with running(config, Consumer):
        publish_raw(config, "probe", "probe.recorded", event)
        publish_raw(config, "probe", "probe.recorded", event)
        publish_raw(config, "probe", "probe.recorded", envelope("after", 1))
        wait_until(lambda: "after" in totals(config) and "twice" in totals(config))
        wait_until(lambda: consumed("duplicate") > duplicates, message="the duplicate taken")
    assert totals(config)["twice"]["times"] == 1


def test_handler_failing_twice_succeeds_after_backoff(config):
    db_of(config, "probesink").faults.insert_one({"_id": "flaky", "remaining": 2})
    with running(config, Consumer):
        publish_raw(config, "probe", "probe.recorded", envelope("flaky", 7))
        wait_until(lambda: totals(config).get("flaky"), timeout=15, message="retried effect")
    assert db_of(config, "probesink").faults.find_one({"_id": "flaky"})["remaining"] == 0
    assert totals(config)["flaky"]["times"] == 1
    assert dlq.list_dlqs(config["AMQP_URI"], [SINK_QUEUE]) == [(f"{SINK_QUEUE}.dlq", 0)]


def test_always_failing_handler_parks_in_dlq_and_replay_delivers_after_fix(config, monkeypatch):
    faults = db_of(config, "probesink").faults
    faults.insert_one({"_id": "broken", "remaining": 1000})
    event = envelope("broken", 9)
    with running(config, Consumer):
        publish_raw(config, "probe", "probe.recorded", event)
        wait_until(lambda: dlq.list_dlqs(config["AMQP_URI"], [SINK_QUEUE])[0][1] == 1,
                   timeout=15, message="message parked")
        [parked] = dlq.show(config["AMQP_URI"], SINK_QUEUE)
        assert parked["message_id"] == event["id"]
        assert parked["reason"] == "exhausted"
        assert parked["attempts"] == len(config["RETRY_DELAYS"]) + 1
        assert "injected fault for broken" in parked["error"]
        assert faults.find_one({"_id": "broken"})["remaining"] == 1000 - parked["attempts"]
        assert "broken" not in totals(config)

        faults.delete_one({"_id": "broken"})  # the operator fixes the fault
        monkeypatch.setenv("AMQP_URI", config["AMQP_URI"])
        assert pamong_cli(["dlq", "replay", SINK_QUEUE,
                           "--service", "tests.kernel_services:Consumer"]) == 0
        wait_until(lambda: totals(config).get("broken"), message="replayed effect")
    assert totals(config)["broken"]["times"] == 1
    assert dlq.list_dlqs(config["AMQP_URI"], [SINK_QUEUE]) == [(f"{SINK_QUEUE}.dlq", 0)]


@pytest.mark.parametrize("bad_body, content_type", [
    ({"id": "not-a-uuid", "type": "probe.recorded"}, "application/json"),
    (None, "application/json"),  # valid envelope, data breaks the contract (amount not int)
    (b"{not json", "application/json"),
    (b"\x00\x01binary", "application/octet-stream"),
])
def test_invalid_message_goes_to_dlq_and_next_is_processed(config, bad_body, content_type):
    if bad_body is None:
        bad_body = envelope("bad", 1)
        bad_body["data"]["amount"] = "eleven"
    with running(config, Consumer):
        publish_raw(config, "probe", "probe.recorded", bad_body, content_type=content_type)
        publish_raw(config, "probe", "probe.recorded", envelope("good", 2))
        wait_until(lambda: totals(config).get("good"), message="valid event after poison")
        wait_until(lambda: dlq.list_dlqs(config["AMQP_URI"], [SINK_QUEUE])[0][1] == 1)
        [parked] = dlq.show(config["AMQP_URI"], SINK_QUEUE)
    assert parked["reason"] in {"invalid", "undecodable"}
    assert parked["attempts"] == 1
    dlq.purge(config["AMQP_URI"], SINK_QUEUE)


def test_event_published_before_consumer_ever_started_is_kept_by_bus_declare(config,
                                                                            monkeypatch):
    monkeypatch.setenv("AMQP_URI", config["AMQP_URI"])
    assert pamong_cli(["bus", "declare", "--service", "tests.kernel_services:Consumer"]) == 0
    with running(config, Producer), rpc_proxy(config) as rpc:
        rpc.probe.record("early", 4)
        wait_until(lambda: not db_of(config, "probe").records.find_one({"_id": "early"})[OUTBOX])
    with running(config, Consumer):
        wait_until(lambda: totals(config).get("early"), message="early event consumed")
    assert totals(config)["early"]["times"] == 1


def test_pending_events_left_by_a_crash_are_published_on_restart(config):
    write_pending(config, ["h1", "h2", "n1"])
    # crash after publishing but before pulling: those events go out a second time
    db = db_of(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    duplicates = consumed("duplicate")
    with running(config, Consumer):
        relay.publisher.publish([("probe", e) for d in db.records.find() for e in d[OUTBOX]])
        relay.publisher.close()
        with running(config, Producer):
            wait_until(lambda: set(totals(config)) == {"h1", "h2", "n1"}, message="all effects")
            wait_until(lambda: db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0)
            wait_until(lambda: consumed("duplicate") - duplicates == 3, message="the repeats")
    assert all(t["times"] == 1 for t in totals(config).values())


def test_two_relays_publishing_the_same_events_give_each_one_effect(config):
    """A writer's relay holds its events; a replica took it for dead (its lease ran out while
    it was paused) and queued the same documents. Both publish all of them at once."""
    db = db_of(config, "probe")
    keys = [f"r{i}" for i in range(200)]
    first = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(db, "probe", first)
    for i, key in enumerate(keys):
        writer.insert("records", {"_id": key}, [writer.event("probe.recorded",
                                                             {"key": key, "amount": i})])
    db["_outbox_writers"].update_one({"_id": first.writer_id}, {"$set": {"until": 0}})
    second = Relay(db, config["AMQP_URI"], "probe", config)
    second.sweep()
    duplicates = consumed("duplicate")

    def drain(relay):
        published = 0
        while count := relay.publish_pending():
            published += count
        relay.publisher.close()
        return published

    with running(config, Consumer):
        counts = [t.wait() for t in [eventlet.spawn(drain, first), eventlet.spawn(drain, second)]]
        assert counts == [len(keys), len(keys)]  # each relay published every event
        wait_until(lambda: len(totals(config)) == len(keys), timeout=60, message="all effects")
        wait_until(lambda: consumed("duplicate") - duplicates == len(keys), timeout=30,
                   message="every second copy recognised")
    assert {t["times"] for t in totals(config).values()} == {1}


def test_outbox_update_requires_the_document_id(config):
    db = db_of(config, "probe")
    writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
    with pytest.raises(ValueError, match="by _id"):
        writer.update("records", {"amount": 1}, {"$set": {"amount": 2}}, [envelope("x")])


def test_publishing_data_that_breaks_its_contract_is_refused(config):
    db = db_of(config, "probe")
    writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
    with pytest.raises(ValidationError, match="probe.recorded v1"):
        writer.event("probe.recorded", {"key": "k", "amount": "many"})
    with pytest.raises(ValidationError, match="key"):
        writer.event("probe.recorded", {"amount": 1})
    assert db.records.count_documents({}) == 0


def test_relay_and_consumer_recover_when_the_broker_drops_connections(config, vhost):
    with running(config, Producer, Consumer):
        db = db_of(config, "probe")
        write_pending(config, ["before"])
        wait_until(lambda: totals(config).get("before"), message="effect before the drop")
        assert broker.drop_all_connections(vhost) >= 1
        write_pending(config, ["after"])
        wait_until(lambda: totals(config).get("after"), timeout=60, message="effect after drop")
        wait_until(lambda: db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0)
    assert {t["times"] for t in totals(config).values()} == {1}


def test_events_added_while_the_relay_publishes_stay_for_the_next_round(config, hooked_db):
    db = db_of(config, "probe")
    second_writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
    second = second_writer.event("probe.recorded", {"key": "race", "amount": 2})

    def another_worker_writes():  # after the relay published the first event, before its pull
        second_writer.update("records", {"_id": "race"}, {"$set": {"amount": 2}}, [second])

    relay_db = hooked_db(Before("update", "records", another_worker_writes))
    first_relay = Relay(relay_db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(db, "probe", first_relay)
    first = writer.event("probe.recorded", {"key": "race", "amount": 1})
    writer.insert("records", {"_id": "race", "amount": 1}, [first])
    try:
        assert first_relay.publish_pending() == 1
    finally:
        first_relay.publisher.close()
    assert [e["id"] for e in db.records.find_one({"_id": "race"})[OUTBOX]] == [second["id"]]


def test_events_tail_prints_every_event_of_a_source(config):
    import eventlet
    from amqp.exceptions import ChannelError

    from pamong.events.tail import tail

    lines = []
    # a source nobody else binds to, so a routed publish can only have reached the tail
    reader = eventlet.spawn(lambda: lines.extend(tail(config["AMQP_URI"], ["tailprobe"],
                                                      count=1)))
    event = envelope("tailed", 3, source="tailprobe")

    def routed():  # mandatory publish: refused (NO_ROUTE) until the tail's queue is bound
        try:
            publish_raw(config, "tailprobe", "probe.recorded", event)
            return True
        except ChannelError:
            return False

    wait_until(routed, timeout=10, interval=0.1, message="tail queue bound")
    with eventlet.Timeout(10):
        reader.wait()
    assert json.loads(lines[0])["id"] == event["id"]
    assert json.loads(lines[0])["data"] == {"key": "tailed", "amount": 3}


def test_bulk_insert_events_travel_in_one_batch_and_once_each(config):
    with running(config, Producer, Consumer), rpc_proxy(config) as rpc:
        rpc.probe.record("bulk-3", 100)  # exists already: its bulk event must not be sent
        wait_until(lambda: totals(config).get("bulk-3"), message="the single record")
        assert rpc.probe.record_bulk("bulk", 50) == ["bulk-3"]
        keys = {f"bulk-{i}" for i in range(50)}  # the vhost's queues may hold other tests' too
        wait_until(lambda: keys <= set(totals(config)), message="every bulk record's effect")
        wait_until(lambda: db_of(config, "probe")["_outbox_batches"].count_documents({}) == 0,
                   message="the batch document deleted after publishing")
        records = db_of(config, "probe").records
        assert records.count_documents({}) == 50
        # no per-record outbox (bulk-3's own event is pulled once the writes pause)
        assert all(not d.get(OUTBOX) for d in records.find({"_id": {"$ne": "bulk-3"}}))
        wait_until(lambda: not records.find_one({"_id": "bulk-3"})[OUTBOX], message="pulled")
    assert totals(config)["bulk-3"]["sum"] == 100  # the first write's amount, once
    assert all(totals(config)[key]["times"] == 1 for key in keys)


def test_a_batch_left_unpacked_by_an_older_release_is_still_relayed(config, monkeypatch):
    """Before batches were packed, their owners and events were plain fields: an upgrade
    must relay what such a release left ready."""
    from datetime import UTC, datetime

    declare_consumer(config, monkeypatch)
    db = db_of(config, "probe")
    db.records.insert_one({"_id": "old-batch", "amount": 4, "_batch": "old"})
    db["_outbox_batches"].insert_one({"_id": "old", "collection": "records",
                                      "owners": ["old-batch"], OUTBOX: [envelope("old-batch", 4)],
                                      "at": datetime.now(UTC)})
    db["_outbox_ready"].insert_one({"_id": "old"})
    with running(config, Producer, Consumer):
        wait_until(lambda: totals(config).get("old-batch"), message="the old batch's event")
        wait_until(lambda: db["_outbox_batches"].count_documents({}) == 0, message="deleted")
    assert totals(config)["old-batch"]["sum"] == 4


def test_a_method_that_waits_inside_a_publish_round_is_not_held_back(config):
    """The publisher gathers publish frames into one send; any other frame goes out at once
    (after what gathered), so a synchronous call there gets its answer."""
    import eventlet


    publisher = ConfirmingPublisher(config["AMQP_URI"])
    publisher._connect()
    try:
        with eventlet.Timeout(10), publisher.cork:
            publisher.channel.exchange_declare("probe.cork", "topic", auto_delete=True)
        publisher.channel.exchange_declare("probe.cork", "topic", passive=True)  # it exists
        event = envelope("corked")  # nothing is bound in this test's vhost: returned
        assert publisher.publish([("probe", event)]) == [event["id"]]  # and confirmed
    finally:
        publisher.close()


def test_a_slow_writer_finding_its_batch_settled_queues_its_events_again(config):
    """The sweep took a slow writer for dead and settled its batch (the ready marker exists).
    The writer, releasing it now, must not lose its events: it queues the same events (same
    ids: consumers deduplicate) in a new batch, owners still beside their events, without
    the one record another writer had created first."""
    db = db_of(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)  # not running: queues only
    writer = OutboxWriter(db, "probe", relay)
    events = [envelope("slow-1", 1), envelope("taken", 2), envelope("slow-2", 3)]
    owners = ["slow-1", "taken", "slow-2"]
    db["_outbox_batches"].insert_one(batch_document("slow", "records", owners, events))
    db["_outbox_ready"].insert_one({"_id": "slow"})  # the sweep's doing
    writer._release("slow", "records", owners, events, {"taken"})
    kept = [events[0], events[2]]
    new = [b for b in db["_outbox_batches"].find() if b["_id"] != "slow"]
    assert len(new) == 1 and db["_outbox_ready"].find_one({"_id": new[0]["_id"]})
    assert unpack(new[0]) == {"owners": ["slow-1", "slow-2"], "events": kept}
    assert list(relay.pending) == [("_outbox_batches", new[0]["_id"])]
    assert [e["id"] for e in relay.pending[("_outbox_batches", new[0]["_id"])].values()] == \
        [e["id"] for e in kept]


def test_a_dead_writers_batch_publishes_only_what_it_wrote(config, monkeypatch):
    """A producer died inside its insert_many: its batch names three owners; it wrote one
    (stamped with the batch), not the second, and the third was written since by someone else
    (with its own events). The sweep settles it: only the written one's event goes out."""
    from datetime import UTC, datetime, timedelta

    declare_consumer(config, monkeypatch)
    db = db_of(config, "probe")
    db.records.insert_one({"_id": "written", "amount": 1, "_batch": "dead"})
    db.records.insert_one({"_id": "rewritten", "amount": 3})
    events = [envelope("written", 1), envelope("never-written", 2), envelope("rewritten", 3)]
    db["_outbox_batches"].insert_one({
        **batch_document("dead", "records", ["written", "never-written", "rewritten"], events),
        "at": datetime.now(UTC) - timedelta(minutes=5)})
    with running(config, Producer, Consumer):
        wait_until(lambda: totals(config).get("written"), message="the written record's event")
        wait_until(lambda: db["_outbox_batches"].count_documents({}) == 0, message="settled")
    assert not {"never-written", "rewritten"} & set(totals(config))


# -- unroutable events, replay, quarantine, sweep ----------------------------------------------

def park(config, queue, body, **headers):
    """A message parked in ``queue`` as the consumer parks one (the queue declared here)."""
    with Connection(config["AMQP_URI"], transport_options={"confirm_publish": True}) as conn:
        Queue(queue, durable=True)(conn.default_channel).declare()
        conn.Producer().publish(json.dumps(body), exchange="", routing_key=queue,
                                headers=headers, message_id=body["id"], type=body["type"],
                                content_type="application/json", delivery_mode=2)


def parked(config, queue):
    """Every message in ``queue``, removed."""
    with Connection(config["AMQP_URI"]) as conn:
        q = Queue(queue, durable=True)(conn.default_channel)
        taken = []
        while (message := q.get(no_ack=True)) is not None:
            taken.append(message)
        return taken


def test_an_event_no_queue_takes_is_parked_listed_and_replayable(config, monkeypatch, capsys):
    monkeypatch.setenv("AMQP_URI", config["AMQP_URI"])
    unroutable = sample("pamong_events_unroutable_total", source="probe", type="probe.recorded")
    with running(config, Producer), rpc_proxy(config) as rpc:
        event_id = rpc.probe.record("lonely", 6)  # no consumer's queue exists yet
        wait_until(lambda: not db_of(config, "probe").records.find_one({"_id": "lonely"})[OUTBOX],
                   message="outbox emptied")
    assert dlq.list_dlqs(config["AMQP_URI"], [], ["probe"]) == [("probe.unroutable", 1)]
    assert sample("pamong_events_unroutable_total", source="probe",
                  type="probe.recorded") == unroutable + 1
    assert pamong_cli(["dlq", "list", "--service", "tests.kernel_services:Producer"]) == 0
    assert "probe.unroutable\t1" in capsys.readouterr().out
    [shown] = dlq.show(config["AMQP_URI"], "probe.unroutable")
    assert (shown["message_id"], shown["reason"]) == (event_id, "unroutable")

    assert pamong_cli(["bus", "declare", "--service", "tests.kernel_services:Consumer"]) == 0
    assert pamong_cli(["dlq", "replay", "probe.unroutable"]) == 0
    assert f"replayed {event_id}" in capsys.readouterr().out
    with running(config, Consumer):
        wait_until(lambda: totals(config).get("lonely"), message="replayed effect")
    assert dlq.list_dlqs(config["AMQP_URI"], [], ["probe"]) == [("probe.unroutable", 0)]


def test_a_parked_unroutable_event_expires_after_its_retention(config):
    # an event type nobody subscribes to must not fill <service>.unroutable for ever
    config = {**config, "UNROUTABLE_RETENTION_HOURS": 1 / 3600}  # a second
    unroutable = sample("pamong_events_unroutable_total", source="probe", type="probe.recorded")
    with running(config, Producer), rpc_proxy(config) as rpc:
        rpc.probe.record("unwanted", 1)
        wait_until(lambda: not db_of(config, "probe").records.find_one(
            {"_id": "unwanted"})[OUTBOX], message="outbox emptied")
    assert sample("pamong_events_unroutable_total", source="probe",
                  type="probe.recorded") == unroutable + 1  # it was parked
    # a classic queue drops an expired message when it reaches the head: a peek does that
    wait_until(lambda: dlq.list_dlqs(config["AMQP_URI"], [], ["probe"])
               == [("probe.unroutable", 0)] and not parked(config, "probe.unroutable"),
               timeout=10, message="the parked event expired")


def test_a_replay_whose_queue_is_missing_keeps_the_message_parked(config):
    event = envelope("ghostly")
    park(config, "ghost.dlq", event, **{"x-pamong-reason": "exhausted"})  # no queue `ghost`
    assert dlq.replay(config["AMQP_URI"], "ghost") == ([], [event["id"]])
    [kept] = parked(config, "ghost.dlq")
    assert kept.properties["message_id"] == event["id"]


def test_replay_takes_only_what_was_parked_when_it_started(config):
    """Every message replayed to ``loop`` is dead-lettered straight back into ``loop.dlq`` (as
    one that fails again is parked again): a replay draining until empty never ends."""
    with Connection(config["AMQP_URI"]) as conn:
        Queue("loop", durable=True, queue_arguments={
            "x-message-ttl": 0, "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": "loop.dlq"})(conn.default_channel).declare()
    events = [envelope(f"loop-{i}") for i in range(3)]
    for event in events:
        park(config, "loop.dlq", event, **{ATTEMPT_HEADER: 3, REPLAYS_HEADER: 1,
                                           "x-pamong-reason": "exhausted"})
    with eventlet.Timeout(20):
        assert dlq.replay(config["AMQP_URI"], "loop") == ([e["id"] for e in events], [])
    back = wait_until(lambda: parked(config, "loop.dlq") or None, message="copies back")
    assert sorted(m.properties["message_id"] for m in back) == sorted(e["id"] for e in events)
    for message in back:
        assert message.headers[REPLAYS_HEADER] == 2
        assert ATTEMPT_HEADER not in message.headers  # a fresh set of attempts
        assert "x-pamong-reason" not in message.headers
        assert [d["count"] for d in message.headers["x-death"]] == [1]  # the old one stripped
    park(config, "loop.dlq", events[0])
    park(config, "loop.dlq", events[1])
    assert dlq.replay(config["AMQP_URI"], "loop", events[1]["id"]) == ([events[1]["id"]], [])
    assert {m.properties["message_id"] for m in parked(config, "loop.dlq")} == \
        {events[0]["id"], events[1]["id"]}  # the first untouched, the second back from loop


def test_a_sweep_between_a_slow_writers_batch_and_its_release_loses_nothing(config, hooked_db):
    """A bulk writer stalled past the batch lease inside its insert_many (one record of three
    written). The sweep settles its batch; the writer finishes and releases it just before the
    sweep's first write of the ready marker. Whatever is durable must hold every written
    record's event, or a crash of the writer now loses them."""
    db = db_of(config, "probe")
    writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
    owners = ["w1", "w2", "w3"]
    events = [envelope(owner) for owner in owners]
    db["_outbox_batches"].insert_one({**batch_document("slow", "records", owners, events),
                                      "at": datetime.now(UTC) - timedelta(minutes=5)})
    db.records.insert_one({"_id": "w1", "_batch": "slow"})

    def writer_finishes():
        db.records.insert_many([{"_id": "w2", "_batch": "slow"}, {"_id": "w3", "_batch": "slow"}])
        writer._release("slow", "records", owners, events, set())

    sweeper = Relay(hooked_db(Before("insert", "_outbox_ready", writer_finishes)),
                    config["AMQP_URI"], "probe", config)
    sweeper.sweep_batches()
    durable = set()
    for marker in db["_outbox_ready"].find({"settling": {"$exists": False}}):
        batch = db["_outbox_batches"].find_one({"_id": marker["_id"]})
        durable |= {e["id"] for e in unpack(batch)["events"]}
    assert durable >= {e["id"] for e in events}


def test_a_sweep_that_died_while_settling_settles_again(config):
    db = db_of(config, "probe")
    db.records.insert_one({"_id": "kept", "_batch": "half"})
    events = [envelope("kept"), envelope("never-written")]
    db["_outbox_batches"].insert_one(batch_document("half", "records", ["kept", "never-written"],
                                                    events))
    db["_outbox_ready"].insert_one({"_id": "half", "settling": True})  # the claim, then death
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    relay.sweep_batches()
    assert [e["id"] for e in relay.pending[("_outbox_batches", "half")].values()] == \
        [events[0]["id"]]
    assert db["_outbox_ready"].find_one({"_id": "half"}) == {"_id": "half"}
    assert unpack(db["_outbox_batches"].find_one({"_id": "half"}))["owners"] == ["kept"]


def test_the_sweep_reads_no_data_while_every_writer_lives(config, hooked_db):
    """The periodic sweep reads the writer leases and the batches, not the collections;
    a writer whose lease ran out has its collection recovered, once."""
    db = db_of(config, "probe")
    alive = Relay(db, config["AMQP_URI"], "probe", config)  # holds its events in memory
    writer = OutboxWriter(db, "probe", alive)
    for key in ("p1", "p2"):
        writer.insert("records", {"_id": key}, [writer.event("probe.recorded",
                                                             {"key": key, "amount": 1})])
    db.records.insert_many([{"_id": f"plain-{i}"} for i in range(50)])
    commands = Commands()
    sweeper = Relay(hooked_db(commands), config["AMQP_URI"], "probe", config)
    sweeper.sweep()
    assert not [c for c in commands.sent if c[1] == "records"]
    assert sweeper.pending == {}

    db["_outbox_writers"].update_one({"_id": alive.writer_id}, {"$set": {"until": 0}})  # died
    sweeper.sweep()
    assert sorted(doc_id for _, doc_id in sweeper.pending) == ["p1", "p2"]
    assert db["_outbox_writers"].find_one({"_id": alive.writer_id}) is None
    assert db["_outbox_writers"].find_one({"_id": sweeper.writer_id})["collections"] == \
        ["records"]  # recovered events are covered by the sweeper's own lease now
    sweeper.pending.clear()
    sweeper.sweep()
    assert sweeper.pending == {}  # recovered once


def test_an_event_the_relay_cannot_publish_is_quarantined_and_the_rest_go_out(config):
    """Written around the outbox writer (an older release, a manual fix): one event is not
    JSON, one has an invalid type. They must not block the good one, round after round."""
    db = db_of(config, "probe")
    not_json = envelope("not-json")
    not_json["data"]["when"] = datetime.now(UTC)
    bad_type = envelope("bad-type", type="Not A Type!")
    good = envelope("good")
    for key, event in (("not-json", not_json), ("bad-type", bad_type), ("good", good)):
        db.records.insert_one({"_id": key, OUTBOX: [event]})
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    quarantined = sample("pamong_outbox_quarantined_total", service="probe")
    relay.sweep()  # nothing: no writer died
    for doc in db.records.find():
        relay.enqueue("records", doc["_id"], doc[OUTBOX])
    try:
        assert relay.publish_pending() == 1
    finally:
        relay.publisher.close()
    assert {q["event"]["id"] for q in db["_outbox_quarantine"].find()} == \
        {not_json["id"], bad_type["id"]}
    assert sample("pamong_outbox_quarantined_total", service="probe") == quarantined + 2
    assert db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0
    assert REGISTRY.get_sample_value("pamong_events_published_total",
                                     {"source": "probe", "type": "Not A Type!"}) is None
    [parked_good] = parked(config, "probe.unroutable")  # nothing bound: parked, not lost
    assert parked_good.properties["message_id"] == good["id"]


@pytest.mark.parametrize("change", [
    {"correlation_id": None},
    {"source": "someone-else"},
    {"occurred_at": "yesterday"},
    {"actor": {"sub": "x"}},
    {"extra": 1},
])
def test_an_envelope_is_validated_whole_when_written(config, change):
    db = db_of(config, "probe")
    writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
    event = {**writer.event("probe.recorded", {"key": "k", "amount": 1}), **change}
    with pytest.raises(ValidationError):
        writer.insert("records", {"_id": "k"}, [event])
    with pytest.raises(ValidationError):
        writer.update("records", {"_id": "k"}, {"$set": {"amount": 1}}, [event], upsert=True)
    with pytest.raises(ValidationError):
        writer.insert_many("records", [({"_id": "k"}, [event])])
    assert db.records.count_documents({}) == 0
    assert db["_outbox_batches"].count_documents({}) == 0


def received_behind_a_marker(config, db, recorder):
    """Every ``probe.recorded`` the recorder got, once a marker published after them has
    arrived: the marker reaches the queue behind anything published before it, duplicates
    included, so no fixed wait is needed to see them all (the marker left out)."""
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    marker = envelope("marker")
    OutboxWriter(db, "probe", relay).insert("markers", {"_id": marker["id"]}, [marker])
    stop = relaying(relay)
    try:
        wait_until(lambda: marker["id"] in {e["id"] for e in recorder.of("probe.recorded")},
                   message="the marker received")
    finally:
        stop()
    return [e for e in recorder.of("probe.recorded") if e["id"] != marker["id"]]


def test_grouped_inserts_share_writes_and_publish_each_written_event_once(config):
    """Concurrent workers' ``insert_grouped``: each learns whether its document was written
    (an ``_id`` that exists, or a twin in the same batch, is not), and exactly the events of
    the written documents are published, once."""
    db = db_of(config, "probe")
    recorder = EventRecorder(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(db, "probe", relay)
    db.records.insert_one({"_id": "taken"})
    keys = [f"g{i}" for i in range(30)] + ["taken", "g4"]
    events = {}

    def insert(index, key):
        events[index] = writer.event("probe.recorded", {"key": key, "amount": index})
        return key, writer.insert_grouped("records", {"_id": key, "index": index},
                                          [events[index]])

    pool = eventlet.GreenPool(len(keys))
    outcomes = list(pool.starmap(insert, enumerate(keys)))
    assert sorted(key for key, written in outcomes if not written) == ["g4", "taken"]
    written = [index for index, (_, ok) in enumerate(outcomes) if ok]  # one of the two g4s
    stop = relaying(relay)
    try:  # the relay pulls an event out of its document only once the broker confirmed it
        wait_until(lambda: db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0,
                   message="every written event published")
    finally:
        stop()
    published = sorted(e["id"] for e in received_behind_a_marker(config, db, recorder))
    recorder.close()
    assert published == sorted(events[i]["id"] for i in written)
    assert db.records.count_documents({"index": {"$exists": True}}) == 30
    assert db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0


# -- writes in doubt, the lease, a sweep past bad items, a clean stop ---------------------------

def test_grouped_updates_each_learn_whether_they_matched_and_publish_once(config):
    """Concurrent workers' ``update_grouped`` compare-and-sets: two race for each of five
    documents' version 1 (exactly one wins each, the other learns it lost), one statement is
    refused by the database (only its caller sees the error), and exactly the winners' events
    are published, once each."""
    db = db_of(config, "probe")
    recorder = EventRecorder(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(db, "probe", relay)
    db.records.insert_many([{"_id": f"u{i}", "version": 1, "text": "x"} for i in range(6)])
    events = {}

    def update(index):
        key = f"u{index % 5}" if index < 10 else "u5"
        events[index] = writer.event("probe.recorded", {"key": key, "amount": index})
        change = {"$set": {"by": index}, "$inc": {"version": 1}}
        if index == 10:  # $inc on a string: refused by the database
            change = {"$inc": {"text": 1}}
        try:
            return key, writer.update_grouped("records", {"_id": key, "version": 1}, change,
                                              [events[index]])
        except pymongo.errors.WriteError:
            return key, "refused"

    pool = eventlet.GreenPool(11)
    outcomes = list(pool.imap(update, range(11)))
    assert outcomes[10] == ("u5", "refused")
    assert db.records.find_one({"_id": "u5"})["version"] == 1
    for i in range(5):
        results = [ok for key, ok in outcomes[:10] if key == f"u{i}"]
        assert sorted(results) == [False, True], (i, outcomes)
        doc = db.records.find_one({"_id": f"u{i}"})
        assert doc["version"] == 2 and outcomes[doc["by"]] == (f"u{i}", True)
    winners = sorted(events[i]["id"] for i, (_, ok) in enumerate(outcomes) if ok is True)
    stop = relaying(relay)
    try:
        wait_until(lambda: db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0,
                   message="every winner's event published")
    finally:
        stop()
    assert sorted(e["id"] for e in received_behind_a_marker(config, db, recorder)) == winners
    recorder.close()


def test_grouped_updates_that_all_match_read_nothing_back(config):
    """The common case (every statement matched): one update request, no read-back."""
    db = db_of(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    db.records.insert_many([{"_id": f"a{i}", "version": 1} for i in range(6)])
    listener = Commands()
    client = pymongo.MongoClient(config["MONGO_URI"], event_listeners=[listener])
    try:
        writer = OutboxWriter(client[db.name], "probe", relay)

        def update(i):
            return writer.update_grouped("records", {"_id": f"a{i}", "version": 1},
                                         {"$inc": {"version": 1}},
                                         [writer.event("probe.recorded",
                                                       {"key": f"a{i}", "amount": i})])

        assert list(eventlet.GreenPool(6).imap(update, range(6))) == [True] * 6
        assert ("find", "records") not in listener.sent
        # shared by the concurrent workers
        assert 1 <= listener.sent.count(("update", "records")) < 6
    finally:
        client.close()
        relay.publisher.close()


class ReplyLost:
    """A database whose ``records`` writes are applied, then raise ``AutoReconnect`` as when the
    connection drops before the reply comes back (FerretDB has no retryable writes): a stand-in
    for the network, not for our code."""

    def __init__(self, db):
        self.db = db

    def __getitem__(self, name):
        return AppliedThenLost(self.db[name]) if name == "records" else self.db[name]


class AppliedThenLost:
    def __init__(self, collection):
        self.collection = collection

    def __getattr__(self, name):  # name, full_name, database: the collection's own
        return getattr(self.collection, name)

    def insert_many(self, *args, **kwargs):
        self.collection.insert_many(*args, **kwargs)
        raise pymongo.errors.AutoReconnect("connection closed")

    def insert_one(self, *args, **kwargs):
        self.collection.insert_one(*args, **kwargs)
        raise pymongo.errors.AutoReconnect("connection closed")

    def update_one(self, *args, **kwargs):
        self.collection.update_one(*args, **kwargs)
        raise pymongo.errors.AutoReconnect("connection closed")

    @property
    def database(self):
        return AppliedThenLostDatabase(self.collection.database)


class AppliedThenLostDatabase:
    def __init__(self, database):
        self.database = database

    def __getattr__(self, name):
        return getattr(self.database, name)

    def command(self, *args, **kwargs):
        self.database.command(*args, **kwargs)
        raise pymongo.errors.AutoReconnect("connection closed")


def relaying(relay):
    """Run ``relay`` in a green thread; ``stop()`` it, as its service's stop does, and wait."""
    thread = eventlet.spawn(relay.run)

    def stop():
        relay.stop()
        thread.wait()
    return stop


@pytest.mark.parametrize("write", ["insert", "insert_grouped", "update", "update_grouped"])
def test_an_event_whose_write_was_applied_but_raised_is_published(config, write):
    db = db_of(config, "probe")
    recorder = EventRecorder(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(ReplyLost(db), "probe", relay)
    event = writer.event("probe.recorded", {"key": "lost", "amount": 1})
    with pytest.raises(pymongo.errors.AutoReconnect):
        if write == "insert":
            writer.insert("records", {"_id": "lost"}, [event])
        elif write == "insert_grouped":
            writer.insert_grouped("records", {"_id": "lost"}, [event])
        elif write == "update_grouped":
            db.records.insert_one({"_id": "lost"})
            writer.update_grouped("records", {"_id": "lost"}, {"$set": {"amount": 1}}, [event])
        else:
            writer.update("records", {"_id": "lost"}, {"$set": {"amount": 1}}, [event],
                          upsert=True)
    stop = relaying(relay)
    try:
        wait_until(lambda: recorder.of("probe.recorded"), message="the event published")
    finally:
        stop()
    assert [e["id"] for e in recorder.of("probe.recorded")] == [event["id"]]
    recorder.close()
    assert db.records.find_one({"_id": "lost"})[OUTBOX] == []


def test_a_stop_keeps_the_lease_while_a_write_is_in_doubt(config):
    """The relay has not read the document back yet (say the database is still away): a
    stop must leave the lease, so a replica's sweep publishes the event once it runs out."""
    db = db_of(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(ReplyLost(db), "probe", relay)
    with pytest.raises(pymongo.errors.AutoReconnect):
        writer.insert("records", {"_id": "doubt"}, [envelope("doubt")])
    relay.stop()
    assert db["_outbox_writers"].find_one({"_id": relay.writer_id})["collections"] == ["records"]


def test_a_killed_producer_leaves_its_lease_to_run_out(config):
    from nameko.containers import ServiceContainer

    db = db_of(config, "probe")
    container = ServiceContainer(Producer, config)
    container.start()
    with rpc_proxy(config) as rpc:
        rpc.probe.record("killed", 1)
    wait_until(lambda: not db.records.find_one({"_id": "killed"})[OUTBOX], message="published")
    container.kill()
    assert db["_outbox_writers"].count_documents({}) == 1


def test_an_outbox_update_by_an_operator_on_id_is_refused(config):
    db = db_of(config, "probe")
    writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
    db.records.insert_many([{"_id": "a", "amount": 0}, {"_id": "b", "amount": 0}])
    with pytest.raises(ValueError, match=r"by _id, a plain value \(not an operator such as \$in\)"):
        writer.update("records", {"_id": {"$in": ["a", "b"]}}, {"$set": {"amount": 1}},
                      [envelope("a")])
    assert db.records.count_documents({"amount": 0}) == 2


def test_a_lease_renewed_after_a_replica_dropped_it_names_every_collection(config):
    """Writer A stalls past its lease; a replica claims it, scans its collections and deletes
    it. When A writes again, its renewed lease must name all the collections it writes to,
    or a crash of A now loses the events of the ones left out."""
    db = db_of(config, "probe")
    stalled = Relay(db, config["AMQP_URI"], "probe", {**config, "OUTBOX_WRITER_LEASE_SECONDS": 1})
    writer = OutboxWriter(db, "probe", stalled)
    writer.insert("records", {"_id": "r"}, [envelope("r")])
    writer.insert("others", {"_id": "o"}, [envelope("o")])
    leases = db["_outbox_writers"]
    until = leases.find_one({"_id": stalled.writer_id})["until"]
    wait_until(lambda: time.time() > until, message="A stalls past its lease")
    replica = Relay(db, config["AMQP_URI"], "probe", config)
    replica.sweep()
    assert db["_outbox_writers"].find_one({"_id": stalled.writer_id}) is None
    writer.insert("records", {"_id": "r2"}, [envelope("r2")])  # A resumes
    lease = db["_outbox_writers"].find_one({"_id": stalled.writer_id})
    assert sorted(lease["collections"]) == ["others", "records"]


def test_a_corrupt_batch_is_quarantined_and_the_relay_goes_on(config):
    db = db_of(config, "probe")
    good = envelope("batched")
    unread = batch_document("no-time", "records", ["batched"], [envelope("batched")])
    del unread["at"]  # without its marker: the sweep cannot tell whether its writer died
    db["_outbox_batches"].insert_many([
        {**batch_document("garbled", "records", [], []), "packed": bson.Binary(b"\x05junk")},
        unread,
        batch_document("good", "records", ["batched"], [good]),
    ])
    db["_outbox_ready"].insert_many([{"_id": "garbled"}, {"_id": "good"}])
    db.records.insert_one({"_id": "batched", "_batch": "good"})
    recorder = EventRecorder(config, "probe")
    quarantined = sample("pamong_outbox_quarantined_total", service="probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(db, "probe", relay)
    direct = writer.event("probe.recorded", {"key": "direct", "amount": 1})
    writer.insert("records", {"_id": "direct"}, [direct])
    stop = relaying(relay)
    try:
        wait_until(lambda: len(recorder.of("probe.recorded")) == 2,
                   message="the good batch's and the direct write's events")
    finally:
        stop()
    assert sorted(e["id"] for e in recorder.of("probe.recorded")) == \
        sorted([good["id"], direct["id"]])
    recorder.close()
    assert {q["_id"] for q in db["_outbox_quarantine"].find()} == \
        {"_outbox_batches:garbled", "_outbox_batches:no-time"}
    assert db["_outbox_batches"].count_documents({}) == 0
    assert db["_outbox_ready"].count_documents({}) == 0
    assert sample("pamong_outbox_quarantined_total", service="probe") == quarantined + 2


def test_an_outbox_entry_without_an_id_is_quarantined_and_the_scan_goes_on(config):
    db = db_of(config, "probe")
    write_pending(config, ["m1", "m2", "m3"])  # a writer that died
    malformed = {"type": "probe.recorded", "data": {}}
    db.records.update_one({"_id": "m1"}, {"$push": {OUTBOX: malformed}})
    sweeper = Relay(db, config["AMQP_URI"], "probe", config)
    sweeper.sweep()
    assert sorted(doc_id for _, doc_id in sweeper.pending) == ["m1", "m2", "m3"]
    [kept] = db["_outbox_quarantine"].find()
    assert (kept["document"], kept["event"]) == ("m1", malformed)
    assert len(db.records.find_one({"_id": "m1"})[OUTBOX]) == 1  # only its real event
    assert db["_outbox_writers"].count_documents({}) == 1  # the dead lease gone, ours left


def test_a_stop_publishes_what_was_written_just_before_it(config):
    """The relay lingers a second before publishing (so the stop lands while it waits): the
    stop still publishes the event, then drops the lease, before it returns."""
    lingering = {**config, "OUTBOX_LINGER_SECONDS": 1}
    db = db_of(config, "probe")
    recorder = EventRecorder(config, "probe")
    try:
        with running(lingering, Producer), rpc_proxy(lingering) as rpc:
            event_id = rpc.probe.record("last", 1)
        assert [e["id"] for e in recorder.of("probe.recorded")] == [event_id]
    finally:
        recorder.close()
    assert db.records.find_one({"_id": "last"})[OUTBOX] == []
    assert db["_outbox_writers"].count_documents({}) == 0


def test_the_relay_pulls_published_events_once_the_writes_pause(config):
    """During a burst the relay publishes at once but leaves the events in their documents
    (a pull rewrites the whole document); once writes pause for OUTBOX_PULL_IDLE_SECONDS it
    pulls them all, each event published once."""
    db = db_of(config, "probe")
    recorder = EventRecorder(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", {**config, "OUTBOX_PULL_IDLE_SECONDS": 1.5})
    writer = OutboxWriter(db, "probe", relay)
    stop = relaying(relay)
    written = []
    try:
        for i in range(10):  # a write every 0.1 s: the relay is never idle 1.5 s
            event = writer.event("probe.recorded", {"key": f"burst-{i}", "amount": i})
            writer.insert("records", {"_id": f"burst-{i}"}, [event])
            written.append(event["id"])
            eventlet.sleep(0.1)
        wait_until(lambda: len(recorder.of("probe.recorded")) == 10, message="all published")
        # published, not yet pulled: the writes paused less than 1.5 s ago
        assert db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 10
        assert relay.published
        wait_until(lambda: db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0,
                   timeout=5, message="pulled once the writes paused")
    finally:
        stop()
    assert sorted(e["id"] for e in recorder.of("probe.recorded")) == sorted(written)
    recorder.close()


def test_a_steady_stream_of_writes_does_not_defer_the_pull_for_ever(config):
    """Writes that never pause: the relay still pulls once the oldest published event is
    OUTBOX_PULL_DEFER_SECONDS old."""
    db = db_of(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe",
                  {**config, "OUTBOX_PULL_IDLE_SECONDS": 60, "OUTBOX_PULL_DEFER_SECONDS": 1})
    writer = OutboxWriter(db, "probe", relay)
    stop = relaying(relay)
    try:
        first = writer.event("probe.recorded", {"key": "steady-0", "amount": 0})
        writer.insert("records", {"_id": "steady-0"}, [first])
        deadline = time.monotonic() + 5
        i = 1
        while db.records.find_one({"_id": "steady-0"})[OUTBOX] and time.monotonic() < deadline:
            event = writer.event("probe.recorded", {"key": f"steady-{i}", "amount": i})
            writer.insert("records", {"_id": f"steady-{i}"}, [event])
            i += 1
            eventlet.sleep(0.1)
        assert db.records.find_one({"_id": "steady-0"})[OUTBOX] == []
        assert time.monotonic() < deadline
    finally:
        stop()


def test_a_document_read_back_is_not_published_again_for_what_went_out_unpulled(config):
    """A write in doubt on a document whose earlier event is published but still in it: the
    read-back queues only the new event (the earlier one is not sent twice)."""
    db = db_of(config, "probe")
    recorder = EventRecorder(config, "probe")
    relay = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(db, "probe", relay)
    first = writer.event("probe.recorded", {"key": "twice", "amount": 1})
    writer.insert("records", {"_id": "twice"}, [first])
    try:
        assert relay.publish_pending(defer_pull=True) == 1
        assert db.records.find_one({"_id": "twice"})[OUTBOX] == [first]
        second = writer.event("probe.recorded", {"key": "twice", "amount": 2})
        db.records.update_one({"_id": "twice"}, {"$push": {OUTBOX: second}})
        relay.doubt("records", "twice")  # as a write that raised after it was applied
        relay._resolve_doubts()
        assert list(relay.pending[("records", "twice")]) == [second["id"]]
        assert relay.publish_pending() == 1
    finally:
        relay.publisher.close()
    assert db.records.find_one({"_id": "twice"})[OUTBOX] == []
    assert [e["id"] for e in received_behind_a_marker(config, db, recorder)] == \
        [first["id"], second["id"]]
    recorder.close()
