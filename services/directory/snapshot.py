"""Re-emit the directory's current state (``directory.snapshot_requested``, DESIGN §4).

Every unit and employee goes out as ``*.upserted`` with its stored view and version, every
acting assignment as ``acting.assigned`` or ``acting.ended``: exactly what their last change
published, so a replica applying it twice, or after newer events, changes nothing. Published
in confirmed batches straight from the documents (a snapshot changes no state, so it has no
outbox write); the request is acknowledged only after the last batch is confirmed, so a crash
midway repeats the snapshot, which is harmless.
"""

from pamong.events.contracts import dump_data
from pamong.events.envelope import new_event
from pamong.events.outbox import OUTBOX, ConfirmingPublisher
from services.directory.domain import acting_change
from services.directory.store import record_of

BATCH = 500


def snapshot_events(db):
    """Yield (type, data, opd) for the whole directory, units first."""
    for doc in db.units.find({"view": {"$exists": True}}, {"view": 1, "version": 1}).sort("_id", 1):
        yield "unit.upserted", {**doc["view"], "version": doc["version"]}, doc["view"]["opd"]
    for doc in db.employees.find({"view": {"$exists": True}}, {"view": 1, "version": 1}):
        yield "employee.upserted", {**doc["view"], "version": doc["version"]}, doc["view"]["opd"]
    for doc in db.acting.find({}, {"audit": 0, OUTBOX: 0}):
        change = acting_change(record_of(doc, "acting"), None, doc["version"] - 1)
        (event_type, data), = change.events
        yield event_type, data, change.opd


def publish_snapshot(db, amqp_uri):
    publisher = ConfirmingPublisher(amqp_uri, timeout=30.0)
    count, batch = 0, []
    try:
        for event_type, data, opd in snapshot_events(db):
            batch.append(("directory", new_event("directory", event_type,
                                                 dump_data(event_type, 1, data), opd=opd)))
            if len(batch) >= BATCH:
                publisher.publish(batch)
                count, batch = count + len(batch), []
        if batch:
            publisher.publish(batch)
            count += len(batch)
    finally:
        publisher.close()
    return count
