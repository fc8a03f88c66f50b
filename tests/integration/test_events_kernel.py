"""The outbox, relay and consumer kernel against the real RabbitMQ and database."""

import json

import pytest
from marshmallow import ValidationError

from pamong.cli.main import main as pamong_cli
from pamong.events import dlq
from pamong.events.envelope import new_event
from pamong.events.outbox import OUTBOX, OutboxWriter, Relay, batch_document, unpack
from pamong.storage import client_for, database_name
from pamong.testing import broker, publish_raw, rpc_proxy, running, wait_until
from tests.kernel_services import Consumer, Producer

pytestmark = pytest.mark.integration

SINK_QUEUE = "probesink.on_recorded"


def db_of(config, service):
    return client_for(config["MONGO_URI"])[database_name(config, service)]


def totals(config):
    return {d["_id"]: d for d in db_of(config, "probesink").totals.find()}


def envelope(key, amount=1, **overrides):
    event = new_event("probe", "probe.recorded", {"key": key, "amount": amount})
    event.update(overrides)
    return event


def write_pending(config, keys):
    """Documents with unpublished events, as a producer that died before relaying leaves them
    (its relay, which never runs here, held them only in memory)."""
    db = db_of(config, "probe")
    writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
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
    with running(config, Consumer):
        publish_raw(config, "probe", "probe.recorded", event)
        publish_raw(config, "probe", "probe.recorded", event)
        publish_raw(config, "probe", "probe.recorded", envelope("after", 1))
        wait_until(lambda: "after" in totals(config) and "twice" in totals(config))
        done = db_of(config, "probesink")["_inbox_done"]
        wait_until(lambda: done.count_documents({}) == 2)
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
    with running(config, Consumer):
        relay.publisher.publish([("probe", e) for d in db.records.find() for e in d[OUTBOX]])
        relay.publisher.close()
        with running(config, Producer):
            wait_until(lambda: set(totals(config)) == {"h1", "h2", "n1"}, message="all effects")
            wait_until(lambda: db.records.count_documents({f"{OUTBOX}.0": {"$exists": True}}) == 0)
            done = db_of(config, "probesink")["_inbox_done"]
            wait_until(lambda: done.count_documents({}) == 3)
    assert all(t["times"] == 1 for t in totals(config).values())


def test_two_relay_replicas_give_each_event_one_effect(config):
    keys = [f"r{i}" for i in range(300)]
    with running(config, Consumer):
        first, second = running(config, Producer), running(config, Producer)
        with first, second:
            write_pending(config, keys)
            wait_until(lambda: len(totals(config)) == len(keys), timeout=60)
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


def test_events_added_while_the_relay_publishes_stay_for_the_next_round(config):
    db = db_of(config, "probe")
    first_relay = Relay(db, config["AMQP_URI"], "probe", config)
    writer = OutboxWriter(db, "probe", first_relay)
    first = writer.event("probe.recorded", {"key": "race", "amount": 1})
    writer.insert("records", {"_id": "race", "amount": 1}, [first])
    # another worker adds an event after the relay took its batch (its relay queues it)
    second_writer = OutboxWriter(db, "probe", Relay(db, config["AMQP_URI"], "probe", config))
    second = second_writer.event("probe.recorded", {"key": "race", "amount": 2})
    second_writer.update("records", {"_id": "race"}, {"$set": {"amount": 2}}, [second])
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
        assert all(not d.get(OUTBOX) for d in records.find())  # no per-record outbox
    assert totals(config)["bulk-3"]["sum"] == 100  # the first write's amount, once
    assert all(totals(config)[key]["times"] == 1 for key in keys)


def test_a_batch_left_unpacked_by_an_older_release_is_still_relayed(config):
    """Before batches were packed, their owners and events were plain fields: an upgrade
    must relay what such a release left ready."""
    from datetime import UTC, datetime

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

    from pamong.events.outbox import ConfirmingPublisher

    publisher = ConfirmingPublisher(config["AMQP_URI"])
    publisher._connect()
    try:
        with eventlet.Timeout(10), publisher.cork:
            publisher.channel.exchange_declare("probe.cork", "topic", auto_delete=True)
        publisher.channel.exchange_declare("probe.cork", "topic", passive=True)  # it exists
        event = envelope("corked")
        assert publisher.publish([("probe", event)]) in ([], [event["id"]])  # confirmed
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


def test_a_dead_writers_batch_publishes_only_what_it_wrote(config):
    """A producer died inside its insert_many: its batch names three owners; it wrote one
    (stamped with the batch), not the second, and the third was written since by someone else
    (with its own events). The sweep settles it: only the written one's event goes out."""
    from datetime import UTC, datetime, timedelta

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
