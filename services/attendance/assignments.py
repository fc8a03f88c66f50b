"""Assignments (dinas luar / tugas luar): dates and a place where an employee may check in
instead of the office (``records.places_for`` adds an active assignment's place to the
geofence; the day close reports such a day as ``assignment``).

Made by an ``opd_admin`` (for the employees of its write scope) or a ``pimpinan`` (for the
employees of its unit's subtree, or whose supervisor chain reaches them), or from a signed
surat tugas (``letter.signed``). Each assignment is one entry in every employee's ``people``
document, appended by a compare-and-set on that document; its id is derived from what makes it
unique (the caller's ``Idempotency-Key``, or the letter's id), so a repeated request or a
redelivered or duplicated letter event finds the entry and writes nothing.
"""

import logging
import uuid
from datetime import date

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.contracts import letters  # noqa: F401 - registers letter.signed
from pamong.events.consumer import handles
from pamong.replica import EMPLOYEES
from pamong.storage import by_ids, db_now
from pamong.web import Problem, conflict, forbidden, not_found, route, unprocessable
from pamong.web.idempotency import idempotency_key
from services.attendance import domain
from services.attendance.access import API, STAFF_READERS, may_see_employee
from services.attendance.leave import change_person
from services.attendance.store import PEOPLE

log = logging.getLogger(__name__)

TAGS = ["assignments"]
MAKERS = ("opd_admin", "pimpinan")
MAX_EMPLOYEES = 200
MAX_DAYS = 366
CHAIN_HOPS = 12  # deeper than any Pemda's hierarchy: a cycle in bad data stops here
KEY_IDS = uuid.UUID("8a3c5e2d-41f7-4b9a-bc0e-2f6d9a7e1c53")  # assignment ids from a key


class PlaceSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=2, max=160))
    latitude = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    longitude = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    radius_m = fields.Integer(required=True, validate=validate.Range(min=20, max=5000))


class AssignmentBody(Schema):
    employees = fields.List(fields.String(validate=validate.Regexp(r"^\d{18}$")),
                            required=True,
                            validate=validate.Length(min=1, max=MAX_EMPLOYEES))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    place = fields.Nested(PlaceSchema, required=True)
    purpose = fields.String(required=True, validate=validate.Length(min=3, max=500))

    @validates_schema
    def dates(self, data, **kwargs):
        if data["end"] < data["start"]:
            raise ValidationError("before the start", "end")
        if (data["end"] - data["start"]).days >= MAX_DAYS:
            raise ValidationError(f"at most {MAX_DAYS} days", "end")


class AssignmentCancelBody(Schema):
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class AssignmentOut(Schema):
    id = fields.String(required=True)
    nip = fields.String(required=True)
    start = fields.String(required=True)
    end = fields.String(required=True)
    place = fields.Nested(PlaceSchema, required=True)
    purpose = fields.String(allow_none=True)
    source = fields.String(required=True, metadata={"description": "manual | letter"})
    letter = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"description": "active | cancelled"})
    created_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    cancelled_by = fields.String(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    cancel_note = fields.String(allow_none=True)


class CreatedOut(Schema):
    id = fields.String(required=True)
    created = fields.List(fields.String(), required=True, metadata={
        "description": "employees given the assignment by this request"})
    existing = fields.List(fields.String(), required=True, metadata={
        "description": "employees who had it already (a repeat)"})
    items = fields.List(fields.Nested(AssignmentOut), required=True)


class AssignmentList(Schema):
    nip = fields.String(required=True)
    items = fields.List(fields.Nested(AssignmentOut), required=True)


def assignment_out(nip, entry):
    return {**{k: entry.get(k) for k in AssignmentOut._declared_fields}, "nip": nip}


def find_assignment(person, assignment_id):
    for index, entry in enumerate((person or {}).get("assignments", ())):
        if entry["id"] == assignment_id:
            return index, entry
    return None, None


def masked_nip(nip):
    """A NIP for the logs: its first 14 digits are a birth date and an appointment month."""
    return "*" * 14 + str(nip)[-4:]


def append_assignment(db, outbox, employee, entry):
    """Add ``entry`` to the employee's assignments unless its id is there; ``(entry stored,
    written)``."""
    def change(person):
        _, first = find_assignment(person, entry["id"])
        if first is not None:
            return None, [], first
        return {"$push": {"assignments": entry}}, [], entry

    return change_person(db, outbox, employee, change)


class AssignmentEndpoints:
    """Mixed into the attendance service (needs ``db``, ``outbox``, ``calendar``,
    ``note_revision`` and ``revise_noted`` from the closing mixin)."""

    def _may_assign(self, principal, employee):
        if principal.has_any(("opd_admin",)) and principal.can_write(employee["unit"]):
            return True
        if not principal.has_any(("pimpinan",)):
            return False
        if principal.opd and domain.in_subtree(employee["unit"], principal.opd):
            return True
        return bool(principal.nip) and self._chain_reaches(employee, principal.nip)

    def _chain_reaches(self, employee, nip):
        """The supervisor chain above ``employee`` names ``nip`` (one ``_id`` read a level)."""
        seen, current = set(), employee.get("supervisor")
        for _ in range(CHAIN_HOPS):
            if not current or current in seen:
                return False
            if current == nip:
                return True
            seen.add(current)
            current = (self.db[EMPLOYEES].find_one({"_id": current}, {"supervisor": 1})
                       or {}).get("supervisor")
        return False

    def _assign(self, employee, entry):
        """Add ``entry`` to the employee's assignments; closed days it covers are revised
        (noted first, so also after a crash, and on a repeat of the request or event)."""
        note = self.note_revision(employee, date.fromisoformat(entry["start"]),
                                  date.fromisoformat(entry["end"]), "assignment")
        stored, written = append_assignment(self.db, self.outbox, employee, entry)
        self.revise_noted(employee, note)
        return stored, written

    @route("POST", f"{API}/assignments", roles=MAKERS, body=AssignmentBody(),
           response=CreatedOut(), status=201, tags=TAGS,
           problems={404: "An employee named is not in the directory, or not the caller's "
                          "to see (`employees` lists them)"},
           summary="Send employees on an assignment (dinas luar): a place and dates where "
                   "check-in is valid (optional Idempotency-Key)")
    def create_assignment(self, request, principal, body):
        key = idempotency_key(request)
        nips = list(dict.fromkeys(body["employees"]))
        found = by_ids(self.db[EMPLOYEES], nips)
        unseen = [n for n in nips if n not in found or not (
            may_see_employee(principal, found[n]) or self._may_assign(principal, found[n]))]
        if unseen:
            raise Problem(404, f"Not found (or not yours to see): {', '.join(unseen)}.",
                          extensions={"employees": unseen})
        refused = [n for n in nips if not self._may_assign(principal, found[n])]
        if refused:
            raise forbidden(f"You may not assign {', '.join(refused)}: an OPD admin assigns "
                            "the employees of its unit, a head those under them.")
        inactive = [n for n in nips if found[n].get("status") != "active"]
        if inactive:
            raise unprocessable({"employees": [f"not in active service: {', '.join(inactive)}"]})
        # one id for the request, the same for every employee: from the key, a repeat finds it
        assignment_id = ("m-" + uuid.uuid5(KEY_IDS, f"{principal.sub}:{key}").hex if key
                         else "m-" + uuid.uuid4().hex)
        entry = {"id": assignment_id, "start": body["start"].isoformat(),
                 "end": body["end"].isoformat(), "place": body["place"],
                 "purpose": body["purpose"], "source": "manual", "letter": None,
                 "status": "active", "created_by": principal.nip or principal.sub,
                 "created_at": db_now()}
        created, existing, items = [], [], []
        for nip in nips:
            stored, written = self._assign(found[nip], entry)
            (created if written else existing).append(nip)
            items.append(assignment_out(nip, stored))
        headers = {} if created else {"Idempotent-Replayed": "true"}
        return 201, {"id": assignment_id, "created": created, "existing": existing,
                     "items": items}, headers

    @route("GET", f"{API}/assignments/<nip>", roles=("pegawai", *STAFF_READERS),
           response=AssignmentList(), tags=TAGS,
           summary="One employee's assignments, newest first")
    def list_assignments(self, request, principal, nip):
        self._assignment_employee(principal, nip)
        person = self.db[PEOPLE].find_one({"_id": nip}, {"assignments": 1}) or {}
        items = sorted(person.get("assignments", ()),
                       key=lambda a: (a["start"], a["created_at"]), reverse=True)
        return {"nip": nip, "items": [assignment_out(nip, a) for a in items]}

    @route("POST", f"{API}/assignments/<nip>/<assignment_id>/cancel", roles=MAKERS,
           body=AssignmentCancelBody(), response=AssignmentOut(), tags=TAGS,
           summary="Cancel one employee's assignment")
    def cancel_assignment(self, request, principal, body, nip, assignment_id):
        employee = self._assignment_employee(principal, nip)
        if not self._may_assign(principal, employee):
            raise forbidden("An OPD admin cancels the assignments of its unit, a head those of "
                            "the people under them.")
        _, active = find_assignment(self.db[PEOPLE].find_one({"_id": nip}, {"assignments": 1}),
                                    assignment_id)
        note = active and self.note_revision(employee, date.fromisoformat(active["start"]),
                                             date.fromisoformat(active["end"]), "assignment")

        def change(person):
            index, entry = find_assignment(person, assignment_id)
            if entry is None:
                raise not_found("No such assignment.")
            if entry["status"] != "active":
                raise conflict(f"The assignment is {entry['status']}: only an active one can "
                               "be cancelled.")
            cancelled = {**entry, "status": "cancelled",
                         "cancelled_by": principal.nip or principal.sub,
                         "cancelled_at": db_now(), "cancel_note": body["note"]}
            sets = {f"assignments.{index}.{k}": cancelled[k]
                    for k in ("status", "cancelled_by", "cancelled_at", "cancel_note")}
            return {"$set": sets}, [], cancelled

        cancelled, _ = change_person(self.db, self.outbox, employee, change)
        self.revise_noted(employee, note)
        return assignment_out(nip, cancelled)

    def _assignment_employee(self, principal, nip):
        employee = self.db[EMPLOYEES].find_one({"_id": nip})
        if employee is None or not (may_see_employee(principal, employee)
                                    or self._may_assign(principal, employee)):
            raise not_found()
        return employee

    # -- surat tugas -------------------------------------------------------------------------

    @handles("letters", "letter.signed")
    def assignment_from_letter(self, event):
        """A signed surat tugas carrying an assignment sends its employees there. The
        assignment's id is the letter's, so a redelivered or duplicated event (another event
        id, same letter) finds it and adds nothing (the closed days it covers are revised
        again: nothing changes the second time, and a first try that died is finished)."""
        letter = event.data
        assignment = letter.get("assignment")
        if letter["kind"] != "surat_tugas" or not assignment:
            return
        if assignment["end"] < assignment["start"]:
            # nothing a retry could fix: the DLQ shows it to an operator with this reason
            raise ValueError(f"surat tugas {letter['id']}: assignment ends before it starts")
        entry = {"id": f"letter-{letter['id']}", "start": assignment["start"].isoformat(),
                 "end": assignment["end"].isoformat(), "place": assignment["place"],
                 "purpose": assignment.get("purpose"), "source": "letter",
                 "letter": letter["id"], "status": "active", "created_by": letter["signer"],
                 "created_at": db_now()}
        employees = by_ids(self.db[EMPLOYEES], assignment["employees"])
        for nip in dict.fromkeys(assignment["employees"]):
            employee = employees.get(nip)
            if employee is None:
                log.warning("surat tugas %s (%s): employee %s is not in the directory "
                            "replica; skipped", letter["id"], letter["number"], masked_nip(nip))
                continue
            self._assign(employee, entry)
