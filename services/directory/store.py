"""The directory's storage: documents, the write lock, and applying a planned change set.

Collections (database ``pamong_directory``), each keyed by its natural id:
- ``units`` (unit code), ``positions`` (position id), ``employees`` (NIP), ``acting`` (id):
  the record's fields, ``opd``, ``view`` (what the last event carried), ``version``,
  ``updated_at``/``updated_by`` and ``audit``, the record's whole history of changes (who,
  when, which fields from what to what, NIK masked), pushed in the same single-document
  write as the change and its outbox events, so a record and its history never disagree.
- ``imports``: one document per applied import (``_id`` a uuid) with its status and counts,
  and the file itself in ``import_files`` chunks, so an import interrupted by a crash is
  resumed from the file (``importer.Importer.resume``).
- ``locks``: the directory write lock (see ``WriteLock``).

Dates are stored as ISO strings (BSON has no date type); times as UTC datetimes.
"""

import logging
import time
import uuid
from datetime import UTC, date, datetime

import eventlet
import pymongo

from pamong.events.outbox import OUTBOX
from pamong.privacy import mask_nik
from pamong.storage import Index
from pamong.web import conflict, service_unavailable
from services.directory.domain import FIELDS, State, opd_of, parent_code

log = logging.getLogger(__name__)

DATE_FIELDS = ("birth_date", "effective_date", "status_date")

INDEXES = [Index("employees", [("opd", 1)]), Index("employees", [("unit", 1)]),
           Index("employees", [("position", 1)]), Index("positions", [("unit", 1)]),
           Index("acting", [("position", 1)]), Index("imports", [("status", 1)])]

LOCK_ID = "directory-writes"
WITHOUT_HISTORY = {"audit": 0, OUTBOX: 0}


def record_of(doc, collection):
    """A stored document -> the plain record the domain works with (dates as ``date``)."""
    record = {f: doc.get(f) for f in FIELDS[collection]}
    for f in DATE_FIELDS:
        if isinstance(record.get(f), str):
            record[f] = date.fromisoformat(record[f])
    return record


def storable(record):
    """Dates as ISO strings: BSON has no date type."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in record.items()}


def load(db):
    """The whole directory as a ``State``, and ``{collection: {key: (version, view)}}`` for
    ``domain.plan`` (histories and outboxes left out)."""
    records, meta = {}, {}
    for collection in ("units", "positions", "employees"):
        records[collection], meta[collection] = {}, {}
        for doc in db[collection].find({}, WITHOUT_HISTORY):
            records[collection][doc["_id"]] = record_of(doc, collection)
            meta[collection][doc["_id"]] = (doc.get("version", 0), doc.get("view"))
    return State(**records), meta


def audit_entry(action, changes, actor, correlation_id, source):
    masked = {}
    for name, (old, new) in changes.items():
        if name == "nik":
            old, new = (mask_nik(v) if v else v for v in (old, new))
        # {from, to}, not [old, new]: FerretDB stores no arrays nested in arrays
        masked[name] = {"from": storable({"v": old})["v"], "to": storable({"v": new})["v"]}
    return {"at": datetime.now(UTC), "action": action, "changes": masked, "by": actor,
            "correlation_id": correlation_id, "source": source}


class WriteLock:
    """One directory writer at a time, across processes: an inserted lock document.

    Every write (an API change, an import, the acting timer) derives supervisors and views
    from the whole directory, so two writers must not interleave. The lock is a document with
    a lease; a crashed holder's lease expires and the next writer takes it over.

    It is not there to make up for the database: the insert and the takeover's compare-and-set
    on ``owner`` rely on single-document atomicity, which MongoDB and the local FerretDB build
    both give (``tests/database``). Its width (the whole directory) follows from the rules that
    derive views from the whole directory; narrowing it is the directory-scale issue's work.
    """

    def __init__(self, db, lease=30.0, wait=10.0, on_acquire=None):
        self.db = db
        self.lease = lease
        self.wait = wait
        self.on_acquire = on_acquire  # runs first under the lock (the service finishes a
        self.owner = None             # dead writer's import there)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def acquire(self):
        deadline = time.monotonic() + self.wait
        owner = uuid.uuid4().hex
        while True:
            now = time.time()
            try:
                self.db.locks.insert_one({"_id": LOCK_ID, "owner": owner,
                                          "until": now + self.lease})
                break
            except pymongo.errors.DuplicateKeyError:
                held = self.db.locks.find_one({"_id": LOCK_ID}) or {}
                if held.get("until", now) < now and self.db.locks.update_one(
                        {"_id": LOCK_ID, "owner": held.get("owner")},
                        {"$set": {"owner": owner, "until": now + self.lease}}).modified_count:
                    break
            if time.monotonic() >= deadline:
                raise service_unavailable("The directory is busy with another change (an import "
                                          "may be running). Try again shortly.")
            eventlet.sleep(0.05)
        self.owner = owner
        if self.on_acquire:
            try:
                self.on_acquire(self)
            except BaseException:
                self.release()
                raise
        return self

    def renew(self):
        """Extend the lease (long writes call this between batches). Raises when the lease
        ran out and another writer took the lock: this writer must stop."""
        renewed = self.db.locks.update_one({"_id": LOCK_ID, "owner": self.owner},
                                           {"$set": {"until": time.time() + self.lease}})
        if not renewed.matched_count:
            raise service_unavailable("This change took longer than the directory write lock's "
                                      "lease and was stopped; repeat it (an import resumes).")

    def release(self):
        self.db.locks.delete_one({"_id": LOCK_ID, "owner": self.owner})


class ChangeWriter:
    """Writes planned changes: each one document, its events and its audit entry at once.

    New documents go in ``insert_many`` batches of ``INSERT_BATCH``, up to ``IN_FLIGHT`` at a
    time: the next batch is prepared (events checked by their contracts, documents built)
    while the database stores the previous ones. Updates wait for every insert before them,
    so a record is never updated before the records it was planned after.
    """

    INSERT_BATCH = 200
    IN_FLIGHT = 2

    def __init__(self, db, outbox, actor, correlation_id, source):
        self.db = db
        self.outbox = outbox
        self.actor = actor
        self.correlation_id = correlation_id
        self.source = source

    def write(self, changes, on_batch=None):
        """``changes``: ``domain.Change`` list, in dependency order. Returns the count.

        ``on_batch`` runs after every ``INSERT_BATCH`` changes (the lock's ``renew``)."""
        inserts, in_flight = [], []
        try:
            for done, change in enumerate(changes, 1):
                if change.old_version == 0:
                    inserts.append(change)
                    if len(inserts) >= self.INSERT_BATCH:
                        self._start_insert(inserts, in_flight)
                        inserts = []
                else:
                    if inserts:
                        self._start_insert(inserts, in_flight)
                        inserts = []
                    _finish(in_flight, keep=0)  # keep the order: parents before children
                    self._update(change)
                if on_batch and done % self.INSERT_BATCH == 0:
                    on_batch()
            if inserts:
                self._start_insert(inserts, in_flight)
            _finish(in_flight, keep=0)
        finally:  # whatever stopped the loop (an error, a kill): no insert outlives write()
            _drain(in_flight)
        return len(changes)

    def _start_insert(self, changes, in_flight):
        by_collection = {}
        for change in changes:
            doc = {"_id": change.key, **self._document(change), "audit": [self._entry(change)]}
            by_collection.setdefault(change.collection, []).append((doc, self._events(change)))
        _finish(in_flight, keep=self.IN_FLIGHT - 1)
        in_flight.append(eventlet.spawn(self._insert, by_collection))
        eventlet.sleep(0)  # let it send its request before the next batch is prepared

    def _document(self, change):
        record = storable(change.record)
        doc = {**record, "opd": opd_of(record.get("unit") or record.get("code")),
               **({"parent": parent_code(record["code"])} if "code" in record else {}),
               "version": change.version, "updated_at": datetime.now(UTC),
               "updated_by": self.actor}
        if change.view is not None:
            doc["view"] = change.view
        return doc

    def _events(self, change):
        return [self.outbox.event(event_type, data, opd=change.opd)
                for event_type, data in change.events]

    def _entry(self, change):
        return audit_entry(change.action, change.changes, self.actor, self.correlation_id,
                           self.source)

    def _insert(self, by_collection):
        for collection, docs in by_collection.items():
            duplicates = self.outbox.insert_many(collection, docs)
            if duplicates:
                raise conflict(f"{collection} {', '.join(map(str, duplicates[:5]))} were created "
                               "by another writer meanwhile; repeat the request")

    def _update(self, change):
        update = {"$set": self._document(change), "$push": {"audit": self._entry(change)}}
        result = self.outbox.update(change.collection,
                                    {"_id": change.key, "version": change.old_version},
                                    update, self._events(change))
        if not result.matched_count:
            raise conflict(f"{change.collection} {change.key} was changed by another writer "
                           "meanwhile; repeat the request")


def _finish(in_flight, keep):
    """Wait until at most ``keep`` inserts are in flight; the first failure raises, once
    every insert has ended."""
    error = None
    while len(in_flight) > keep or (error and in_flight):
        try:
            in_flight[0].wait()
        except Exception as exc:  # noqa: BLE001 - re-raised below
            error = error or exc
        in_flight.pop(0)  # only once it has ended: a kill while waiting leaves it listed
    if error:
        raise error


def _drain(in_flight):
    """Wait for inserts still in flight while another error is on its way (that error is
    the one the caller reports; theirs are logged)."""
    while in_flight:
        try:
            in_flight[0].wait()
        except Exception:  # noqa: BLE001 - the caller's error goes first
            log.warning("an insert batch failed while the write was stopping", exc_info=True)
        in_flight.pop(0)
