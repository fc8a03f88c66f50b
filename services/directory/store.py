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
- ``slots``: ``{_id: slot, nips: {nip: version}}``, who is filed under each position (or
  ``unit:<code>`` for people without one; ``domain.slot_of``), so a change finds the people
  whose supervisor it changes, and the holders of a post, by key. A superset: a change files
  a NIP before it writes the employee and unfiles it after, so a crash leaves a NIP too many,
  never one missing; readers check each against the employee's document (``load_holders``).
- a struktural position's ``holder``/``holder_version``/``claimed_at``: its one active
  holder, claimed with a conditional update before the employee is written
  (``claim_post``). Filings and claims carry the version of the change that made them, so
  an earlier change of the same employee never undoes a later one's.
- ``pending``: notes of re-derivations in flight (``changes``).
- ``locks``: the directory write lock (``lock.WriteLock``).

Dates are stored as ISO strings (BSON has no date type); times as UTC datetimes.
"""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

import eventlet

from pamong.events.outbox import OUTBOX
from pamong.privacy import mask_nik
from pamong.storage import Index, by_ids
from pamong.web import Problem, conflict
from services.directory.domain import (
    ACTIVE,
    FIELDS,
    State,
    held_position,
    opd_of,
    parent_code,
    slot_chains,
    slot_of,
)

log = logging.getLogger(__name__)

DATE_FIELDS = ("birth_date", "effective_date", "status_date")

INDEXES = [Index("employees", [("opd", 1)]), Index("employees", [("unit", 1)]),
           Index("employees", [("position", 1)]), Index("positions", [("unit", 1)]),
           Index("acting", [("position", 1)]), Index("imports", [("status", 1)])]

WITHOUT_HISTORY = {"audit": 0, OUTBOX: 0}
FILING_VERSION = 1  # ``refile`` builds slots and post claims for a directory stored before


class LostRace(Problem):
    """409: another writer changed (or created) the record between our read and our write."""

    def __init__(self, detail):
        super().__init__(409, detail)


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


def load_structure(db):
    """Units and positions alone (no employee) as a ``State``, and their ``meta``."""
    records, meta = {}, {}
    for collection in ("units", "positions"):
        records[collection], meta[collection] = {}, {}
        for doc in db[collection].find({}, WITHOUT_HISTORY):
            records[collection][doc["_id"]] = record_of(doc, collection)
            meta[collection][doc["_id"]] = (doc.get("version", 0), doc.get("view"))
    return State(**records), {**meta, "employees": {}}


@dataclass
class Structure:
    """The structure a shared writer derives from, cached per process until an exclusive
    writer raises the lock's ``epoch``: its size follows the units and positions, never
    the employees, and a change of one employee reads none of it from the database."""

    epoch: tuple  # (generation, epoch) of the lock document (``lock.read_epoch``)
    state: State  # units and positions, no employee: never edited
    chains: dict  # slot -> the positions deciding its supervisor (domain.slot_chains)

    def with_employees(self, employees, holder_lists, known, settled=None):
        state = State(self.state.units, self.state.positions, employees, holder_lists, known,
                      settled)
        state._heads = self.state._heads  # the heads index is the structure's: share it
        return state


_structures = {}  # database name -> Structure


def structure(db, epoch):
    cached = _structures.get(db.name)
    if cached is None or cached.epoch != epoch:
        state, _ = load_structure(db)
        state.head_position(None)  # build the heads index once, for every change to share
        cached = _structures[db.name] = Structure(epoch, state, slot_chains(state))
    return cached


def load_employees(db, nips):
    """``{nip: stored document}`` (history left out) of those NIPs that exist."""
    return by_ids(db.employees, nips, WITHOUT_HISTORY)


def filed_in(db, slots):
    """The NIPs filed under ``slots`` (a superset of who is there: check each)."""
    return {n for d in by_ids(db.slots, slots).values() for n in d.get("nips", {})}


def load_holders(db, positions, keep=None):
    """``{position: sorted NIPs of its active holders}`` for ``positions``: the slots say who
    may hold them, the employee documents decide."""
    positions = sorted(set(positions))
    filed = {p: list(d.get("nips", {})) for p, d in by_ids(db.slots, positions).items()}
    found = by_ids(db.employees, {n for nips in filed.values() for n in nips},
                   {"position": 1, "status": 1}, keep)
    return {p: sorted(n for n in filed.get(p, ()) if n in found
                      and found[n].get("status") == ACTIVE and found[n].get("position") == p)
            for p in positions}


def file_under(db, slot, versions):
    """File ``{nip: version of the change filing it}`` under ``slot``; a later change's
    filing is never lowered (``$max``), so an earlier change's unfiling cannot remove it."""
    db.slots.update_one({"_id": slot}, {"$max": {f"nips.{n}": v for n, v in versions.items()}},
                        upsert=True)


def unfile(db, slot, versions, exclusive=False):
    """Unfile ``{nip: version of the change that left the slot}``: each only if no later
    change of that employee filed it again. An exclusive writer (nobody else writes) unfiles
    them all in one update."""
    if exclusive:
        db.slots.update_one({"_id": slot}, {"$unset": {f"nips.{n}": "" for n in versions}})
        return
    for nip, version in versions.items():
        db.slots.update_one({"_id": slot, f"nips.{nip}": {"$lte": version}},
                            {"$unset": {f"nips.{nip}": ""}})


def claim_post(db, position_id, nip, version, lease, exclusive=False, wait=2.0):
    """Make ``nip`` the one active holder of struktural ``position_id``: the narrow lock of
    the rule "one active holder", one conditional update on the position's ``holder`` (with
    ``holder_version``, the version of the employee change that claimed it). Returns None, or
    the NIP of the active holder who keeps it (the caller's 422).

    An exclusive writer (an import, whose plan already checked the rule over the whole
    directory) just sets it. Otherwise a claim whose employee is not (or no longer) written
    as holding the post: while it is fresh, its change may still be running, so we wait for
    it (up to ``wait`` s, then 409); once its writer's lease is over (the change failed or
    died) it is taken over."""
    mine = {"holder": nip, "holder_version": version, "claimed_at": time.time()}
    if exclusive:
        db.positions.update_one({"_id": position_id}, {"$set": mine})
        return None
    deadline = time.monotonic() + wait
    while True:
        now = mine["claimed_at"] = time.time()
        if db.positions.update_one({"_id": position_id, "holder": {"$in": [None, nip]}},
                                   {"$set": {"holder": nip, "claimed_at": now},
                                    "$max": {"holder_version": version}}).matched_count:
            return None
        post = db.positions.find_one({"_id": position_id}, {"holder": 1, "claimed_at": 1}) or {}
        other = post.get("holder")
        if held_position(db.employees.find_one({"_id": other}, {"position": 1, "status": 1})) \
                == position_id:
            return other
        if post.get("claimed_at", 0) <= now - lease and db.positions.update_one(
                {"_id": position_id, "holder": other, "claimed_at": post.get("claimed_at")},
                {"$set": mine}).matched_count:
            return None
        if time.monotonic() >= deadline:
            raise conflict(f"Position {position_id} is being given to another employee right "
                           "now; repeat the request.")
        eventlet.sleep(0.02)


def release_post(db, position_id, nip, version):
    """Release a post ``nip`` claimed, unless a later change of that employee claimed it
    again."""
    db.positions.update_one({"_id": position_id, "holder": nip,
                             "holder_version": {"$lte": version}},
                            {"$set": {"holder": None}})


def refile_before(db, moves, positions, lease, exclusive=False):
    """Before employees are written (``moves``: (stored record or None, new record, new
    version)): file each under its new slot and claim its new struktural post. Returns
    [(nip, holder)] for posts another active holder keeps (nothing is written then: the
    claims made are released). Filing first is what lets two concurrent changes see each
    other: one that derives a supervisor afterwards finds the new holder, and this change's
    re-derivation of the dependents finds whoever filed before it."""
    filings = {}
    for before, record, version in moves:
        if before is None or slot_of(before) != slot_of(record):
            filings.setdefault(slot_of(record), {})[record["nip"]] = version
    for slot, versions in filings.items():
        file_under(db, slot, versions)
    claimed, kept = [], []
    for before, record, version in moves:
        post = held_position(record)
        if post and post != held_position(before) and \
                positions.get(post, {}).get("kind") == "struktural":
            holder = claim_post(db, post, record["nip"], version, lease, exclusive)
            (kept.append((record["nip"], holder)) if holder else
             claimed.append((post, record["nip"], version)))
    if kept:
        for post, nip, version in claimed:
            release_post(db, post, nip, version)
    return kept


def refile_after(db, moves, exclusive=False):
    """After employees are written: unfile them from their old slot, release the posts they
    left (each only if no later change of that employee filed or claimed it again)."""
    leavings = {}
    for before, record, version in moves:
        if before is not None and slot_of(before) != slot_of(record):
            leavings.setdefault(slot_of(before), {})[record["nip"]] = version
        left = held_position(before)
        if left and left != held_position(record):
            release_post(db, left, record["nip"], version)
    for slot, versions in leavings.items():
        unfile(db, slot, versions, exclusive)


def refile(db):
    """File every employee, claim every held struktural post and list each position's acting
    assignments (``acting``/``acting_rev``, the narrow lock of "no overlap") from scratch:
    once, for a directory stored before they existed (the lock's ``filed``), under the
    exclusive lock."""
    slots, held = {}, {}
    for doc in db.employees.find({}, {"position": 1, "unit": 1, "status": 1, "version": 1}):
        slots.setdefault(slot_of(doc), {})[doc["_id"]] = doc.get("version", 0)
        if post := held_position(doc):
            held.setdefault(post, []).append((doc["_id"], doc.get("version", 0)))
    db.slots.delete_many({})
    for slot, versions in slots.items():
        file_under(db, slot, versions)
    for post in db.positions.find({"kind": "struktural"}, {"_id": 1}):
        holder, version = min(held.get(post["_id"], [(None, 0)]))
        db.positions.update_one({"_id": post["_id"]}, {"$set": {
            "holder": holder, "holder_version": version, "claimed_at": 0}})
    actings = {}
    for acting in db.acting.find({}, {"position": 1}):
        actings.setdefault(acting["position"], []).append(acting["_id"])
    for post, ids in actings.items():
        db.positions.update_one({"_id": post}, {"$set": {"acting": ids, "acting_rev": 0}})
    log.info("directory filed: %d slots, %d held posts", len(slots), len(held))


def audit_entry(action, changes, actor, correlation_id, source):
    masked = {}
    for name, (old, new) in changes.items():
        if name == "nik":
            old, new = (mask_nik(v) if v else v for v in (old, new))
        # {from, to}, not [old, new]: FerretDB stores no arrays nested in arrays
        masked[name] = {"from": storable({"v": old})["v"], "to": storable({"v": new})["v"]}
    return {"at": datetime.now(UTC), "action": action, "changes": masked, "by": actor,
            "correlation_id": correlation_id, "source": source}


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

    def write(self, changes, on_batch=None, refiling=None):
        """``changes``: ``domain.Change`` list, in dependency order. Returns the count.

        ``on_batch`` runs after every ``INSERT_BATCH`` changes (the lock's ``renew``).
        ``refiling`` (the positions by id): this write files the employees it moves and
        claims their posts itself, all before and after the documents (an import, under the
        exclusive lock); a single change does that before it derives (``changes``)."""
        moves = [] if refiling is None else [
            (c.before, c.record, c.version) for c in changes if c.collection == "employees"]
        if moves:  # exclusive: the plan checked "one holder" over the whole directory
            refile_before(self.db, moves, refiling, 0, exclusive=True)
        self._write(changes, on_batch)
        if moves:
            refile_after(self.db, moves, exclusive=True)
        return len(changes)

    def _write(self, changes, on_batch):
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
                if on_batch and (done % self.INSERT_BATCH == 0 or change.old_version):
                    on_batch()  # updates go one by one: a lock's ``keep`` decides
            if inserts:
                self._start_insert(inserts, in_flight)
            _finish(in_flight, keep=0)
        finally:  # whatever stopped the loop (an error, a kill): no insert outlives write()
            _drain(in_flight)

    def _start_insert(self, changes, in_flight):
        by_collection = {}
        for change in changes:
            doc = {"_id": change.key, **self.document(change), "audit": [self._entry(change)]}
            by_collection.setdefault(change.collection, []).append((doc, self._events(change)))
        _finish(in_flight, keep=self.IN_FLIGHT - 1)
        in_flight.append(eventlet.spawn(self._insert, by_collection))
        eventlet.sleep(0)  # let it send its request before the next batch is prepared

    def document(self, change):
        """The fields a change stores (its history entry and events go separately)."""
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
                raise LostRace(f"{collection} {', '.join(map(str, duplicates[:5]))} were created "
                               "by another writer meanwhile; repeat the request")

    def _update(self, change):
        update = {"$set": self.document(change), "$push": {"audit": self._entry(change)}}
        result = self.outbox.update(change.collection,
                                    {"_id": change.key, "version": change.old_version},
                                    update, self._events(change))
        if not result.matched_count:
            raise LostRace(f"{change.collection} {change.key} was changed by another writer "
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
