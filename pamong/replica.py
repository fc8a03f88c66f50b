"""The directory replica kit: a module's own copy of the Pemda's units, employees and actings.

    class AttendanceService(DirectoryReplica, HealthEndpoints):
        name = "attendance"
        db = Mongo(indexes=REPLICA_INDEXES + [...])

The mixin adds four ``@handles`` consumers (``unit.upserted``, ``employee.upserted``,
``acting.assigned``, ``acting.ended``) that keep the service's own ``units``, ``employees``
and ``acting`` collections, keyed by unit code, NIP and acting id, each document holding the
directory's fields plus ``version``. Every change the directory makes (including a transfer
or a deactivation) is followed by a full ``*.upserted`` event, so those four are enough for
the state; a module that must *react* to a transfer adds its own ``@handles`` for
``employee.transferred``.

Every one of these events carries the whole record and its ``version``, so redelivery,
duplicates and out-of-order delivery cannot corrupt the copy: an event of version v replaces
the record when the replica holds nothing or an older version, and is dropped when the
replica already holds that version or a newer one (a snapshot re-emits every record under its
current version: a replica that is up to date writes nothing).
The compare and the write are one ``update_one`` filtered on ``version`` (atomic per
document); a lost race on the insert of a new record surfaces as a duplicate key and means a
newer version got there first.

When the service starts with no units and no employees, it asks the directory for a snapshot
(``directory.snapshot_requested`` on ``directory.events``); the snapshot's events go through the
same rules. ``DIRECTORY_SNAPSHOT_ON_EMPTY: false`` turns that off.
"""

import logging

import pymongo
from nameko.extensions import DependencyProvider

from pamong.events.consumer import handles
from pamong.events.envelope import new_event
from pamong.events.outbox import ConfirmingPublisher
from pamong.storage import Index, mongo_of

log = logging.getLogger(__name__)

UNITS, EMPLOYEES, ACTING = "units", "employees", "acting"
REPLICA_INDEXES = [Index(UNITS, [("opd", 1)]), Index(EMPLOYEES, [("unit", 1)]),
                   Index(EMPLOYEES, [("opd", 1)]), Index(ACTING, [("position", 1)])]


def apply_full(collection, key_field, data):
    """Store ``data`` under ``_id = data[key_field]`` unless that version or a newer one is
    held.

    True when written."""
    key = data[key_field]
    document = {k: v for k, v in data.items() if k != key_field}
    try:
        result = collection.update_one({"_id": key, "version": {"$lt": data["version"]}},
                                       {"$set": document}, upsert=True)
    except pymongo.errors.DuplicateKeyError:
        return False  # the record exists with this version or a newer one
    return bool(result.modified_count or result.upserted_id is not None)


def request_snapshot(amqp_uri, requested_by):
    """Publish ``directory.snapshot_requested`` (confirmed) on the directory's exchange."""
    publisher = ConfirmingPublisher(amqp_uri)
    try:
        event = new_event("directory", "directory.snapshot_requested",
                          {"requested_by": requested_by})
        if publisher.publish([("directory", event)]):
            raise RuntimeError("no directory is listening: its snapshot queue does not exist "
                               "(install the directory module and run `pamong bus declare`)")
    finally:
        publisher.close()
    return event["id"]


class SnapshotOnEmpty(DependencyProvider):
    """At start, asks for a directory snapshot when the replica holds nothing."""

    def start(self):
        config = self.container.config
        if not config.get("DIRECTORY_SNAPSHOT_ON_EMPTY", True):
            return
        self.container.spawn_managed_thread(self._check, identifier="replica-snapshot")

    def _check(self):
        db = mongo_of(self.container, "DirectoryReplica").db
        if db[UNITS].find_one({}, {"_id": 1}) or db[EMPLOYEES].find_one({}, {"_id": 1}):
            return
        try:
            request_snapshot(self.container.config["AMQP_URI"], self.container.service_name)
            log.info("directory replica is empty: snapshot requested")
        except Exception:  # noqa: BLE001 - the directory may be absent; events still arrive
            log.warning("could not request a directory snapshot", exc_info=True)


class DirectoryReplica:
    """Mixin for a service with ``db = Mongo(...)`` (see the module docstring)."""

    directory_snapshot = SnapshotOnEmpty()

    @handles("directory", "unit.upserted")
    def replica_unit_upserted(self, event):
        apply_full(self.db[UNITS], "code", event.data)

    @handles("directory", "employee.upserted")
    def replica_employee_upserted(self, event):
        apply_full(self.db[EMPLOYEES], "nip", event.data)

    @handles("directory", "acting.assigned")
    def replica_acting_assigned(self, event):
        apply_full(self.db[ACTING], "id", _acting(event.data))

    @handles("directory", "acting.ended")
    def replica_acting_ended(self, event):
        apply_full(self.db[ACTING], "id", _acting(event.data))


def _acting(data):
    """Dates as ISO strings (BSON has no date type); ``ended_on`` None while it runs."""
    dates = {k: data[k].isoformat() for k in ("start", "end", "ended_on") if data.get(k)}
    return {**data, "ended_on": None, **dates}
