"""Leave (cuti, PP 11/2017): requested by the employee, decided by their supervisor or the
official acting in the supervisor's position on the day of the decision.

A request lives in the employee's ``people`` document (``leaves``). Every change is one
compare-and-set on that document (``version``) carrying its event (outbox), so two requests
racing for overlapping dates cannot both pass: the loser re-reads, sees the winner and is
refused with the winner's id; two decisions racing on one request give one decision and a 409.

Who decides: the ``supervisor`` the directory names for the employee *now* (the replica), or
a Plt/Plh whose acting assignment for the supervisor's position covers the day of the
decision (the unit's local date). Nobody else: not the employee themself, not ``admin`` or
``opd_admin`` (PP 11/2017 gives the decision to the *pejabat yang berwenang*; an admin who
could approve would be a way around the supervisor). A head without a supervisor in the
directory waits until the directory names one (``approver`` null).
"""

import uuid
from datetime import date, timedelta

import pymongo.errors
from marshmallow import Schema, fields, validate

from pamong.contracts.attendance import LeaveDecided, LeaveRequested
from pamong.events.outbox import OUTBOX
from pamong.replica import ACTING, EMPLOYEES
from pamong.storage import by_ids, db_now
from pamong.web import (
    PageQuery,
    conflict,
    decode_cursor,
    forbidden,
    not_found,
    page,
    route,
    unprocessable,
)
from pamong.web.idempotency import idempotency_key
from services.attendance import domain
from services.attendance.access import (
    API,
    DecidedFields,
    DecisionBody,
    active_self,
    may_see_employee,
    own_nip,
)
from services.attendance.records import rota_of
from services.attendance.store import PEOPLE

TAGS = ["leave"]
CONTRACTS = (LeaveRequested, LeaveDecided)  # registered on import
DECIDERS = ("pegawai", "pimpinan", "verifikator", "opd_admin", "admin")
READERS = (*DECIDERS, "service")
CAS_ATTEMPTS = 25  # a writer loses only to writes that succeed: enough for any burst
MAX_SPAN = timedelta(days=3 * 366)  # the longest leave (CLTN) is 3 years
KEY_IDS = uuid.UUID("0f1e6a4c-2b7d-4c3e-9a51-7d2e8b6c4a10")  # leave ids from a key


# -- schemas ---------------------------------------------------------------------------------

class LeaveBody(Schema):
    type = fields.String(required=True, validate=validate.OneOf(tuple(domain.LEAVE_TYPES)))
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=3, max=500))
    child_order = fields.Integer(load_default=None, allow_none=True,
                                 validate=validate.Range(min=1, max=20), metadata={
                                     "description": "maternity leave (CM): which child"})


class LeaveCancelBody(Schema):
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=500))


class BalanceQuery(Schema):
    year = fields.Integer(load_default=None, validate=validate.Range(min=2000, max=2100))


class LeaveOut(DecidedFields):
    id = fields.String(required=True)
    nip = fields.String(required=True)
    type = fields.String(required=True)
    type_name = fields.String(required=True)
    start = fields.String(required=True)
    end = fields.String(required=True)
    reason = fields.String(required=True)
    working_days = fields.Integer(required=True)
    child_order = fields.Integer(allow_none=True)
    status = fields.String(required=True, metadata={
        "description": "requested | approved | rejected | cancelled"})
    cancelled_by = fields.String(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)


class LeaveList(Schema):
    nip = fields.String(required=True)
    items = fields.List(fields.Nested(LeaveOut), required=True)


class PendingLeaveOut(Schema):
    items = fields.List(fields.Nested(LeaveOut), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


class YearBalance(Schema):
    year = fields.Integer(required=True)
    entitled = fields.Integer(required=True)
    carried = fields.Integer(required=True)
    available = fields.Integer(required=True)
    taken = fields.Integer(required=True, metadata={"description": "approved working days"})
    remaining = fields.Integer(required=True)


class BalanceOut(YearBalance):
    nip = fields.String(required=True)
    requested = fields.Integer(required=True, metadata={
        "description": "working days of requests still waiting for a decision"})
    ledger = fields.List(fields.Nested(YearBalance), required=True, metadata={
        "description": "every year from the first with data (opening balance 0)"})


# -- the people document ---------------------------------------------------------------------

def change_person(db, outbox, employee, change):
    """Compare-and-set on ``people[nip]``: ``change(person)`` returns ``(update, events,
    result)`` (update None: nothing to write) or raises Problem; a lost race re-reads and asks
    again, so the rules are checked on what won. Returns ``(result, written)``."""
    nip = employee["_id"]
    for _ in range(CAS_ATTEMPTS):
        person = db[PEOPLE].find_one({"_id": nip}, {OUTBOX: 0})
        if person is None:
            try:  # a bare document, then the same compare-and-set as always
                db[PEOPLE].insert_one({"_id": nip, "unit": employee["unit"], "version": 0})
            except pymongo.errors.DuplicateKeyError:
                pass  # somebody else created it: read theirs
            continue
        update, events, result = change(person)
        if update is None:
            return result, False
        update = {**update, "$inc": {**update.get("$inc", {}), "version": 1}}
        written = outbox.update(PEOPLE, {"_id": nip, "version": person.get("version", 0)},
                                update, events)
        if written.matched_count:
            return result, True
    raise conflict("The employee's record changed under many concurrent writes; try again.")


def as_dates(entry):
    return {**entry, "start": date.fromisoformat(entry["start"]),
            "end": date.fromisoformat(entry["end"])}


def leave_out(nip, entry):
    return {**{k: entry.get(k) for k in LeaveOut._declared_fields}, "nip": nip,
            "type_name": domain.LEAVE_TYPES[entry["type"]]["name"]}


def find_leave(person, leave_id):
    for index, entry in enumerate((person or {}).get("leaves", ())):
        if entry["id"] == leave_id:
            return index, entry
    return None, None


def covers(acting, day):
    """An acting assignment is in force on ``day`` (``ended_on``, when it ended early, is its
    last day)."""
    last = min(acting["end"], acting["ended_on"]) if acting.get("ended_on") else acting["end"]
    return acting["start"] <= day.isoformat() <= last


def acts_for(db, nip, position, day):
    """``nip`` acts (Plt/Plh) in ``position`` on ``day``."""
    return any(covers(a, day) for a in db[ACTING].find({"position": position, "nip": nip}))


def may_decide(db, nip, employee, day):
    """Whether ``nip`` decides ``employee``'s leave on ``day``: their supervisor, or who acts
    in the supervisor's position that day; never the employee themself."""
    supervisor = employee.get("supervisor")
    if not nip or not supervisor or nip == employee["_id"]:
        return False
    if nip == supervisor:
        return True
    boss = db[EMPLOYEES].find_one({"_id": supervisor}, {"position": 1}) or {}
    position = (boss.get("position") or {}).get("id")
    return bool(position) and acts_for(db, nip, position, day)


def requester_or_404(db, calendar, principal, nip):
    """The employee, when the caller may see their requests (leave, corrections) or decides
    them today (else 404: never reveal another OPD's people)."""
    employee = db[EMPLOYEES].find_one({"_id": nip})
    if employee is None or not (may_see_employee(principal, employee) or may_decide(
            db, principal.nip, employee, calendar.today(employee["unit"]))):
        raise not_found()
    return employee


def pending_requests(db, calendar, me, field, out, query):
    """One page of the ``people.<field>`` entries still ``requested`` that ``me`` decides
    today (as supervisor, or acting in the supervisor's position), oldest request first.

    A scan of the people with an open request (few at any time; no index on the local
    database); only the page goes back to the caller."""
    people = list(db[PEOPLE].find({f"{field}.status": "requested"}, {field: 1}))
    employees = by_ids(db[EMPLOYEES], [p["_id"] for p in people])
    acting = list(db[ACTING].find({"nip": me}))
    bosses = by_ids(db[EMPLOYEES], [e.get("supervisor") for e in employees.values()
                                    if e.get("supervisor")], {"position": 1}) if acting else {}

    def decides(employee):
        supervisor = employee.get("supervisor")
        if not supervisor or employee["_id"] == me:
            return False
        if supervisor == me:
            return True
        position = ((bosses.get(supervisor) or {}).get("position") or {}).get("id")
        today = calendar.today(employee["unit"])
        return any(a["position"] == position and covers(a, today) for a in acting)

    def order(item):
        return item["requested_at"], item["nip"], item["id"]

    items = sorted((out(person["_id"], entry) for person in people
                    if person["_id"] in employees and decides(employees[person["_id"]])
                    for entry in person.get(field, ()) if entry["status"] == "requested"),
                   key=order)
    if after := decode_cursor(query["cursor"]):
        items = [i for i in items if order(i) > (after["at"], after["nip"], after["id"])]
    return page(items, query["limit"],
                lambda i: {"at": i["requested_at"], "nip": i["nip"], "id": i["id"]})


def days_by_year(days):
    counts = {}
    for day in days:
        counts[str(day.year)] = counts.get(str(day.year), 0) + 1
    return counts


def leave_years(entry):
    return range(int(entry["start"][:4]), int(entry["end"][:4]) + 1)


def annual_ledger(leaves, upto, statuses=("approved",), first=None):
    """The CT ledger ``{year: balance}`` up to ``upto`` from the employee's ``leaves`` (stored
    form): taken = working days of CT leaves in ``statuses``; a year with an approved CB has no
    annual leave; it starts at the first year with a CT request (or ``first``, the year the
    Pemda started keeping leave here) with an opening balance of 0."""
    taken, long_leave, years = {}, set(), {upto}
    for entry in leaves:
        if entry["type"] == "CT":
            years.add(int(entry["start"][:4]))
            if entry["status"] in statuses:
                for year, count in (entry.get("days_by_year") or {}).items():
                    taken[int(year)] = taken.get(int(year), 0) + count
        elif entry["type"] == "CB" and entry["status"] == "approved":
            long_leave.update(leave_years(entry))
    if first is not None:
        years.add(first)
    return domain.annual_leave_ledger(taken, min(years), upto, 0, long_leave)


class LeaveEndpoints:
    """Mixed into the attendance service (needs ``db``, ``outbox``, ``config``, ``calendar``,
    ``note_revision`` and ``revise_noted`` from the closing mixin)."""

    # -- helpers -----------------------------------------------------------------------------

    def _working_days(self, unit, rota, start, end):
        entries = self.calendar.entries(unit)
        holidays = {}
        for year in range(start.year, end.year + 1):
            holidays.update(self.calendar.holidays(unit, year))
        return domain.working_days(start, end,
                                   lambda day: domain.effective_settings(entries, unit, day),
                                   holidays, rota)

    def _ledger_start(self):
        start = self.config.get("ATTENDANCE_LEAVE_LEDGER_START")
        return int(start) if start else None

    def _leave_employee(self, principal, nip):
        return requester_or_404(self.db, self.calendar, principal, nip)

    # -- request -----------------------------------------------------------------------------

    @route("POST", f"{API}/leave", roles=("pegawai",), body=LeaveBody(), response=LeaveOut(),
           status=201, tags=TAGS,
           summary="Request leave for yourself (optional Idempotency-Key: a repeat returns "
                   "the first result)")
    def request_leave(self, request, principal, body):
        key = idempotency_key(request)
        employee = active_self(self.db, principal)
        nip, unit = employee["_id"], employee["unit"]
        leave_id = (uuid.uuid5(KEY_IDS, f"{nip}:{key}").hex if key else uuid.uuid4().hex)
        start, end = body["start"], body["end"]
        today = self.calendar.today(unit)
        backdate = int(self.config.get("ATTENDANCE_LEAVE_BACKDATE_DAYS", 30))
        problems = []
        if start < today - timedelta(days=backdate):
            problems.append(("start", f"at most {backdate} days ago"))
        if end - start > MAX_SPAN:
            problems.append(("end", "at most 3 years after the start"))
        if body["type"] == "CT" and start.year != end.year:
            problems.append(("end", "annual leave is counted per year: split the request at "
                                    "31 December"))
        if problems:
            raise unprocessable(errors_of(problems))

        def change(person):
            _, first = find_leave(person, leave_id)
            if first is not None:  # a repeat (or its concurrent twin got there first)
                return None, [], (first, False)
            days = self._working_days(unit, rota_of(person), start, end)
            balance = None
            if body["type"] == "CT":
                ledger = annual_ledger(person.get("leaves", ()), start.year,
                                       domain.OPEN_LEAVE_STATUSES, self._ledger_start())
                balance = ledger[start.year]["remaining"]
            request_ = {**body, "id": leave_id}
            existing = [as_dates(e) for e in person.get("leaves", ())]
            found = domain.leave_problems(
                request_, days=len(days), balance=balance, existing=existing,
                service_years=(domain.service_years(nip, start)
                               if employee.get("kind", "pns") == "pns" else None))
            if found:
                raise unprocessable(errors_of(found), detail=detail_of(found))
            entry = {"id": leave_id, "type": body["type"], "start": start.isoformat(),
                     "end": end.isoformat(), "reason": body["reason"],
                     "working_days": len(days), "days_by_year": days_by_year(days),
                     "status": "requested", "approver": employee.get("supervisor"),
                     "requested_at": db_now(), "decided_by": None, "decided_at": None,
                     "note": None, "key": key}
            if body["child_order"] is not None:
                entry["child_order"] = body["child_order"]
            event = self.outbox.event("attendance.leave_requested", {
                "id": leave_id, "nip": nip, "unit": unit, "opd": employee.get("opd"),
                "type": body["type"], "start": start, "end": end,
                "working_days": len(days), "approver": entry["approver"]},
                opd=employee.get("opd"))
            return {"$push": {"leaves": entry}}, [event], (entry, True)

        (entry, new), _ = change_person(self.db, self.outbox, employee, change)
        headers = {} if new else {"Idempotent-Replayed": "true"}
        return 201, leave_out(nip, entry), headers

    # -- decide, cancel ----------------------------------------------------------------------

    @route("POST", f"{API}/leave/<nip>/<leave_id>/decision", roles=DECIDERS,
           body=DecisionBody(), response=LeaveOut(), tags=TAGS,
           summary="Approve or reject a leave request (the supervisor, or the Plt/Plh of the "
                   "supervisor's position on the day)")
    def decide_leave(self, request, principal, body, nip, leave_id):
        employee = self._leave_employee(principal, nip)
        today = self.calendar.today(employee["unit"])
        if not may_decide(self.db, principal.nip, employee, today):
            raise forbidden("Only the employee's supervisor, or the official acting in the "
                            "supervisor's position today, decides their leave.")
        decision = body["decision"]
        # approved leave can cover closed days (sick leave asked for afterwards): noted first
        _, asked = find_leave(self.db[PEOPLE].find_one({"_id": nip}, {"leaves": 1}), leave_id)
        note = (self.note_revision(employee, date.fromisoformat(asked["start"]),
                                   date.fromisoformat(asked["end"]), "leave")
                if asked and decision == "approved" else None)

        def change(person):
            index, entry = find_leave(person, leave_id)
            if entry is None:
                raise not_found("No such leave request.")
            if entry["status"] != "requested":
                raise conflict(f"The request is {entry['status']}: a decision is possible "
                               "only while it is requested.")
            if decision == "approved" and entry["type"] == "CT":
                others = [e for e in person.get("leaves", ()) if e["id"] != leave_id]
                year = int(entry["start"][:4])
                ledger = annual_ledger(others, year, first=self._ledger_start())
                if entry["working_days"] > ledger[year]["remaining"]:
                    raise conflict(f"{entry['working_days']} working days asked, "
                                   f"{ledger[year]['remaining']} left in {year}.")
            at = db_now()
            decided = {**entry, "status": decision, "decided_by": principal.nip,
                       "decided_at": at, "note": body["note"]}
            event = self.outbox.event("attendance.leave_decided", {
                **decided_event(employee, entry), "decision": decision,
                "decided_by": principal.nip, "note": body["note"]}, opd=employee.get("opd"))
            sets = {f"leaves.{index}.{k}": decided[k]
                    for k in ("status", "decided_by", "decided_at", "note")}
            return {"$set": sets}, [event], decided

        decided, _ = change_person(self.db, self.outbox, employee, change)
        self.revise_noted(employee, note)
        return leave_out(nip, decided)

    @route("POST", f"{API}/leave/<nip>/<leave_id>/cancel", roles=("pegawai",),
           body=LeaveCancelBody(), response=LeaveOut(), tags=TAGS,
           summary="Cancel your own leave while requested, or approved and not started")
    def cancel_leave(self, request, principal, body, nip, leave_id):
        if own_nip(principal) != nip:
            self._leave_employee(principal, nip)  # 404 for who may not see it
            raise forbidden("Only the employee cancels their own leave.")
        employee = self._leave_employee(principal, nip)
        today = self.calendar.today(employee["unit"])

        def change(person):
            index, entry = find_leave(person, leave_id)
            if entry is None:
                raise not_found("No such leave request.")
            started = entry["start"] <= today.isoformat()
            if entry["status"] not in ("requested", "approved") or (
                    entry["status"] == "approved" and started):
                raise conflict(f"The request is {entry['status']}"
                               f"{' and started' if entry['status'] == 'approved' else ''}: "
                               "it can be cancelled while requested, or approved and not "
                               "yet started.")
            at = db_now()
            cancelled = {**entry, "status": "cancelled", "cancelled_by": nip,
                         "cancelled_at": at, "cancel_note": body["note"]}
            event = self.outbox.event("attendance.leave_decided", {
                **decided_event(employee, entry), "decision": "cancelled", "decided_by": nip,
                "note": body["note"]}, opd=employee.get("opd"))
            sets = {f"leaves.{index}.{k}": cancelled[k]
                    for k in ("status", "cancelled_by", "cancelled_at", "cancel_note")}
            return {"$set": sets}, [event], cancelled

        cancelled, _ = change_person(self.db, self.outbox, employee, change)
        return leave_out(nip, cancelled)

    # -- read --------------------------------------------------------------------------------

    @route("GET", f"{API}/leave/pending", roles=DECIDERS, query=PageQuery(),
           response=PendingLeaveOut(), tags=TAGS,
           summary="The leave requests you may decide now, oldest first (paged: limit, "
                   "cursor)")
    def pending_leave(self, request, principal, query):
        return pending_requests(self.db, self.calendar, own_nip(principal), "leaves",
                                leave_out, query)

    @route("GET", f"{API}/leave/<nip>", roles=READERS,
           response=LeaveList(), tags=TAGS,
           summary="One employee's leave requests, newest first")
    def list_leave(self, request, principal, nip):
        self._leave_employee(principal, nip)
        person = self.db[PEOPLE].find_one({"_id": nip}, {"leaves": 1}) or {}
        items = sorted(person.get("leaves", ()), key=lambda e: (e["start"], e["requested_at"]),
                       reverse=True)
        return {"nip": nip, "items": [leave_out(nip, e) for e in items]}

    @route("GET", f"{API}/leave/<nip>/balance", roles=READERS,
           query=BalanceQuery(), response=BalanceOut(), tags=TAGS,
           summary="Annual leave (CT) balance with carry-over: 12 a year, at most 6 carried, "
                   "18 at most")
    def leave_balance(self, request, principal, query, nip):
        employee = self._leave_employee(principal, nip)
        year = query["year"] or self.calendar.today(employee["unit"]).year
        leaves = (self.db[PEOPLE].find_one({"_id": nip}, {"leaves": 1}) or {}).get("leaves", [])
        ledger = annual_ledger(leaves, year, first=self._ledger_start())
        requested = sum((e.get("days_by_year") or {}).get(str(year), 0) for e in leaves
                        if e["type"] == "CT" and e["status"] == "requested")
        rows = [{"year": y, **{k: v for k, v in b.items()}} for y, b in sorted(ledger.items())]
        return {"nip": nip, **rows[-1], "requested": requested, "ledger": rows}


def decided_event(employee, entry):
    return {"id": entry["id"], "nip": employee["_id"], "unit": employee["unit"],
            "opd": employee.get("opd"), "type": entry["type"],
            "start": date.fromisoformat(entry["start"]),
            "end": date.fromisoformat(entry["end"]), "working_days": entry["working_days"]}


def errors_of(problems):
    errors = {}
    for field, reason in problems:
        errors.setdefault(field, []).append(reason)
    return errors


def detail_of(problems):
    return "The leave request cannot be made: " + "; ".join(
        f"{field}: {reason}" for field, reason in problems) + "."

