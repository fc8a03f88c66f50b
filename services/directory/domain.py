"""The directory's rules, as pure functions over plain dicts (no pymongo, nameko or HTTP).

Records are the dicts ``csvio`` produces (units, positions, employees) plus acting
assignments. A ``State`` holds them by key; from it we derive what other modules see:

- a unit's parent and OPD come from its dotted code (``3510.01.02`` -> ``3510.01`` -> OPD
  ``3510.01``; the Pemda root ``3510`` has no OPD);
- a position's superior is explicit, else the head of its own unit (or, for a head, the
  head of the nearest ancestor unit that has one);
- an employee's supervisor is explicit, else the active holder of the nearest filled
  position up the superior chain (an acting Plt/Plh is not baked in: it is time-bound, and
  ``head_on`` answers it for a date);
- the *view* of a unit or employee is exactly what its ``*.upserted`` event carries. A write
  is a real change, with a new version and an event, only when the view or the stored record
  changes; the diff of the two decides it (``changed_fields``).
"""

from dataclasses import dataclass, field
from datetime import date

from pamong.privacy import is_masked_nik, mask_nik

# what the API shows to an authenticated reader outside the admin roles (names, positions,
# units of their own OPD: BRIEF, the role table)
PUBLIC_EMPLOYEE_FIELDS = ("nip", "name", "display_name", "unit", "opd", "position", "status")
ACTIVE = "active"

# the stored fields of each record (what an import row or an API body sets)
UNIT_FIELDS = ("code", "name", "kind", "timezone", "offices", "active")
POSITION_FIELDS = ("id", "title", "kind", "unit", "heads_unit", "may_sign", "superior", "active")
EMPLOYEE_FIELDS = ("nip", "kind", "name", "title_front", "title_back", "gender", "birth_date",
                   "unit", "position", "phone", "email", "status", "nik", "supervisor",
                   "effective_date", "status_date")
# set by the directory itself (a deactivation's date), never carried by a CSV row or a PUT body
KEPT_EMPLOYEE_FIELDS = ("status_date",)
ACTING_FIELDS = ("id", "kind", "position", "unit", "nip", "start", "end", "ended_on")
FIELDS = {"units": UNIT_FIELDS, "positions": POSITION_FIELDS, "employees": EMPLOYEE_FIELDS,
          "acting": ACTING_FIELDS}


def parent_code(code):
    """``3510.01.02`` -> ``3510.01``; the root (``3510``) has no parent."""
    return code.rsplit(".", 1)[0] if "." in code else None


def ancestors(code):
    """Nearest first: ``3510.01.02`` -> [``3510.01``, ``3510``]."""
    found = []
    while (code := parent_code(code)) is not None:
        found.append(code)
    return found


def opd_of(code):
    """The OPD a unit belongs to: its first two segments; None for the Pemda root."""
    parts = code.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else None


def display_name(record):
    """``dr.`` + ``Ayu Lestari`` + ``M.Kes.`` -> ``dr. Ayu Lestari, M.Kes.``"""
    name = record["name"]
    if record.get("title_front"):
        name = f"{record['title_front']} {name}"
    if record.get("title_back"):
        name = f"{name}, {record['title_back']}"
    return name


@dataclass
class State:
    """Units, positions and employees by key (the part of the directory a decision needs).

    A single change loads only some employees: it then passes ``holder_lists`` (the active
    holders of the positions its rules look at, ``store.load_holders``) and ``known`` (NIPs
    known to exist, for explicit supervisors); asking for any other position's holders is a
    bug and raises ``KeyError``. Without them (an import), both come from ``employees``."""

    units: dict = field(default_factory=dict)
    positions: dict = field(default_factory=dict)
    employees: dict = field(default_factory=dict)
    holder_lists: dict | None = None
    known: set | None = None
    settled: dict | None = None  # {nip: supervisor} still valid (nothing it follows changed)

    def __post_init__(self):
        self._heads = self._holders = None

    def changed(self):
        """Call after editing the dicts: drops the derived indexes."""
        self._heads = self._holders = None

    # -- derived indexes ----------------------------------------------------------------

    def head_position(self, unit_code):
        """The active position heading ``unit_code`` (lowest id if several), or None."""
        if self._heads is None:
            self._heads = {}
            for pos in sorted(self.positions.values(), key=lambda p: p["id"]):
                if pos["heads_unit"] and pos["active"]:
                    self._heads.setdefault(pos["unit"], pos["id"])
        return self._heads.get(unit_code)

    def holders(self, position_id):
        """NIPs of active employees holding ``position_id``, sorted."""
        if self.holder_lists is not None:
            return self.holder_lists[position_id]
        if self._holders is None:
            self._holders = {}
            for emp in sorted(self.employees.values(), key=lambda e: e["nip"]):
                if emp["status"] == ACTIVE and emp.get("position"):
                    self._holders.setdefault(emp["position"], []).append(emp["nip"])
        return self._holders.get(position_id, [])

    def exists(self, nip):
        return nip in self.employees or (self.known is not None and nip in self.known)

    # -- the rules ----------------------------------------------------------------------

    def superior_position(self, position_id):
        pos = self.positions.get(position_id)
        if pos is None:
            return None
        if pos.get("superior"):
            return pos["superior"]
        units = ancestors(pos["unit"])
        if not pos["heads_unit"]:
            units.insert(0, pos["unit"])
        for unit in units:
            head = self.head_position(unit)
            if head and head != position_id:
                return head
        return None

    def superior_chain(self, position_id):
        """Superior positions upward from ``position_id`` (cycles cut)."""
        chain, seen = [], {position_id}
        current = self.superior_position(position_id)
        while current and current not in seen:
            chain.append(current)
            seen.add(current)
            current = self.superior_position(current)
        return chain

    def supervisor_positions(self, employee):
        """The positions whose holders decide ``employee``'s derived supervisor, nearest
        first: the superior chain of its position, or (no position yet) the head of its own
        unit and upward."""
        if employee.get("position") in self.positions:
            return self.superior_chain(employee["position"])
        return self.unit_chain(employee["unit"])

    def unit_chain(self, unit_code):
        """The head of ``unit_code`` (or of the nearest unit above with one), then upward."""
        heads = (self.head_position(u) for u in [unit_code, *ancestors(unit_code)])
        first = next((h for h in heads if h), None)
        return [first, *self.superior_chain(first)] if first else []

    def derived_supervisor(self, nip):
        """The active holder of the nearest filled position above the employee's."""
        for position_id in self.supervisor_positions(self.employees[nip]):
            holders = [h for h in self.holders(position_id) if h != nip]
            if holders:
                return holders[0]
        return None

    def supervisor(self, nip):
        if self.settled and nip in self.settled:
            return self.settled[nip]
        explicit = self.employees[nip].get("supervisor")
        if explicit and self.exists(explicit):
            return explicit
        return self.derived_supervisor(nip)

    def supervisor_chain(self, nip):
        """Supervisors upward from ``nip``: [direct, their supervisor, ...] (cycles cut)."""
        chain, seen = [], {nip}
        current = self.supervisor(nip)
        while current and current not in seen:
            chain.append(current)
            seen.add(current)
            current = self.supervisor(current)
        return chain

    # -- views: what the events carry ---------------------------------------------------

    def unit_view(self, code):
        unit = self.units[code]
        return {"code": code, "name": unit["name"], "kind": unit["kind"],
                "parent": parent_code(code), "opd": opd_of(code),
                "timezone": unit["timezone"], "offices": [dict(o) for o in unit["offices"]],
                "active": unit["active"]}

    def employee_view(self, nip):
        emp = self.employees[nip]
        pos = self.positions.get(emp.get("position"))
        position = None if pos is None else {
            "id": pos["id"], "title": pos["title"], "kind": pos["kind"],
            "heads_unit": pos["heads_unit"], "may_sign": pos["may_sign"]}
        return {"nip": nip, "kind": emp["kind"], "name": emp["name"],
                "display_name": display_name(emp), "gender": emp["gender"],
                "unit": emp["unit"], "opd": opd_of(emp["unit"]), "position": position,
                "supervisor": self.supervisor(nip), "phone": emp.get("phone"),
                "email": emp.get("email"), "status": emp["status"],
                "nik_masked": mask_nik(emp["nik"]) if emp.get("nik") else None}


# -- who depends on whom: the slots a change re-derives -----------------------------------

UNIT_SLOT = "unit:"  # position ids never hold a colon


def slot_of(employee):
    """Where an employee is filed (``store`` keeps the NIPs of each slot): its position, or
    ``unit:<code>`` while it has none. Its derived supervisor depends on that slot's chain."""
    return employee.get("position") or f"{UNIT_SLOT}{employee['unit']}"


def slot_chain(state, slot):
    """The positions whose holders decide the supervisor of whoever is filed in ``slot``."""
    if slot.startswith(UNIT_SLOT):
        return state.unit_chain(slot[len(UNIT_SLOT):])
    return state.superior_chain(slot) if slot in state.positions else []


def slot_chains(state):
    """``{slot: chain}`` for every position and unit: the structure alone, no employee."""
    slots = [*state.positions, *(f"{UNIT_SLOT}{code}" for code in state.units)]
    return {slot: tuple(slot_chain(state, slot)) for slot in slots}


def dependent_slots(chains, positions):
    """The slots whose people may get another supervisor when the holders of ``positions``
    change (their chain passes through one of them)."""
    return {slot for slot, chain in chains.items() if not positions.isdisjoint(chain)}


def moved_slots(old_chains, new_chains):
    """The slots whose chain a structure change altered."""
    return {slot for slot in old_chains.keys() | new_chains.keys()
            if old_chains.get(slot) != new_chains.get(slot)}


# what an employee's derived supervisor follows from its own record
SUPERVISOR_INPUTS = ("unit", "position", "status", "supervisor")


def held_position(employee):
    """The position an employee holds as an active holder; None when inactive or without one
    (or when there is no employee)."""
    if employee is None or employee["status"] != ACTIVE:
        return None
    return employee.get("position") or None


# -- validation across records (csvio checks each row on its own) -------------------------

def unit_problems(unit, state):
    """Why ``unit`` cannot be stored given ``state``: a list of (field, reason)."""
    problems = []
    parent = parent_code(unit["code"])
    if parent is None:
        if unit["kind"] != "pemda":
            problems.append(("kind", "a unit without a parent is the Pemda (kind pemda)"))
    elif parent not in state.units:
        problems.append(("code", f"parent unit {parent} does not exist"))
    elif not state.units[parent]["active"] and unit["active"]:
        problems.append(("code", f"parent unit {parent} is not active"))
    if parent is not None and unit["kind"] == "pemda":
        problems.append(("kind", "only the root unit is the Pemda"))
    return problems


def deactivation_problems(state, code):
    """A unit is deactivated only when nothing active is left in it."""
    problems = []
    if any(u["active"] and parent_code(c) == code for c, u in state.units.items()):
        problems.append(("active", "the unit still has active sub-units"))
    if any(p["active"] and p["unit"] == code for p in state.positions.values()):
        problems.append(("active", "the unit still has active positions"))
    if any(e["status"] == ACTIVE and e["unit"] == code for e in state.employees.values()):
        problems.append(("active", "active employees still work in the unit"))
    return problems


def position_problems(position, state):
    problems = []
    before = state.positions.get(position["id"])
    if before and before["unit"] != position["unit"] and any(
            e["position"] == position["id"] and e["unit"] != position["unit"]
            for e in state.employees.values()):
        problems.append(("unit", "employees of another unit hold this position: move them "
                                 "first"))
    unit = state.units.get(position["unit"])
    if unit is None:
        problems.append(("unit", f"unit {position['unit']} does not exist"))
    elif position["active"] and not unit["active"]:
        problems.append(("unit", f"unit {position['unit']} is not active"))
    if position["heads_unit"] and position["kind"] != "struktural":
        problems.append(("kind", "a position that heads its unit is struktural"))
    if position["heads_unit"] and position["active"]:
        head = state.head_position(position["unit"])
        if head and head != position["id"]:
            problems.append(("heads_unit", f"unit {position['unit']} is already headed by "
                                           f"position {head}"))
    superior = position.get("superior")
    if superior:
        if superior == position["id"]:
            problems.append(("superior", "a position cannot be its own superior"))
        elif superior not in state.positions:
            problems.append(("superior", f"position {superior} does not exist"))
        else:
            chain = _explicit_chain(superior, state)
            if position["id"] in chain:
                problems.append(("superior", "the superior chain would form a cycle"))
    return problems


def _explicit_chain(position_id, state):
    chain, current = [], position_id
    while current and current not in chain:
        chain.append(current)
        current = state.positions.get(current, {}).get("superior")
    return chain


def employee_problems(employee, state):
    problems = []
    unit = state.units.get(employee["unit"])
    if unit is None:
        problems.append(("unit", f"unit {employee['unit']} does not exist"))
    elif employee["status"] == ACTIVE and not unit["active"]:
        problems.append(("unit", f"unit {employee['unit']} is not active"))
    position_id = employee.get("position")
    if position_id:
        pos = state.positions.get(position_id)
        if pos is None:
            problems.append(("position", f"position {position_id} does not exist"))
        elif pos["unit"] != employee["unit"]:
            problems.append(("position", f"position {position_id} belongs to unit {pos['unit']}, "
                                         f"not {employee['unit']}"))
        elif pos["kind"] == "struktural" and employee["status"] == ACTIVE:
            others = [n for n in state.holders(position_id) if n != employee["nip"]]
            if others:
                problems.append(("position", f"struktural position {position_id} is already "
                                             f"held by {others[0]}"))
    supervisor = employee.get("supervisor")
    if supervisor and not state.exists(supervisor):
        problems.append(("supervisor", f"no employee with NIP {supervisor}"))
    if supervisor == employee["nip"]:
        problems.append(("supervisor", "an employee cannot supervise themselves"))
    return problems


@dataclass
class Change:
    """One record to write: its new fields, version, view, events and audit entry."""

    collection: str
    key: str
    record: dict
    version: int
    old_version: int
    view: dict | None
    events: list  # [(event type, data)]
    action: str
    changes: dict
    opd: str | None
    before: dict | None = None  # the stored record (employees: ``store`` refiles by it)


def plan(old, new, meta, today):
    """The changes that turn ``old`` into ``new``, parents before children.

    ``meta`` is ``{collection: {key: (version, last published view)}}``. A record is written
    when its fields or its view differ; it gets events only when its view differs (or it
    moves or leaves). Records only in ``old`` are left alone: nothing is deleted.
    """
    changes = []
    for code in sorted(new.units, key=lambda c: (c.count("."), c)):
        changes += _unit_change(old.units.get(code), new.units[code], new.unit_view(code),
                                meta["units"].get(code, (0, None)))
    for position_id in sorted(new.positions):
        record, before = new.positions[position_id], old.positions.get(position_id)
        diff = changed_fields(before, record, POSITION_FIELDS)
        if diff or before is None:
            version = meta["positions"].get(position_id, (0, None))[0]
            changes.append(Change("positions", position_id, record, version + 1, version, None,
                                  [], "created" if before is None else "updated", diff,
                                  opd_of(record["unit"])))
    for nip in sorted(new.employees):
        changes += employee_change(old.employees.get(nip), new.employees[nip],
                                    new.employee_view(nip), meta["employees"].get(nip, (0, None)),
                                    today)
    return changes


def _unit_change(before, record, view, meta):
    version, published = meta
    diff = changed_fields(before, record, UNIT_FIELDS)
    if before is not None and not diff and view == published:
        return []
    version += 1
    events = []
    if view != published:
        events.append(("unit.upserted", {**view, "version": version}))
    deactivated = before is not None and before["active"] and not record["active"]
    if deactivated:
        events.append(("unit.deactivated", {"code": record["code"], "version": version}))
    action = "created" if before is None else "deactivated" if deactivated else "updated"
    if before is not None and not diff:
        diff = {"derived": [published, view]}
    return [Change("units", record["code"], record, version, version - 1, view, events, action,
                   diff, view["opd"])]


def employee_change(before, record, view, meta, today):
    """The Change (a one-item list, or none) that turns ``before`` into ``record`` whose
    view is ``view``; ``meta`` is (stored version, last published view)."""
    version, published = meta
    record = _dated(before, record, today)
    diff = changed_fields(before, record, EMPLOYEE_FIELDS)
    if before is not None and not diff and view == published:
        return []
    version += 1
    events, action = [], "created" if before is None else "updated"
    if is_transfer(before, record):
        action = "transferred"
        events.append(("employee.transferred", {
            "nip": record["nip"], "from_unit": before["unit"], "to_unit": record["unit"],
            "from_position": before.get("position"), "to_position": record.get("position"),
            "effective_date": record.get("effective_date") or today, "version": version}))
    if before is not None and before["status"] == ACTIVE and record["status"] != ACTIVE:
        action = "deactivated"
        events.append(("employee.deactivated", {
            "nip": record["nip"], "status": record["status"],
            "effective_date": record.get("status_date") or today, "version": version}))
    if view != published:  # last: the whole record follows a transfer or a deactivation
        events.append(("employee.upserted", {**view, "version": version}))
    if before is not None and not diff:
        diff = {"derived": [_derived(published), _derived(view)]}
        action = "derived"
    return [Change("employees", record["nip"], record, version, version - 1, view, events,
                   action, diff, view["opd"], before)]


def _dated(before, record, today):
    """A transfer starts a new TMT in the new unit, and a status change has its own date: a
    date kept from before (a CSV without TMT_UNOR, a PUT sending back what it read) belongs to
    the old unit or status, so the day of the change stands in for it."""
    if before is None:
        return record
    if is_transfer(before, record) and record.get("effective_date") == before.get(
            "effective_date"):
        record = {**record, "effective_date": today}
    if record["status"] != before["status"] and record.get("status_date") == before.get(
            "status_date"):
        record = {**record, "status_date": today}
    return record


def _derived(view):
    """The derived part of an employee view, for the audit trail of a derived change."""
    if view is None:
        return None
    return {"supervisor": view["supervisor"], "position": view["position"]}


def changed_fields(old, new, fields):
    """``{field: [old, new]}`` for the fields that differ. A new record has none: its audit
    entry says "created" and its first state is the record itself."""
    if old is None:
        return {}
    return {f: [old.get(f), new.get(f)] for f in fields if old.get(f) != new.get(f)}


def keep_stored(record, existing, absent):
    """A write replaces the record, except for fields it does not carry (``absent``) and a
    masked NIK (what a reader without ``admin`` sees), which keep the stored values: a clerk
    who saves what they read never erases the NIK they could not read. Returns
    (record, problem)."""
    if existing is None:
        if is_masked_nik(record.get("nik")):
            return {**record, "nik": None}, "a masked NIK can only stand for a stored one"
        return record, None
    merged = {**record, **{k: existing[k] for k in absent if k in existing}}
    if is_masked_nik(merged.get("nik")):
        stored = existing.get("nik")
        if not stored or mask_nik(stored) != merged["nik"]:
            return {**merged, "nik": stored}, "a masked NIK must match the stored one"
        merged["nik"] = stored
    return merged, None


def is_transfer(old, new):
    """Same NIP, new unit, both sides known: the directory publishes a transfer."""
    return old is not None and old["unit"] != new["unit"]


# -- acting officials (Plt/Plh) -----------------------------------------------------------

def last_day(acting):
    """The last day an assignment is in force: its end, or the day it was ended early."""
    return min(acting["end"], acting["ended_on"]) if acting.get("ended_on") else acting["end"]


def acting_covers(acting, day):
    """Whether an assignment is in force on ``day`` (ISO strings compare as dates)."""
    return acting["start"] <= day.isoformat() <= last_day(acting)


def overlapping(actings, position_id, start, end):
    """Assignments to the same position in force on some day of [start, end] (ISO strings);
    one ended early counts up to the day it ended."""
    return [a for a in actings if a["position"] == position_id
            and a["start"] <= end and start <= last_day(a)]


def head_on(state, actings, unit_code, day: date):
    """Who heads ``unit_code`` on ``day``: the head position, its holder, and any acting."""
    position_id = state.head_position(unit_code)
    if position_id is None:
        return {"unit": unit_code, "position": None, "head": None, "acting": None}
    holders = state.holders(position_id)
    acting = next((a for a in sorted(actings, key=lambda a: a["start"])
                   if a["position"] == position_id and acting_covers(a, day)), None)
    return {"unit": unit_code, "position": position_id, "head": holders[0] if holders else None,
            "acting": None if acting is None else {
                "id": acting["id"], "kind": acting["kind"], "nip": acting["nip"],
                "start": acting["start"], "end": acting["end"]}}


def acting_problems(assignment, state, actings):
    """Why an acting assignment (``kind``, ``position``, ``nip``, ``start``, ``end`` as dates)
    cannot be made: [(field, reason)]. ``actings``: the position's existing assignments."""
    problems = []
    position = state.positions[assignment["position"]]
    if not position["active"] or position["kind"] != "struktural":
        problems.append(("position", "only an active struktural position can have an acting "
                                     "official"))
    employee = state.employees.get(assignment["nip"])
    if employee is None or employee["status"] != ACTIVE:
        problems.append(("nip", "no active employee with that NIP"))
    if assignment["end"] < assignment["start"]:
        problems.append(("end", "before the start"))
    holders = state.holders(assignment["position"])
    if assignment["kind"] == "plt" and holders:
        problems.append(("kind", f"Plt is for a vacant position; {holders[0]} holds it (use Plh)"))
    if assignment["kind"] == "plh" and not holders:
        problems.append(("kind", "Plh stands in for an absent holder; the position is vacant "
                                 "(use Plt)"))
    if assignment["nip"] in holders:
        problems.append(("nip", "the holder cannot act in their own position"))
    clash = overlapping(actings, assignment["position"], assignment["start"].isoformat(),
                        assignment["end"].isoformat())
    if clash:
        problems.append(("start", f"overlaps assignment {clash[0]['id']} "
                                  f"({clash[0]['start']} to {clash[0]['end']})"))
    return problems


def acting_change(record, before, old_version):
    """The Change that stores an acting assignment and announces it (assigned or ended)."""
    version = old_version + 1
    ended = bool(record.get("ended_on"))
    event_type = "acting.ended" if ended else "acting.assigned"
    data = {k: record[k] for k in ("id", "kind", "position", "unit", "nip")}
    for name in ("start", "end", "ended_on") if ended else ("start", "end"):
        data[name] = date.fromisoformat(record[name])  # stored as ISO strings
    return Change("acting", record["id"], record, version, old_version, None,
                  [(event_type, {**data, "version": version})],
                  "ended" if ended else "assigned", changed_fields(before, record, ACTING_FIELDS),
                  opd_of(record["unit"]))
