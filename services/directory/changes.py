"""Single changes: each reads what its rules and derived views need, by key, and no more.

**An employee** (PUT, transfer, deactivation), under the shared lock (``lock``):
1. the structure (units and positions, cached per process until the lock's epoch moves)
   and the employee's document;
2. ``mutate`` builds the new record (the caller's own rules and 422s);
3. its intent is filed before anything is derived (``store.refile_before``): the new slot,
   and the claim of a struktural post, the narrow lock of "one active holder";
4. the holders of the positions its rules and its supervisor look at (``load_holders``) and
   the explicit supervisor's existence, each read by key;
5. checked, planned (``domain.employee_change``) and written with its version check; a race
   lost to another writer of the same record is re-read and planned again;
6. unless its supervisor inputs stayed as they were, it derives itself once more from what
   is stored now; when it changed who holds a position, the people whose chain reaches that
   position through vacant posts are re-derived (``dependents``, ``rederive``): exactly
   those whose view changed are written, each with its own version check and an
   ``employee.upserted``;
7. the old slot is unfiled and a post left is released.

A change that re-derives (others, or itself) first notes what in ``pending`` (one document,
deleted when done): a writer that dies between its own write and the last re-derivation
leaves the note, and ``finish_pending`` does the rest (whoever takes the
exclusive lock first, or a timer once the note's lease is over). ``pending`` holds only
changes in flight, so reading it costs nothing on a large directory.

Two such changes never wait for each other, yet each sees the other. A change whose
supervisor inputs changed derives itself once more from what is stored after its write: a
holder written meanwhile is seen there; a holder written after that re-derives this record
from its stored state (it is filed by then). Every step is one single-document write, and the
version check settles two writers of one record.

**A structure change** (unit, position), under the exclusive lock: the structure is read
fresh, ``mutate`` edits a copy (its rules see the people filed in the slots they name), the
unit or position is written, then the people of every slot whose chain moved (and of the
position itself, when what an employee's view shows of it changed) are re-derived.
"""

import logging
import time
import uuid

from pamong.web import unprocessable
from services.directory import domain
from services.directory.store import (
    WITHOUT_HISTORY,
    LostRace,
    Structure,
    filed_in,
    load_employees,
    load_holders,
    load_structure,
    record_of,
    refile_after,
    refile_before,
    release_post,
    structure,
)

log = logging.getLogger(__name__)

RETRIES = 5
CHUNK = 500
SHOWN_POSITION_FIELDS = ("title", "kind", "heads_unit", "may_sign")  # in employee views


def derivation_state(db, built, records, settled=None, rules=True, keep=None):
    """A ``State`` for deriving ``records`` (by NIP): the structure, the holders of every
    position their rules and supervisors look at, and which explicit supervisors exist.
    ``settled``: ``{nip: supervisor}`` of records whose supervisor nothing it follows has
    changed (their stored view stays right: whoever changes a holder re-derives the people
    below), so nothing is read for them. ``rules=False``: only views are derived (the
    one-holder rule's holders are not read). ``keep``: called between reads (a lock's)."""
    settled = settled or {}
    needed = set()
    for nip, record in records.items():
        if nip in settled:
            continue
        needed.update(built.state.supervisor_positions(record))
        position = built.state.positions.get(record.get("position"))
        if rules and position and position["kind"] == "struktural":
            needed.add(position["id"])  # the rule of one active holder
    explicit = {r["supervisor"] for n, r in records.items() if r.get("supervisor")
                and n not in settled}
    known = set(load_employees(db, explicit - set(records)))
    return built.with_employees(records, load_holders(db, needed, keep), known, settled)


def change_employee(db, lock, writer, nip, mutate, today):
    """``mutate(stored document or None, stored record or None) -> new record`` (it may
    raise the caller's 404, 403 and 422). Returns the stored document afterwards."""
    for _ in range(RETRIES):
        built = structure(db, lock.epoch)
        doc = db.employees.find_one({"_id": nip}, WITHOUT_HISTORY)
        before = record_of(doc, "employees") if doc else None
        record = mutate(doc, before)
        version = (doc.get("version", 0) if doc else 0) + 1
        moves = [(before, record, version)]
        kept = refile_before(db, moves, built.state.positions, lock.lease)
        held_before, held_after = domain.held_position(before), domain.held_position(record)
        moved = {p for p in (held_before, held_after) if p} if held_before != held_after \
            else set()
        settled = {nip: doc["view"]["supervisor"]} if doc and doc.get("view") and all(
            before.get(f) == record.get(f) for f in domain.SUPERVISOR_INPUTS) else {}
        note, attempted = None, False
        try:
            if kept:
                raise unprocessable({"position": [
                    f"struktural position {record['position']} is already held by "
                    f"{kept[0][1]}"]}, "The record does not fit the directory.")
            state = derivation_state(db, built, {nip: record}, settled)
            if not settled:  # the rules follow the same inputs: they held when it was stored
                check(domain.employee_problems(record, state))
            meta = (doc.get("version", 0), doc.get("view")) if doc else (0, None)
            changes = domain.employee_change(before, record, state.employee_view(nip), meta,
                                             today)
            if changes and (moved or not settled):
                note = _note(db, lock, positions=sorted(moved), nips=[nip])
            attempted = True
            writer.write(changes)
        except LostRace:  # not written: undo the claim, read again
            if held_after in moved:
                release_post(db, held_after, nip, version)
            if note:
                db.pending.delete_one({"_id": note})
            continue
        except BaseException:
            # a write that failed may have been applied: its claim and note stay (a claim
            # whose employee does not hold the post is taken over after its lease)
            if held_after in moved and not attempted:
                release_post(db, held_after, nip, version)
            raise
        # derived again from what is stored now: a holder of the chain written while this
        # change derived (it found this record not yet written) is seen here
        again = rederive(db, lock, writer, built, {nip}, today) if changes and not settled \
            else 0
        if moved and changes:
            rederive(db, lock, writer, built, dependents(db, built, moved) - {nip}, today)
        refile_after(db, moves)
        if note:
            db.pending.delete_one({"_id": note})
        if again:
            return db.employees.find_one({"_id": nip}, WITHOUT_HISTORY)
        return {"_id": nip, **writer.document(changes[0])} if changes else doc
    raise LostRace(f"Employee {nip} kept being changed by other writers; repeat the request.")


def dependents(db, built, moved):
    """The people whose supervisor may change when the holders of ``moved`` change: those
    filed in a slot whose chain reaches one of them through posts that are all vacant (a
    filled post nearer up is their supervisor's, whatever happens above it).

    Read after this change's write, so a post that fills or empties meanwhile is seen here,
    or its own change re-derives these people after its write."""
    reach = {}
    for slot in domain.dependent_slots(built.chains, moved):
        chain = built.chains[slot]
        reach[slot] = chain[:min(chain.index(p) for p in moved if p in chain)]
    holders = load_holders(db, {p for nearer in reach.values() for p in nearer})
    return filed_in(db, [slot for slot, nearer in reach.items()
                         if not any(holders[p] for p in nearer)])


def rederive(db, lock, writer, built, nips, today):
    """Derive the views of ``nips`` again and write those that changed (audit action
    ``derived``); one that another writer changed meanwhile is derived again from its new
    state. Returns the number of records written."""
    pending, written = sorted(nips), 0
    for _ in range(RETRIES):
        lost = []
        for start in range(0, len(pending), CHUNK):
            # the records first, then their holders: a holder written in between has
            # re-derived these records itself, and our version check then loses and retries
            docs = load_employees(db, pending[start:start + CHUNK])
            records = {nip: record_of(doc, "employees") for nip, doc in docs.items()}
            state = derivation_state(db, built, records, rules=False, keep=lock.keep)
            for nip, doc in docs.items():
                changes = domain.employee_change(
                    records[nip], records[nip], state.employee_view(nip),
                    (doc.get("version", 0), doc.get("view")), today)
                try:
                    written += writer.write(changes)
                except LostRace:
                    lost.append(nip)
                lock.keep()
        if not lost:
            return written
        pending = lost
    raise LostRace("Employees below this change kept being changed by other writers; repeat "
                   "the request to derive them again.")


def change_structure(db, lock, writer, mutate, today):
    """Under the exclusive lock: ``mutate(state, with_people)`` edits a copy of the structure
    (units and positions); ``with_people(slots)`` is that structure with the employees filed
    in those slots, for the rules that ask who works in a unit or holds a position."""
    old, meta = load_structure(db)
    new = domain.State(dict(old.units), dict(old.positions))

    def with_people(slots):
        return domain.State(new.units, new.positions, {
            nip: record_of(doc, "employees")
            for nip, doc in load_employees(db, filed_in(db, slots)).items()})

    result = mutate(new, with_people)
    new.changed()
    changes = domain.plan(old, new, meta, today)
    chains = domain.slot_chains(new)
    slots = domain.moved_slots(domain.slot_chains(old), chains)
    slots |= {c.key for c in changes if c.collection == "positions" and (
        set(c.changes) & set(SHOWN_POSITION_FIELDS))}
    note = _note(db, lock, slots=sorted(slots)) if slots else None
    writer.write(changes, on_batch=lock.keep)
    rederive(db, lock, writer, Structure(None, new, chains), filed_in(db, slots), today)
    if note:
        db.pending.delete_one({"_id": note})
    return result


def _note(db, lock, **what):
    """Note what this change will re-derive (``positions`` whose holders change, ``slots``
    whose chain moved, ``nips`` to derive again) before it writes: ``finish_pending`` reads
    it if we die."""
    note = uuid.uuid4().hex
    db.pending.insert_one({"_id": note, "until": time.time() + lock.lease, **what})
    return note


def finish_pending(db, lock, writer, today, everything=False):
    """Re-derive what writers that died noted in ``pending``: all of it under the exclusive
    lock (nobody else is writing), else only notes whose writer's lease is over. Returns the
    number of notes finished."""
    now, finished = time.time(), 0
    for note in list(db.pending.find({})):
        if not everything and note["until"] > now:
            continue
        state, _ = load_structure(db)  # rare: read fresh, whatever the cache holds
        chains = domain.slot_chains(state)
        slots = set(note.get("slots", ())) | domain.dependent_slots(
            chains, set(note.get("positions", ())))
        written = rederive(db, lock, writer, Structure(None, state, chains),
                           filed_in(db, slots) | set(note.get("nips", ())), today)
        db.pending.delete_one({"_id": note["_id"]})
        log.info("finished the re-derivation of a change whose writer died: %d written",
                 written)
        finished += 1
    return finished


def unit_slots(state, code):
    """The slots the people of a unit are filed in: its positions, and the unit itself."""
    return {p for p, pos in state.positions.items() if pos["unit"] == code} | {
        f"{domain.UNIT_SLOT}{code}"}


def check(problems):
    if problems:
        errors = {}
        for name, reason in problems:
            errors.setdefault(name, []).append(reason)
        raise unprocessable(errors, "The record does not fit the directory.")

