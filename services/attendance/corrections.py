"""Corrections: an employee asks to correct a day (the device broke, they forgot to check
out), their supervisor decides.

A request lives in the employee's ``people`` document (``corrections``); every change is one
compare-and-set on that document (``version``) carrying its event (outbox). One open
(``requested``) correction per date: two racing requests for one date give one request and a
409. Who decides: the employee's ``supervisor`` in the directory replica, or the Plt/Plh acting
in the supervisor's position on the day of the decision (unit time), as for leave; nobody
else (not ``admin``: a way around the supervisor).

On approval the day document gets ``correction {id, check_in, check_out}`` (UTC datetimes from
the unit's zone; null leaves the records' time) and ``revise_closed_day`` recomputes a closed
day (a day not closed yet uses it when it closes). The decision is written first, then the
day: a crash between them is repaired by repeating the same decision, which answers the
stored decision (no second event) and applies the day again (idempotent).
"""

import uuid
from datetime import datetime, time, timedelta

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.contracts.attendance import CorrectionDecided
from pamong.storage import db_now
from pamong.web import PageQuery, conflict, forbidden, not_found, route, unprocessable
from pamong.web.idempotency import idempotency_key
from services.attendance import domain
from services.attendance.access import (
    API,
    DecidedFields,
    DecisionBody,
    active_self,
    own_nip,
)
from services.attendance.leave import (
    change_person,
    may_decide,
    pending_requests,
    requester_or_404,
)
from services.attendance.records import person_of, rota_of
from services.attendance.store import DAYS, PEOPLE, day_id

TAGS = ["corrections"]
CONTRACTS = (CorrectionDecided,)  # registered on import
DECIDERS = ("pegawai", "pimpinan", "verifikator", "opd_admin", "admin")
READERS = (*DECIDERS, "service")
KEY_IDS = uuid.UUID("6b1d3f0e-7a42-4c8e-b5d1-2e9f0c7a8b31")  # correction ids from a key


class Clock(fields.String):
    """``"HH:MM"`` (unit time) or null."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if len(text) != 5:
                raise ValueError(text)
            return time.fromisoformat(text)
        except ValueError:
            raise ValidationError("a time of day as HH:MM") from None


class CorrectionBody(Schema):
    date = fields.Date(required=True)
    check_in = Clock(required=True, allow_none=True, metadata={
        "description": "HH:MM unit time, or null to keep the records' check-in"})
    check_out = Clock(required=True, allow_none=True, metadata={
        "description": "HH:MM unit time, or null to keep the records' check-out"})
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))

    @validates_schema
    def something_to_correct(self, data, **kwargs):
        if data.get("check_in") is None and data.get("check_out") is None:
            raise ValidationError("give a check_in, a check_out or both", "check_in")


class CorrectionOut(DecidedFields):
    id = fields.String(required=True)
    nip = fields.String(required=True)
    date = fields.String(required=True)
    check_in = fields.String(allow_none=True)
    check_out = fields.String(allow_none=True)
    reason = fields.String(required=True)
    status = fields.String(required=True, metadata={
        "description": "requested | approved | rejected"})


class CorrectionList(Schema):
    nip = fields.String(required=True)
    items = fields.List(fields.Nested(CorrectionOut), required=True)


class PendingCorrectionsOut(Schema):
    items = fields.List(fields.Nested(CorrectionOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


def correction_out(nip, entry):
    return {**{k: entry.get(k) for k in CorrectionOut._declared_fields}, "nip": nip}


def find_correction(person, correction_id):
    for index, entry in enumerate((person or {}).get("corrections", ())):
        if entry["id"] == correction_id:
            return index, entry
    return None, None


class CorrectionEndpoints:
    """Mixed into the attendance service (needs ``db``, ``outbox``, ``config``, ``calendar``,
    ``note_revision`` and ``revise_noted`` from the closing mixin)."""

    def _correction_employee(self, principal, nip):
        return requester_or_404(self.db, self.calendar, principal, nip)

    def _instants(self, employee, person, day, check_in, check_out):
        """The corrected times as UTC datetimes of ``day`` in the unit's zone; on a night
        shift a time before the shift's start is the next morning."""
        unit = employee["unit"]
        tz = domain.zone(self.calendar.timezone(unit))
        hours = domain.hours_on(self.calendar.settings(unit, day), day, rota_of(person))

        def instant(clock):
            if clock is None:
                return None
            on = day
            if hours is not None and hours.crosses_midnight and clock < hours.start:
                on = day + timedelta(days=1)
            return datetime.combine(on, clock, tzinfo=tz).astimezone(domain.zone("UTC"))

        return instant(check_in), instant(check_out)

    # -- request -----------------------------------------------------------------------------

    @route("POST", f"{API}/corrections", roles=("pegawai",), body=CorrectionBody(),
           response=CorrectionOut(), status=201, tags=TAGS,
           summary="Ask your supervisor to correct one of your days (optional "
                   "Idempotency-Key: a repeat returns the first result)")
    def request_correction(self, request, principal, body):
        key = idempotency_key(request)
        employee = active_self(self.db, principal)
        nip, unit = employee["_id"], employee["unit"]
        day = body["date"]
        today = self.calendar.today(unit)
        limit = int(self.config.get("ATTENDANCE_CORRECTION_MAX_DAYS", 30))
        if day > today:
            raise unprocessable({"date": ["today or a past day"]})
        if day < today - timedelta(days=limit):
            raise unprocessable({"date": [f"at most {limit} days ago"]})
        person = person_of(self.db, nip)
        check_in, check_out = self._instants(employee, person, day, body["check_in"],
                                             body["check_out"])
        problems = {}
        if check_in and check_out and check_out <= check_in:
            problems["check_out"] = ["after the check-in"]
        if any(at is not None and at > db_now() for at in (check_in, check_out)):
            problems.setdefault("check_in", []).append("a time that has passed")
        if problems:
            raise unprocessable(problems)
        correction_id = uuid.uuid5(KEY_IDS, f"{nip}:{key}").hex if key else uuid.uuid4().hex

        def change(person):
            _, first = find_correction(person, correction_id)
            if first is not None:  # a repeat, or its concurrent twin got there first
                return None, [], (first, False)
            for other in person.get("corrections", ()):
                if other["date"] == day.isoformat() and other["status"] == "requested":
                    raise conflict(f"Correction {other['id']} for {day.isoformat()} is waiting "
                                   "for a decision: one open correction per day.")
            entry = {"id": correction_id, "date": day.isoformat(),
                     "check_in": fmt(body["check_in"]), "check_out": fmt(body["check_out"]),
                     "reason": body["reason"], "status": "requested",
                     "approver": employee.get("supervisor"), "requested_at": db_now(),
                     "decided_by": None, "decided_at": None, "note": None, "key": key}
            return {"$push": {"corrections": entry}}, [], (entry, True)

        (entry, new), _ = change_person(self.db, self.outbox, employee, change)
        headers = {} if new else {"Idempotent-Replayed": "true"}
        return 201, correction_out(nip, entry), headers

    # -- decide ------------------------------------------------------------------------------

    @route("POST", f"{API}/corrections/<nip>/<correction_id>/decision", roles=DECIDERS,
           body=DecisionBody(), response=CorrectionOut(), tags=TAGS,
           summary="Approve or reject a correction (the supervisor, or the Plt/Plh of the "
                   "supervisor's position on the day)")
    def decide_correction(self, request, principal, body, nip, correction_id):
        employee = self._correction_employee(principal, nip)
        if not may_decide(self.db, principal.nip, employee,
                          self.calendar.today(employee["unit"])):
            raise forbidden("Only the employee's supervisor, or the official acting in the "
                            "supervisor's position today, decides their corrections.")
        decision = body["decision"]
        _, asked = find_correction(self.db[PEOPLE].find_one({"_id": nip}, {"corrections": 1}),
                                   correction_id)
        day = asked and datetime.fromisoformat(asked["date"]).date()
        note = (self.note_revision(employee, day, day, "correction", correction=correction_id)
                if asked and decision == "approved" else None)

        def change(person):
            index, entry = find_correction(person, correction_id)
            if entry is None:
                raise not_found("No such correction request.")
            if entry["status"] != "requested":
                if entry["status"] == decision and entry["decided_by"] == principal.nip:
                    return None, [], entry  # a repeat: answered, and the day applied again
                raise conflict(f"The correction is {entry['status']}: a decision is possible "
                               "only while it is requested.")
            decided = {**entry, "status": decision, "decided_by": principal.nip,
                       "decided_at": db_now(), "note": body["note"]}
            event = self.outbox.event("attendance.correction_decided", {
                "id": correction_id, "nip": nip, "unit": employee["unit"],
                "opd": employee.get("opd"), "date": datetime.fromisoformat(entry["date"]).date(),
                "decision": decision, "decided_by": principal.nip}, opd=employee.get("opd"))
            sets = {f"corrections.{index}.{k}": decided[k]
                    for k in ("status", "decided_by", "decided_at", "note")}
            return {"$set": sets}, [event], decided

        decided, _ = change_person(self.db, self.outbox, employee, change)
        if decided["status"] == "approved":
            self._apply_correction(employee, decided, note)
        return correction_out(nip, decided)

    def _apply_correction(self, employee, entry, note):
        nip = employee["_id"]
        day = datetime.fromisoformat(entry["date"]).date()
        person = person_of(self.db, nip)
        check_in, check_out = self._instants(employee, person, day,
                                             parse_clock(entry["check_in"]),
                                             parse_clock(entry["check_out"]))
        correction = {"id": entry["id"], "check_in": check_in, "check_out": check_out,
                      "approved_by": entry["decided_by"], "approved_at": entry["decided_at"]}
        self.db[DAYS].update_one(
            {"_id": day_id(nip, day)},
            {"$set": {"correction": correction},
             "$setOnInsert": {"nip": nip, "date": day.isoformat(), "unit": employee["unit"],
                              "opd": employee.get("opd")}}, upsert=True)
        self.revise_noted(employee, note or self.note_revision(
            employee, day, day, "correction", correction=entry["id"]))

    def apply_approved_correction(self, employee, correction_id, note):
        """Finish a noted correction (the closing tick, after a crash): apply it to its day if
        it is approved, and revise."""
        person = self.db[PEOPLE].find_one({"_id": employee["_id"]}, {"corrections": 1})
        _, entry = find_correction(person, correction_id)
        if entry is not None and entry["status"] == "approved":
            self._apply_correction(employee, entry, note)
        else:
            self.revise_noted(employee, note)

    # -- read --------------------------------------------------------------------------------

    @route("GET", f"{API}/corrections/pending", roles=DECIDERS, query=PageQuery(),
           response=PendingCorrectionsOut(), tags=TAGS,
           summary="The correction requests you may decide now, oldest first (paged: limit, "
                   "cursor)")
    def pending_corrections(self, request, principal, query):
        return pending_requests(self.db, self.calendar, own_nip(principal), "corrections",
                                correction_out, query)

    @route("GET", f"{API}/corrections/<nip>", roles=READERS, response=CorrectionList(),
           tags=TAGS, summary="One employee's correction requests, newest day first")
    def list_corrections(self, request, principal, nip):
        self._correction_employee(principal, nip)
        person = self.db[PEOPLE].find_one({"_id": nip}, {"corrections": 1}) or {}
        items = sorted(person.get("corrections", ()),
                       key=lambda e: (e["date"], e["requested_at"]), reverse=True)
        return {"nip": nip, "items": [correction_out(nip, e) for e in items]}


def fmt(clock):
    return None if clock is None else clock.strftime("%H:%M")


def parse_clock(text):
    return None if text is None else time.fromisoformat(text)
