"""A small producer and consumers used to test the kernel (not product modules)."""

import time

from marshmallow import Schema, fields
from nameko.rpc import rpc

from pamong.events.consumer import apply_once, handles
from pamong.events.contracts import contract
from pamong.events.outbox import Outbox
from pamong.health import HealthEndpoints
from pamong.storage import Mongo


@contract("probe.recorded", 1)
class ProbeRecorded(Schema):
    key = fields.String(required=True)
    amount = fields.Integer(required=True)


class Producer:
    """Records amounts; each record is a document plus a ``probe.recorded`` event."""

    name = "probe"
    db = Mongo()
    outbox = Outbox()

    @rpc
    def record(self, key, amount):
        event = self.outbox.event("probe.recorded", {"key": key, "amount": amount})
        self.outbox.insert("records", {"_id": key, "amount": amount}, [event])
        return event["id"]

    @rpc
    def record_bulk(self, prefix, count):
        """``count`` records in one insert_many, their events in one outbox batch."""
        documents = []
        for i in range(count):
            event = self.outbox.event("probe.recorded", {"key": f"{prefix}-{i}", "amount": i})
            documents.append(({"_id": f"{prefix}-{i}", "amount": i}, [event]))
        return self.outbox.insert_many("records", documents)

    @rpc
    def record_many(self, prefix, count):
        for i in range(count):
            self.record(f"{prefix}-{i}", i)
        return count


class Consumer:
    """Sums amounts; ``faults`` documents make the handler fail a set number of times."""

    name = "probesink"
    db = Mongo()

    @handles("probe", "probe.recorded")
    def on_recorded(self, event):
        fault = self.db.faults.find_one_and_update(
            {"_id": event.data["key"], "remaining": {"$gt": 0}}, {"$inc": {"remaining": -1}}
        )
        if fault is not None:
            raise RuntimeError(f"injected fault for {event.data['key']}")
        # deliberately not idempotent on its own: the consumer kernel must prevent doubles
        self.db.totals.update_one(
            {"_id": event.data["key"]},
            {"$inc": {"times": 1, "sum": event.data["amount"]}},
            upsert=True,
        )


class OnceConsumer(HealthEndpoints):
    """Sums amounts exactly once with ``apply_once``, as module authors should; a ``stalls``
    document stops the handler between its effect and the inbox's done mark, for kill tests."""

    name = "probeonce"
    db = Mongo()

    @handles("probe", "probe.recorded")
    def on_recorded(self, event):
        apply_once(self.db.totals, {"_id": event.data["key"]},
                   {"$inc": {"times": 1, "sum": event.data["amount"]}}, event, upsert=True)
        if self.db.stalls.find_one_and_delete({"_id": event.data["key"]}):
            time.sleep(3600)  # a SIGKILL lands here: effect written, done mark not
