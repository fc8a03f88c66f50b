"""Closing a unit's day, revising a closed day, and the yearly unexcused absences (PP 94/2021).

A unit's day D closes once it has ended in the unit's own time zone (``day_closes_at``: local
midnight, later while a night shift of the unit's rota is still open). Closing computes the
result of every *active* employee of the unit (``domain.compute_day``; also those with no
record: absent, leave, assignment, holiday, day off, outage), writes it into their day
document, then marks the close document closed with its counts and ``attendance.day_closed``
in one write, then notes the absences (``people.absences``, with any PP 94/2021 threshold
event in the same write) and advances the unit's cursor. Nothing about absences is published
before the close document says closed.

Crash and concurrency:
- the close document (``closes``, ``_id "<unit>:<date>"``) is claimed with an owner and a
  lease (``ATTENDANCE_CLOSE_LEASE_SECONDS``), renewed per batch of 500 employees: two
  replicas never close one unit-day at once, and a dead owner's lease runs out so the next
  run (the timer, or a POST) takes over and finishes;
- results are recomputed by every run and written only when they differ, so a re-run or a
  resumed close writes nothing new and publishes nothing new;
- a change to an employee's day while the close runs (``revise_closed_day`` during
  ``closing``) marks the employee dirty on the close document; the closer recomputes the
  dirty ones and marks the close closed only if no new mark came in (compare-and-set on
  ``dirty_n``), so no change slips between its read and its final write;
- after ``closed``: absences are noted (idempotent: a date is in the year's list or not) and
  ``absences_done`` set; the cursor (``close_cursor``) moves only from the day before, so it
  always means "every day up to here is closed" (reports and configuration rely on that).

A revision (a correction approved, leave approved or cancelled, an assignment or an offline
record for a closed day) recomputes one employee's day; if the result changed, the day
document gets it with ``revision + 1`` and a ``revising`` marker, then the close document gets
the unit's counts recounted, ``revision + 1`` and ``attendance.day_revised`` in one
compare-and-set, which also records the employee's revision (``revised.n<nip>``) so a repeat
never publishes it twice; then the absences, then the marker is removed. A repeat after a
crash anywhere finds the marker and finishes.

A change that can alter closed days writes a note first (``note_revision``: ``revisions_due``,
the employee and the days), makes its change, revises (``revise_noted``) and removes the note.
A process that dies after the change and before the revision leaves the note, and the close
tick finishes it (``finish_noted_revisions``, notes older than ``REVISION_NOTE_GRACE``): the
change is never left without its revision, and a note whose change never happened revises
nothing (the day computes the same).
"""

import logging
import uuid
from dataclasses import replace
from datetime import date, timedelta

import eventlet
import pymongo.errors
from marshmallow import Schema, fields

from pamong.contracts.attendance import AbsenceThresholdReached, Counts, DayClosed, DayRevised
from pamong.events.outbox import OUTBOX
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import IN_BATCH, by_ids, db_now
from pamong.timers import setting_timer
from pamong.web import (
    PageQuery,
    Problem,
    conflict,
    decode_cursor,
    not_found,
    page,
    route,
    unprocessable,
)
from services.attendance import domain
from services.attendance.access import API, STAFF_READERS, may_see_unit
from services.attendance.leave import change_person
from services.attendance.records import rota_of
from services.attendance.store import (
    CLOSES,
    CURSORS,
    DAYS,
    PEOPLE,
    REVISIONS_DUE,
    day_id,
    employees_of,
)

log = logging.getLogger(__name__)
TAGS = ["closing"]
CONTRACTS = (DayClosed, DayRevised, AbsenceThresholdReached)  # registered on import
CAS_ATTEMPTS = 25
# a note younger than this may belong to a request still running: the tick leaves it alone
REVISION_NOTE_GRACE = timedelta(minutes=5)


class NotEnded(Exception):
    """The unit's day has not ended yet (in its own time zone)."""

    def __init__(self, closes_at):
        super().__init__(f"the day ends at {closes_at.isoformat()}")
        self.closes_at = closes_at


class LeaseLost(Exception):
    """Another replica took the close over (this one was too slow to renew its lease)."""




# -- schemas ---------------------------------------------------------------------------------

class CloseOut(Schema):
    unit = fields.String(required=True)
    date = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "closing | closed"})
    revision = fields.Integer(required=True, metadata={
        "description": "0 when closed, +1 per revised employee-day"})
    counts = fields.Nested(Counts, allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    closed_by = fields.String(allow_none=True, metadata={"description": "timer or a user"})


class EmployeeDay(Schema):
    nip = fields.String(required=True)
    name = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True)


class UnitDayOut(CloseOut):
    items = fields.List(fields.Nested(EmployeeDay), required=True, metadata={
        "description": "the employees of the close, by NIP (paged: limit, cursor)"})
    next_cursor = fields.String(allow_none=True, required=True)


def close_out(doc):
    return {"unit": doc["unit"], "date": doc["date"], "state": doc["state"],
            "revision": doc.get("revision", 0), "counts": doc.get("counts"),
            "closed_at": doc.get("closed_at"), "closed_by": doc.get("closed_by")}


def chunks(items, size=IN_BATCH):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def parse_day(text):
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise unprocessable({"day": ["a date as YYYY-MM-DD"]}) from None


class Closing:
    """Mixed into the attendance service (needs ``db``, ``outbox``, ``config``,
    ``calendar``)."""

    # -- the calendar of a unit ------------------------------------------------------------

    def _lease(self):
        return timedelta(seconds=float(self.config.get("ATTENDANCE_CLOSE_LEASE_SECONDS", 60)))

    def _closes_at(self, unit, day):
        """When ``day`` ends in ``unit``: its local midnight, or the end of the window of the
        latest shift of the unit's rota that starts that day (any employee may work it)."""
        settings = self.calendar.settings(unit, day)
        shifts = [replace(hours, shift=code) for code, hours in settings["shifts"].items()]
        return domain.day_closes_at(day, self.calendar.timezone(unit), settings, shifts)

    def _inputs(self, unit, day):
        """What every employee's result of ``unit`` on ``day`` is judged with."""
        return {"settings": self.calendar.settings(unit, day),
                "tz": self.calendar.timezone(unit),
                "holidays": self.calendar.holidays(unit, day.year),
                "outages": self.calendar.outages(unit)}

    def _compute(self, day, doc, person, inputs):
        return domain.compute_day(day, doc, person, rota=rota_of(person or {}), **inputs)

    # -- closing -----------------------------------------------------------------------------

    def close_unit_day(self, unit, day, by="timer", wait=0.0):
        """Close ``unit``'s ``day`` (idempotent). Returns the close document; raises NotEnded
        before the day's end. A close another replica is running is waited for at most
        ``wait`` seconds; then its (closing) document is returned as it is."""
        unit_doc = self.calendar.unit(unit) or {}
        closes_at = self._closes_at(unit, day)
        if db_now() < closes_at:
            raise NotEnded(closes_at)
        close_id = f"{unit}:{day.isoformat()}"
        deadline = db_now() + timedelta(seconds=wait)
        while True:
            owner = uuid.uuid4().hex
            state, doc = self._claim(close_id, unit, unit_doc.get("opd"), day, owner)
            if state != "busy" or db_now() >= deadline:
                break
            eventlet.sleep(0.1)
        if state == "mine":
            try:
                doc = self._run_close(doc, unit, day, owner, by)
            except LeaseLost:
                log.warning("close of %s taken over by another replica", close_id)
                return self.db[CLOSES].find_one({"_id": close_id}, {OUTBOX: 0})
        if doc["state"] == "closed":
            if not doc.get("absences_done"):
                self._note_close_absences(doc, day)
            self._advance_cursor(unit, day)
        return doc

    def _claim(self, close_id, unit, opd, day, owner):
        """``("mine"|"closed"|"busy", close document)``: a new close, or a closing one whose
        owner's lease ran out, becomes ours."""
        for _ in range(CAS_ATTEMPTS):
            doc = self.db[CLOSES].find_one({"_id": close_id}, {OUTBOX: 0})
            at = db_now()
            if doc is None:
                doc = {"_id": close_id, "unit": unit, "opd": opd, "date": day.isoformat(),
                       "state": "closing", "owner": owner, "lease_until": at + self._lease(),
                       "started_at": at, "revision": 0, "dirty": [], "dirty_n": 0,
                       "runs": 1, "history": []}
                try:
                    self.db[CLOSES].insert_one(doc)
                except pymongo.errors.DuplicateKeyError:
                    continue
                return "mine", doc
            if doc["state"] == "closed":
                return "closed", doc
            if doc["lease_until"] > at:
                return "busy", doc
            taken = self.db[CLOSES].update_one(
                {"_id": close_id, "state": "closing", "owner": doc["owner"],
                 "lease_until": doc["lease_until"]},
                {"$set": {"owner": owner, "lease_until": at + self._lease()},
                 "$inc": {"runs": 1}})
            if taken.matched_count:
                return "mine", {**doc, "owner": owner}
        raise conflict("The close document changed under many concurrent writes; try again.")

    def _renew(self, close_id, owner):
        renewed = self.db[CLOSES].update_one({"_id": close_id, "owner": owner,
                                              "state": "closing"},
                                             {"$set": {"lease_until": db_now() + self._lease()}})
        if not renewed.matched_count:
            raise LeaseLost(close_id)

    def _judge_batch(self, unit, opd, day, employees, inputs, at):
        """Compute and store the results of ``employees`` (one batch); ``{nip: result}``."""
        people = by_ids(self.db[PEOPLE], [e["_id"] for e in employees],
                        {"leaves": 1, "assignments": 1, "rota": 1})
        docs = by_ids(self.db[DAYS], [day_id(e["_id"], day) for e in employees], {OUTBOX: 0})
        results, writes = {}, []
        for employee in employees:
            nip, doc_id = employee["_id"], day_id(employee["_id"], day)
            doc = docs.get(doc_id)
            computed = self._compute(day, doc, people.get(nip), inputs)
            stored = (doc or {}).get("result")
            if domain.same_result(stored, computed) and (doc or {}).get("unit") == unit:
                results[nip] = stored
                continue
            # before ``closed`` nothing was published: a changed result keeps its revision
            result = {**computed, "revision": (stored or {}).get("revision", 0),
                      "closed_at": at}
            results[nip] = result
            writes.append(pymongo.UpdateOne(
                {"_id": doc_id},
                {"$set": {"result": result, "unit": unit, "opd": opd},
                 "$setOnInsert": {"nip": nip, "date": day.isoformat()}}, upsert=True))
        if writes:
            self.db[DAYS].bulk_write(writes, ordered=True)
        return results

    def _run_close(self, doc, unit, day, owner, by):
        close_id, opd = doc["_id"], doc.get("opd")
        inputs = self._inputs(unit, day)
        at = db_now()
        employees = sorted(employees_of(self.db, unit), key=lambda e: e["_id"])
        names = {e["_id"]: e for e in employees}
        results = {}
        for batch in chunks(employees):
            self._renew(close_id, owner)
            results.update(self._judge_batch(unit, opd, day, batch, inputs, at))
        for _ in range(CAS_ATTEMPTS * 4):
            current = self.db[CLOSES].find_one({"_id": close_id}, {OUTBOX: 0})
            if current is None or current.get("owner") != owner:
                raise LeaseLost(close_id)
            # employees whose day changed while we ran: judged again on what is stored now
            dirty = [names[n] for n in current.get("dirty", ()) if n in names]
            for batch in chunks(dirty):
                results.update(self._judge_batch(unit, opd, day, batch, inputs, at))
            counts = domain.close_counts(results.values())
            event = self.outbox.event("attendance.day_closed", {
                "unit": unit, "opd": opd, "date": day, "counts": counts, "revision": 0},
                opd=opd)
            closed = self.outbox.update(
                CLOSES, {"_id": close_id, "state": "closing", "owner": owner,
                         "dirty_n": current.get("dirty_n", 0)},
                {"$set": {"state": "closed", "counts": counts, "closed_at": at,
                          "closed_by": by, "employees": sorted(results),
                          "absences_done": False, "lease_until": at},
                 "$push": {"history": {"at": at, "what": "closed", "by": by,
                                       "revision": 0}}},
                [event])
            if closed.matched_count:
                return self.db[CLOSES].find_one({"_id": close_id}, {OUTBOX: 0})
        raise conflict("The day kept changing while it was being closed; try again.")

    def _advance_cursor(self, unit, day):
        """``last_closed`` moves to ``day`` only from the day before (or when the unit has no
        cursor yet), so it always means that every day up to it is closed."""
        for _ in range(CAS_ATTEMPTS):
            cursor = self.db[CURSORS].find_one({"_id": unit})
            if cursor is None:
                try:
                    self.db[CURSORS].insert_one({"_id": unit, "last_closed": day.isoformat()})
                    return True
                except pymongo.errors.DuplicateKeyError:
                    continue
            last = date.fromisoformat(cursor["last_closed"])
            if last != day - timedelta(days=1):
                return False
            moved = self.db[CURSORS].update_one({"_id": unit, "last_closed": last.isoformat()},
                                                {"$set": {"last_closed": day.isoformat()}})
            if moved.matched_count:
                return True
        return False

    # -- unexcused absences ------------------------------------------------------------------

    def _note_close_absences(self, close, day):
        """Every employee the close found absent gets the date in their year's list (and any
        threshold event); then ``absences_done``. Reads the stored results, so a close finished
        by another run (or revised meanwhile) is noted as it stands."""
        nips = close.get("employees", [])
        for batch in chunks(nips):
            docs = by_ids(self.db[DAYS], [day_id(nip, day) for nip in batch],
                          {"result": 1, "unit": 1})
            absent = [nip for nip in batch
                      if (docs.get(day_id(nip, day), {}).get("result") or {}).get("status")
                      == "absent"]
            if not absent:
                continue
            employees = by_ids(self.db[EMPLOYEES], absent)
            people = by_ids(self.db[PEOPLE], absent, {"absences": 1})
            for nip in absent:
                listed = (people.get(nip, {}).get("absences") or {}).get(str(day.year), ())
                if day.isoformat() not in listed:
                    employee = employees.get(nip) or {"_id": nip, "unit": close["unit"]}
                    self._note_absence(employee, close["unit"], close.get("opd"), day, True)
        self.db[CLOSES].update_one({"_id": close["_id"]}, {"$set": {"absences_done": True}})

    def _note_absence(self, employee, unit, opd, day, absent):
        """Add (``absent``) or remove ``day`` in ``people.absences[year]`` by compare-and-set;
        an addition that reaches a PP 94/2021 threshold carries its events in the same write.
        A removal publishes nothing (a reached threshold is history: see the README)."""
        year, iso = str(day.year), day.isoformat()
        tz = self.calendar.timezone(unit)

        def change(person):
            listed = list((person.get("absences") or {}).get(year, ()))
            if (iso in listed) == absent:
                return None, [], False
            if not absent:
                return {"$pullAll": {f"absences.{year}": [iso]}}, [], True
            before = sorted(date.fromisoformat(d) for d in listed)
            after = sorted({*before, day})
            working = domain.working_days(
                after[0], after[-1], lambda d: self.calendar.settings(unit, d),
                self.calendar.holidays(unit, day.year), rota_of(person))
            crossed = domain.thresholds_crossed(
                len(before), len(after), domain.consecutive_absences(before, working),
                domain.consecutive_absences(after, working))
            events = [self.outbox.event("attendance.absence_threshold_reached", {
                "nip": employee["_id"], "unit": unit, "opd": opd, "year": day.year,
                "days": t["days"], "consecutive": t["consecutive"], "level": t["level"],
                "text": t["text"], "text_id": t["text_id"]}, opd=opd) for t in crossed]
            noted = sorted(d.isoformat() for d in after)
            log.info("absence of %s on %s noted (%s zone); thresholds %s", employee["_id"],
                     iso, tz, [t["level"] for t in crossed])
            return {"$set": {f"absences.{year}": noted}}, events, True

        return change_person(self.db, self.outbox, employee, change)[0]

    # -- revising a closed day ---------------------------------------------------------------

    def note_revision(self, employee, start, end, reason, correction=None):
        """Before a change that can alter the employee's days ``start``..``end``: the note
        that ``revise_noted`` removes once the closed ones are revised (see the module
        docstring); None when every day is today or later (a day not closed yet: its close
        will see the change). A correction's note names it: finishing it applies the approved
        correction to its day first (the day document may not have it yet)."""
        nip = employee["_id"]
        if start >= self.calendar.today(employee["unit"]):
            return None
        note = {"_id": f"{nip}:{start.isoformat()}:{end.isoformat()}:{reason}", "nip": nip,
                "start": start.isoformat(), "end": end.isoformat(), "reason": reason,
                "correction": correction, "at": db_now()}
        self.db[REVISIONS_DUE].replace_one({"_id": note["_id"]}, note, upsert=True)
        return note

    def revise_noted(self, employee, note):
        """Revise the days of ``note`` up to yesterday (a later day is not closed: its close
        sees the change), then remove the note unless a newer one of the same change
        replaced it. Nothing for no note."""
        if note is None:
            return
        today = self.calendar.today(employee["unit"])
        day, last = date.fromisoformat(note["start"]), date.fromisoformat(note["end"])
        while day <= min(last, today - timedelta(days=1)):
            self.revise_closed_day(employee, day, note["reason"])
            day += timedelta(days=1)
        self.db[REVISIONS_DUE].delete_one({"_id": note["_id"], "at": note["at"]})

    def finish_noted_revisions(self):
        """The revisions a dead process noted and never made. Returns how many notes."""
        notes = list(self.db[REVISIONS_DUE].find({"at": {"$lt": db_now() - REVISION_NOTE_GRACE}}))
        for note in notes:
            employee = self.db[EMPLOYEES].find_one({"_id": note["nip"]})
            if employee is None:  # gone from the directory: nothing of theirs to revise
                self.db[REVISIONS_DUE].delete_one({"_id": note["_id"], "at": note["at"]})
                continue
            log.warning("finishing the %s revision of %s..%s left by a stopped process",
                        note["reason"], note["start"], note["end"])
            try:
                if note.get("correction"):
                    self.apply_approved_correction(employee, note["correction"], note)
                else:
                    self.revise_noted(employee, note)
            except Exception:  # noqa: BLE001 - one note that fails must not hold up the rest
                log.exception("the %s revision of %s..%s failed; the next tick tries again",
                              note["reason"], note["start"], note["end"])
        return len(notes)

    def revise_closed_day(self, employee, day, reason):
        """Recompute ``employee``'s ``day`` if that day is closed in its unit and publish
        ``attendance.day_revised`` when the result changed; while the unit's close runs, mark
        the employee for it; before, do nothing (the close will see the change). Returns the
        new result when it changed, else None. Repeat-safe (see the module docstring)."""
        nip = employee["_id"]
        doc = self.db[DAYS].find_one({"_id": day_id(nip, day)}, {OUTBOX: 0})
        unit = (doc or {}).get("unit") if (doc or {}).get("result") else employee["unit"]
        close_id = f"{unit}:{day.isoformat()}"
        close = self.db[CLOSES].find_one({"_id": close_id}, {OUTBOX: 0})
        if close is None:
            return None
        if close["state"] == "closing":
            marked = self.db[CLOSES].update_one({"_id": close_id, "state": "closing"},
                                                {"$addToSet": {"dirty": nip},
                                                 "$inc": {"dirty_n": 1}})
            if marked.matched_count:
                return None
            close = self.db[CLOSES].find_one({"_id": close_id}, {OUTBOX: 0})
        if nip not in close.get("employees", ()):
            return None  # not in the unit's close (not active then): nothing to revise
        inputs = self._inputs(unit, day)
        for _ in range(CAS_ATTEMPTS):
            doc = self.db[DAYS].find_one({"_id": day_id(nip, day)}, {OUTBOX: 0}) or {}
            stored = doc.get("result")
            if stored is None:
                return None
            person = self.db[PEOPLE].find_one({"_id": nip}, {OUTBOX: 0})
            computed = self._compute(day, doc, person, inputs)
            pending = doc.get("revising")
            if domain.same_result(stored, computed):
                if pending:  # a revision written before a crash: finish it
                    self._publish_revision(close_id, employee, unit, day, pending, stored)
                return None
            at = db_now()
            revising = {"revision": stored.get("revision", 0) + 1, "reason": reason, "at": at,
                        "before": (pending or {}).get("before", stored["status"])}
            result = {**computed, "revision": revising["revision"],
                      "closed_at": stored.get("closed_at"), "revised_at": at}
            written = self.db[DAYS].update_one(
                {"_id": day_id(nip, day), "result.revision": stored.get("revision", 0)},
                {"$set": {"result": result, "revising": revising},
                 "$push": {"revisions": {**revising, "status": result["status"],
                                         "codes": result["codes"]}}})
            if written.matched_count:
                self._publish_revision(close_id, employee, unit, day, revising, result)
                return result
        raise conflict("The day changed under many concurrent revisions; try again.")

    def _publish_revision(self, close_id, employee, unit, day, revising, result):
        nip = employee["_id"]
        marker = f"revised.n{nip}"
        for _ in range(CAS_ATTEMPTS):
            close = self.db[CLOSES].find_one({"_id": close_id}, {OUTBOX: 0})
            if (close.get("revised") or {}).get(f"n{nip}", -1) >= revising["revision"]:
                break  # published before (a repeat after a crash)
            counts = self._recount(close, day)
            revision = close.get("revision", 0) + 1
            opd = close.get("opd")
            event = self.outbox.event("attendance.day_revised", {
                "unit": unit, "opd": opd, "date": day, "nip": nip,
                "before": revising["before"], "after": result["status"],
                "codes": result["codes"], "reason": revising["reason"], "counts": counts,
                "revision": revision}, opd=opd)
            history = {"at": db_now(), "what": "revised", "by": revising["reason"], "nip": nip,
                       "revision": revision, "before": revising["before"],
                       "after": result["status"]}
            written = self.outbox.update(
                CLOSES, {"_id": close_id, "revision": close.get("revision", 0)},
                {"$set": {"counts": counts, "revision": revision,
                          marker: revising["revision"]},
                 "$push": {"history": history}},
                [event])
            if written.matched_count:
                break
        else:
            raise conflict("The unit's day changed under many concurrent revisions; "
                           "try again.")
        self._note_absence(employee, unit, close.get("opd"), day,
                           result["status"] == "absent")
        self.db[DAYS].update_one({"_id": day_id(nip, day),
                                  "revising.revision": revising["revision"]},
                                 {"$unset": {"revising": ""}})

    def _recount(self, close, day):
        """The unit-day's counts from its employees' stored results (a revision is rare: its
        cost follows the unit's size)."""
        results = []
        for batch in chunks(close.get("employees", [])):
            docs = by_ids(self.db[DAYS], [day_id(nip, day) for nip in batch], {"result": 1})
            results += [d["result"] for d in docs.values() if d.get("result")]
        return domain.close_counts(results)

    # -- the timer ---------------------------------------------------------------------------

    def _first_day(self, today):
        first = self.config.get("ATTENDANCE_FIRST_DAY")
        return date.fromisoformat(str(first)) if first else today - timedelta(days=1)

    def close_due(self):
        """Close every unit-day that has ended and is not closed yet, oldest first, from the
        day after the unit's cursor (a unit never closed: ``ATTENDANCE_FIRST_DAY``, else
        yesterday) up to yesterday in the unit's zone. Units: those with active employees."""
        units = {u["_id"]: u for u in self.db[UNITS].find({}, {"timezone": 1})}
        cursors = by_ids(self.db[CURSORS], list(units))
        due = {}
        for code, unit in units.items():
            today = domain.local_date(db_now(), unit.get("timezone") or "Asia/Jakarta")
            cursor = cursors.get(code)
            start = (date.fromisoformat(cursor["last_closed"]) + timedelta(days=1) if cursor
                     else self._first_day(today))
            if start < today:
                due[code] = (start, today)
        if not due:
            return 0
        staffed = {row["_id"] for row in self.db[EMPLOYEES].aggregate(
            [{"$match": {"status": "active"}}, {"$group": {"_id": "$unit", "n": {"$sum": 1}}}])}
        closed = 0
        for code in sorted(set(due) & staffed):
            day, today = due[code]
            while day < today:
                try:
                    doc = self.close_unit_day(code, day)
                except NotEnded:
                    break  # a night shift still open: the next tick
                if doc is None or doc["state"] != "closed":
                    break  # another replica closes it now: it will go on
                closed += 1
                day += timedelta(days=1)
        return closed

    @setting_timer("ATTENDANCE_CLOSE_INTERVAL_SECONDS", 60)
    def close_due_days(self):
        """Close the ended days (also at start: a close missed while down is caught up), and
        finish the revisions a stopped process left noted."""
        try:
            self.close_due()
            self.finish_noted_revisions()
        except Exception:  # the next tick tries again; the error is logged, not swallowed
            log.exception("closing the ended days failed")
            raise

    # -- HTTP --------------------------------------------------------------------------------

    def _scoped_unit(self, principal, unit, write):
        doc = self.db[UNITS].find_one({"_id": unit})
        allowed = (principal.can_write(unit) if write else may_see_unit(principal, unit))
        if doc is None or not allowed:
            raise not_found(f"Unit {unit} is not in this Pemda's directory, or you may not "
                            "see it.")
        return doc

    @route("POST", f"{API}/units/<unit>/days/<day>/close", roles=("admin", "opd_admin"),
           response=CloseOut(), tags=TAGS,
           problems={422: "`day` is not a date YYYY-MM-DD",
                     409: "The day has not ended in the unit, or another replica is closing "
                          "it"},
           summary="Close a unit's ended day now (idempotent: a closed day returns its counts)")
    def close_day_now(self, request, principal, unit, day):
        self._scoped_unit(principal, unit, write=True)
        day = parse_day(day)
        try:
            doc = self.close_unit_day(unit, day, by=principal.nip or principal.sub,
                                      wait=2 * self._lease().total_seconds())
        except NotEnded as exc:
            raise conflict(f"{day.isoformat()} has not ended in unit {unit} (it ends at "
                           f"{exc.closes_at.isoformat()}): nothing is closed before its "
                           "end.") from None
        if doc is None or doc["state"] != "closed":
            raise Problem(409, "Another replica is closing this day right now; try again in "
                               "a minute.", headers={"Retry-After": "30"})
        return close_out(doc)

    @route("GET", f"{API}/units/<unit>/days/<day>", roles=STAFF_READERS, query=PageQuery(),
           response=UnitDayOut(), tags=TAGS,
           summary="A unit's closed day: counts and each employee's result (paged by NIP)")
    def get_unit_day(self, request, principal, query, unit, day):
        self._scoped_unit(principal, unit, write=False)
        day = parse_day(day)
        doc = self.db[CLOSES].find_one({"_id": f"{unit}:{day.isoformat()}"},
                                       {OUTBOX: 0, "dirty": 0})
        if doc is None:
            return {"unit": unit, "date": day.isoformat(), "state": "open", "revision": 0,
                    "counts": None, "closed_at": None, "closed_by": None, "items": [],
                    "next_cursor": None}
        after = (decode_cursor(query["cursor"]) or {}).get("_id")
        nips = [n for n in doc.get("employees", ()) if after is None or n > after]
        chosen = nips[:query["limit"] + 1]
        docs = by_ids(self.db[DAYS], [day_id(n, day) for n in chosen], {"result": 1})
        people = by_ids(self.db[EMPLOYEES], chosen, {"name": 1})
        items = [{"_id": n, "nip": n, "name": people.get(n, {}).get("name"),
                  "result": docs.get(day_id(n, day), {}).get("result")} for n in chosen]
        paged = page(items, query["limit"], lambda item: {"_id": item["_id"]})
        return {**close_out(doc), "items": [{k: v for k, v in i.items() if k != "_id"}
                                            for i in paged["items"]],
                "next_cursor": paged["next_cursor"]}
