"""ChangeWriter against the real database: batches written two at a time keep every record's
events, updates wait for the inserts planned before them, and a failed batch stops the write
with every started batch finished."""

import pytest

import pamong.contracts.directory  # noqa: F401  (registers the events written here)
from pamong.events.outbox import OutboxWriter, Relay, unpack
from pamong.storage import client_for, database_name
from pamong.testing import wait_until
from pamong.web import Problem
from services.directory.domain import Change
from services.directory.store import ChangeWriter

pytestmark = pytest.mark.integration


@pytest.fixture
def db(config):
    return client_for(config["MONGO_URI"])[database_name(config, "directory")]


@pytest.fixture
def writer(db, config):
    relay = Relay(db, config["AMQP_URI"], "directory", config)  # not running: queues only
    return ChangeWriter(db, OutboxWriter(db, "directory", relay), "tester", "corr", "test")


def unit(code, version=1, old_version=0, name=None):
    record = {"code": code, "name": name or f"Unit {code}", "kind": "seksi", "active": True}
    return Change("units", code, record, version, old_version, None,
                  [("unit.deactivated", {"code": code, "version": version})], "created", {},
                  "3510.01")


def codes(n):
    return [f"3510.01.{i // 100:02d}.{i % 100:02d}" for i in range(n)]


def batch_events(db):
    return [event for batch in db["_outbox_batches"].find() for event in unpack(batch)["events"]]


def test_inserts_in_flight_keep_each_record_and_event_once_and_updates_follow_them(db, writer):
    planned = [unit(code) for code in codes(450)]  # three batches, two in flight at a time
    planned.append(unit(planned[-1].key, version=2, old_version=1, name="Renamed"))
    assert writer.write(planned) == 451
    assert db.units.count_documents({}) == 450
    renamed = db.units.find_one({"_id": planned[-1].key})
    assert renamed["name"] == "Renamed" and renamed["version"] == 2  # after its insert
    events = batch_events(db)
    assert sorted(e["data"]["code"] for e in events) == sorted(codes(450))
    assert db["_outbox_ready"].count_documents({}) == db["_outbox_batches"].count_documents({})


def test_a_failed_batch_stops_the_write_after_the_batches_in_flight(db, writer):
    taken = codes(450)[250]  # in the second batch: created meanwhile by another writer
    db.units.insert_one({"_id": taken, "name": "other", "version": 1})
    with pytest.raises(Problem) as failed:
        writer.write([unit(code) for code in codes(450)])
    assert failed.value.status == 409
    written = db.units.count_documents({})
    # batches one and two ran (two in flight); the third may or may not have started, but
    # nothing is still being written once write() has raised
    assert written in (400, 450)
    assert db.units.count_documents({}) == written
    events = {e["data"]["code"] for e in batch_events(db)}
    assert taken not in events  # the record not written sends no event
    assert len(events) == written - 1


def test_a_write_killed_midway_leaves_no_insert_running(db, writer):
    import eventlet
    from greenlet import GreenletExit

    write = eventlet.spawn(writer.write, [unit(code) for code in codes(2000)])
    # ten batches: once the first has landed, the next ones are in flight or to come
    wait_until(lambda: db.units.count_documents({}) >= 200, interval=0.01,
               message="the first batch written")
    write.kill()
    with pytest.raises(GreenletExit):
        write.wait()  # the killed write has ended...
    written = db.units.count_documents({})
    assert written < 2000  # killed midway
    eventlet.sleep(0.5)  # the observation window is the point: no write may land in it
    assert db.units.count_documents({}) == written  # ...and nothing is still being written
    assert written % 200 == 0  # whole batches only


def test_an_earlier_change_never_undoes_a_later_changes_filing_or_claim(db):
    """Two changes of one employee: the first moves it away from post P0 (version 2), the
    second back to P0 (version 3) and finishes first. The first's late unfiling and release
    (made with version 2) must leave the second's filing and claim in place, or the employee
    would be filed nowhere and P0 free for a second holder."""
    from services.directory.store import claim_post, file_under, filed_in, release_post, unfile

    nip = "199001012015031004"
    db.positions.insert_one({"_id": "P0", "kind": "struktural"})
    file_under(db, "P0", {nip: 1})
    assert claim_post(db, "P0", nip, 1, lease=30) is None
    file_under(db, "P0", {nip: 3})  # the second change, back to P0
    assert claim_post(db, "P0", nip, 3, lease=30) is None
    unfile(db, "P0", {nip: 2})  # the first change, late
    release_post(db, "P0", nip, 2)
    assert filed_in(db, ["P0"]) == {nip}
    assert db.positions.find_one({"_id": "P0"})["holder"] == nip
    unfile(db, "P0", {nip: 3})
    release_post(db, "P0", nip, 3)
    assert filed_in(db, ["P0"]) == set()
    assert db.positions.find_one({"_id": "P0"})["holder"] is None
