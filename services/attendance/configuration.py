"""Configuration of attendance: per-unit effective-dated settings, regional holidays and cuti
bersama, shift rotas, and system outage windows.

Every write is one compare-and-set on a small document (``unit_config`` per unit, the one
``calendar`` document, the employee's ``people`` document) or one conditional insert/update
(``outages``), retried on a lost race after re-checking the rules, so two admins writing at
once never lose a change and never store two entries for one unit and date. Nothing here
rewrites a closed day: a change applies from today at the earliest and after the last day
closed anywhere in the unit's subtree (``close_cursor``); corrections are the way to change
a closed day.
"""

import uuid
from datetime import date, datetime, time, timedelta

import pymongo.errors
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pamong.auth.principal import subtree_filter
from pamong.calendar import national_holidays
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import db_now, to_ms
from pamong.web import conflict, forbidden, not_found, route, unprocessable
from services.attendance import domain
from services.attendance.access import (
    API,
    STAFF_READERS,
    UNKNOWN_UNIT,
    employee_or_404,
    may_see_unit,
)
from services.attendance.settings import SETTINGS, SettingsSchema, entry_from_doc
from services.attendance.store import (
    CALENDAR,
    CONFIG,
    CURSORS,
    OUTAGES,
    PEOPLE,
    config_entries,
    regional_days,
)

WRITERS = ("admin", "opd_admin")
CAS_ATTEMPTS = 25  # a writer loses only to writes that succeed: enough for any admin burst
MAX_OUTAGE = timedelta(days=14)  # longer is a typo, or a case for corrections
MAX_LIST_RANGE = timedelta(days=366)
SHIFT_CODE = validate.Regexp(r"^[A-Za-z0-9]{1,8}$")
ID_NAMESPACE = uuid.UUID("5b0c1a52-6a77-4f0e-9d43-3c2f5a0a7e11")  # outage ids from a key


# -- schemas ---------------------------------------------------------------------------------

class SettingsQuery(Schema):
    date = fields.Date(load_default=None, metadata={"description": "default: today (unit time)"})


class Source(fields.Field):
    """``"default"`` or ``{"unit", "effective_from"}``."""


class SettingsOut(Schema):
    unit = fields.String(required=True)
    date = fields.String(required=True)
    settings = fields.Dict(required=True, metadata={"description": "every setting in force"})
    sources = fields.Dict(keys=fields.String(), values=Source(), required=True, metadata={
        "description": "per setting: \"default\" or {unit, effective_from} that set it"})


class ConfigBody(Schema):
    effective_from = fields.Date(required=True, metadata={
        "description": "first day it applies (unit time): today at the earliest"})
    settings = fields.Dict(required=True, metadata={
        "description": "the settings this entry sets (SettingsSchema); the rest is inherited"})
    replace = fields.Boolean(load_default=False, metadata={
        "description": "replace an entry of the same unit and date (else 409)"})


class EntryOut(Schema):
    effective_from = fields.String(required=True)
    settings = fields.Dict(required=True)
    by = fields.String(required=True)
    at = fields.DateTime(required=True)


class ConfigOut(Schema):
    unit = fields.String(required=True)
    entries = fields.List(fields.Nested(EntryOut), required=True)
    version = fields.Integer(required=True)


class HolidayQuery(Schema):
    year = fields.Integer(load_default=None, validate=validate.Range(min=2000, max=2100))
    unit = fields.String(load_default=None)


class HolidayBody(Schema):
    date = fields.Date(required=True)
    name = fields.String(required=True, validate=validate.Length(min=3, max=160))
    kind = fields.String(required=True, validate=validate.OneOf(("regional", "cuti_bersama")))
    unit = fields.String(load_default=None, allow_none=True, metadata={
        "description": "the unit whose subtree it applies to; null: the whole Pemda"})


class HolidayOut(Schema):
    date = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={
        "description": "national | regional | cuti_bersama"})
    unit = fields.String(allow_none=True)
    by = fields.String(allow_none=True)
    at = fields.DateTime(allow_none=True)


class HolidaysOut(Schema):
    year = fields.Integer(required=True)
    unit = fields.String(allow_none=True)
    items = fields.List(fields.Nested(HolidayOut), required=True)


class UnitQuery(Schema):
    unit = fields.String(load_default=None)


class Pattern(Schema):
    anchor = fields.Date(required=True, metadata={"description": "day 0 of the cycle"})
    cycle = fields.List(fields.String(allow_none=True, validate=SHIFT_CODE), required=True,
                        validate=validate.Length(min=1, max=366), metadata={
                            "description": "shift code per day, null: day off"})


class RotaBody(Schema):
    pattern = fields.Nested(Pattern, load_default=None, allow_none=True)
    roster = fields.Dict(keys=fields.Date(), values=fields.String(allow_none=True,
                                                                   validate=SHIFT_CODE),
                         load_default=dict, validate=validate.Length(max=400), metadata={
                             "description": "explicit days (win over the pattern)"})

    @validates_schema
    def something(self, data, **kwargs):
        if data.get("pattern") is None and not data.get("roster"):
            raise ValidationError("a pattern, a roster or both (DELETE removes a rota)",
                                  "pattern")


class RotaOut(Schema):
    nip = fields.String(required=True)
    unit = fields.String(required=True)
    rota = fields.Dict(allow_none=True)
    version = fields.Integer(required=True)


class OutageBody(Schema):
    unit = fields.String(required=True)
    start = fields.AwareDateTime(required=True, format="iso")
    end = fields.AwareDateTime(required=True, format="iso")
    reason = fields.String(required=True, validate=validate.Length(min=5, max=500))

    @validates_schema
    def window(self, data, **kwargs):
        if "start" in data and "end" in data:
            if data["end"] <= data["start"]:
                raise ValidationError("after the start", "end")
            if data["end"] - data["start"] > MAX_OUTAGE:
                raise ValidationError(f"an outage lasts at most {MAX_OUTAGE.days} days", "end")


class OutageCancelBody(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=5, max=500))


class OutageQuery(Schema):
    unit = fields.String(required=True)
    from_ = fields.Date(data_key="from", load_default=None)
    to = fields.Date(load_default=None)


class OutageOut(Schema):
    id = fields.String(required=True)
    unit = fields.String(required=True)
    start = fields.DateTime(required=True)
    end = fields.DateTime(required=True)
    reason = fields.String(required=True)
    declared_by = fields.String(required=True)
    declared_at = fields.DateTime(required=True)
    cancelled = fields.Boolean(required=True)
    cancelled_by = fields.String(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)
    cancel_reason = fields.String(allow_none=True)


class OutagesOut(Schema):
    items = fields.List(fields.Nested(OutageOut), required=True)


# -- helpers -----------------------------------------------------------------------------------

def _date_arg(value, name):
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise unprocessable({name: ["a date as YYYY-MM-DD"]}) from None


def closed_in(db, root):
    """``[(unit, last closed day)]`` of the units in ``root``'s subtree (None: every unit):
    each unit closes its own days (its own time zone), and a change to ``root`` reaches them
    all. ``close_cursor`` has one small document per unit, so reading it whole is cheap."""
    found = []
    for doc in db[CURSORS].find({}, {"last_closed": 1}):
        if root is None or domain.in_subtree(doc["_id"], root):
            found.append((doc["_id"], date.fromisoformat(doc["last_closed"])))
    return found


def cas(collection, doc_id, change, new_doc=dict):
    """Compare-and-set on ``collection[doc_id]`` (``version``): ``change(doc)`` returns the
    ``$set`` and ``$push`` to apply, or None for nothing to do; raises Problem to refuse. A
    lost race re-reads and asks ``change`` again (the rules are checked on what won). Returns
    ``(doc before, applied)``."""
    for _ in range(CAS_ATTEMPTS):
        doc = collection.find_one({"_id": doc_id})
        before = doc or {"_id": doc_id, "version": 0, **new_doc()}
        update = change(before)
        if update is None:
            return before, False
        sets, pushes = update
        if doc is None:
            try:
                collection.insert_one({**before, **sets, **{k: [v] for k, v in pushes.items()},
                                       "version": 1})
            except pymongo.errors.DuplicateKeyError:
                continue  # somebody else created it: re-read
            return before, True
        write = {"$set": sets, "$inc": {"version": 1}}
        if pushes:  # the audit trail
            write["$push"] = pushes
        result = collection.update_one({"_id": doc_id, "version": before["version"]}, write)
        if result.matched_count:
            return before, True
    raise conflict("The document changed under many concurrent writes; try again.")


def entry_out(entry):
    return {k: entry[k] for k in ("effective_from", "settings", "by", "at")}


def config_out(unit, doc):
    entries = sorted((doc or {}).get("entries", ()), key=lambda e: e["effective_from"])
    return {"unit": unit, "entries": [entry_out(e) for e in entries],
            "version": (doc or {}).get("version", 0)}


def outage_out(doc):
    return {"id": doc["_id"], **{k: doc.get(k) for k in (
        "unit", "start", "end", "reason", "declared_by", "declared_at", "cancelled",
        "cancelled_by", "cancelled_at", "cancel_reason")}}


def rota_gaps(rota, unit, entries, today):
    """``[(where, missing codes, day, known codes)]``: the shift codes of a stored rota that
    the unit's ``shifts`` lack. A pattern repeats both ways, so it must hold on its anchor,
    today and every later configuration start; a roster day (from today on) on its own
    date. (Days before today are closed, or are about to be, with what was in force.)"""
    gaps = []
    pattern = rota.get("pattern")
    if pattern:
        codes = {c for c in pattern["cycle"] if c}
        anchor = date.fromisoformat(pattern["anchor"])
        starts = {e["effective_from"] for e in entries if e["effective_from"] > today}
        for day in sorted({anchor, today, *starts}):
            known = domain.effective_settings(entries, unit, day)["shifts"]
            if codes - set(known):
                gaps.append(("pattern.cycle", codes - set(known), day, known))
                break
    for day_text, code in sorted((rota.get("roster") or {}).items()):
        day = date.fromisoformat(day_text)
        if code and day >= today:
            known = domain.effective_settings(entries, unit, day)["shifts"]
            if code not in known:
                gaps.append((f"roster.{day_text}", {code}, day, known))
    return gaps


class ConfigEndpoints:
    """Mixed into the attendance service (needs ``db``, ``calendar``)."""

    # -- access --------------------------------------------------------------------------------

    def _unit_doc(self, principal, code, write=False, own_unit=False):
        """The replica's unit, when the caller may read it (404 otherwise, also for a unit
        the replica does not know); ``write``: 403 when readable but not writable.
        ``own_unit``: an employee reads their own unit too."""
        doc = self.db[UNITS].find_one({"_id": code}) if code else None
        if doc is None:
            raise not_found(f"Unit {code} is not in this Pemda's directory, or you may not "
                            "see it.")
        readable = may_see_unit(principal, code) or (own_unit and self._own_unit(principal)
                                                      == code)
        if not readable:
            raise not_found(f"Unit {code} is not in this Pemda's directory, or you may not "
                            "see it.")
        if write and not (principal.has_any(WRITERS) and principal.can_write(code)):
            raise forbidden(f"You may read unit {code} but change only units in your own "
                            "unit's subtree.")
        return doc

    def _own_unit(self, principal):
        if not principal.nip or not principal.has_any(("pegawai",)):
            return None
        employee = self.db[EMPLOYEES].find_one({"_id": principal.nip}, {"unit": 1})
        return (employee or {}).get("unit")

    # -- settings and configuration --------------------------------------------------------

    @route("GET", f"{API}/units/<unit>/settings", roles=("pegawai", *STAFF_READERS),
           query=SettingsQuery(), response=SettingsOut(), tags=["configuration"],
           summary="The settings in force for a unit on a date, and where each comes from")
    def get_settings(self, request, principal, query, unit):
        self._unit_doc(principal, unit, own_unit=True)
        day = query["date"] or self.calendar.today(unit)
        # read fresh (not the check-in cache): an admin checks what they just wrote
        settings, sources = domain.resolve_settings(config_entries(self.db, unit), unit, day)
        return {"unit": unit, "date": day.isoformat(), "settings": SETTINGS.dump(settings),
                "sources": {name: ({"unit": sources[name][0],
                                    "effective_from": sources[name][1].isoformat()}
                                   if name in sources else "default")
                            for name in domain.DEFAULT_SETTINGS}}

    @route("GET", f"{API}/units/<unit>/config", roles=STAFF_READERS, response=ConfigOut(),
           tags=["configuration"], summary="A unit's own effective-dated entries")
    def get_config(self, request, principal, unit):
        self._unit_doc(principal, unit)
        return config_out(unit, self.db[CONFIG].find_one({"_id": unit}))

    @route("POST", f"{API}/units/<unit>/config", roles=WRITERS, body=ConfigBody(),
           response=ConfigOut(), status=201, replay_status=200, tags=["configuration"],
           summary="Add (or with replace: true, replace) an entry from a date")
    def post_config(self, request, principal, body, unit):
        self._unit_doc(principal, unit, write=True)
        start = body["effective_from"]
        try:
            settings = SettingsSchema().load(body["settings"])
        except ValidationError as exc:
            raise unprocessable({"settings": exc.messages}) from None
        if not settings:
            raise unprocessable({"settings": ["name at least one setting"]})
        self._check_start(unit, start)
        problems = domain.config_entry_problems({"effective_from": start, "settings": settings})
        if problems:
            raise unprocessable(_grouped(problems, "settings"))
        stored = SETTINGS.dump(settings)
        at = db_now()
        entry = {"effective_from": start.isoformat(), "settings": stored,
                 "by": principal.sub, "at": at}
        outcome = {}

        def change(doc):
            entries = [e for e in doc.get("entries", ()) if e["effective_from"] != entry[
                "effective_from"]]
            same = [e for e in doc.get("entries", ()) if e["effective_from"] == entry[
                "effective_from"]]
            if same and same[0]["settings"] == stored:
                outcome["replayed"] = True  # a retry of the same request
                return None
            if same and not body["replace"]:
                raise conflict(f"Unit {unit} already has an entry from {start.isoformat()} "
                               f"(by {same[0]['by']}): send replace: true to replace it, or "
                               "choose another date.")
            outcome["replaced"] = bool(same)
            entries = sorted([*entries, entry], key=lambda e: e["effective_from"])
            if "shifts" in stored or (same and "shifts" in same[0]["settings"]):
                self._refuse_broken_rotas(unit, entries)
            audit = {"action": "replaced" if same else "added",
                     "effective_from": entry["effective_from"], "by": principal.sub, "at": at,
                     "settings": stored, "previous": same[0]["settings"] if same else None}
            return {"entries": entries}, {"audit": audit}

        cas(self.db[CONFIG], unit, change, lambda: {"entries": []})
        self.calendar.clear()
        out = config_out(unit, self.db[CONFIG].find_one({"_id": unit}))
        if outcome.get("replayed"):
            return 200, out, {"Idempotent-Replayed": "true"}
        return (200 if outcome.get("replaced") else 201), out

    @route("DELETE", f"{API}/units/<unit>/config/<effective_from>", roles=WRITERS,
           response=ConfigOut(), tags=["configuration"],
           problems={422: "`effective_from` is not a date YYYY-MM-DD",
                     409: "The entry is already in force"},
           summary="Remove an entry that has not started yet")
    def delete_config(self, request, principal, unit, effective_from):
        self._unit_doc(principal, unit, write=True)
        start = _date_arg(effective_from, "effective_from")
        if start <= self.calendar.today(unit):
            raise conflict(f"The entry from {start.isoformat()} is already in force: add a "
                           "new entry from a later date instead (a started entry has judged "
                           "records).")
        self._check_start(unit, start)
        at, effective_from = db_now(), start.isoformat()  # "2027-1-5" names "2027-01-05"

        def change(doc):
            same = [e for e in doc.get("entries", ()) if e["effective_from"] == effective_from]
            if not same:
                raise not_found(f"Unit {unit} has no entry from {effective_from}.")
            entries = [e for e in doc["entries"] if e["effective_from"] != effective_from]
            if "shifts" in same[0]["settings"]:
                self._refuse_broken_rotas(unit, entries)
            return {"entries": entries}, {"audit": {
                "action": "deleted", "effective_from": effective_from, "by": principal.sub,
                "at": at, "settings": None, "previous": same[0]["settings"]}}

        cas(self.db[CONFIG], unit, change, lambda: {"entries": []})
        self.calendar.clear()
        return config_out(unit, self.db[CONFIG].find_one({"_id": unit}))

    def _refuse_broken_rotas(self, unit, entries):
        """A change of ``shifts`` must leave every rota in the subtree with shifts that exist
        from today on (a check-in looks its shift up by code). Rotas are few and the change
        rare: a scan of ``people`` is fine here."""
        mine = [entry_from_doc(unit, e) for e in entries]
        today = self.calendar.today(unit)
        broken = []
        for person in self.db[PEOPLE].find({**subtree_filter("unit", unit),
                                            "rota": {"$exists": True}}, {"rota": 1, "unit": 1}):
            chain = [e for e in config_entries(self.db, person["unit"]) if e["unit"] != unit]
            for _, missing, day, _ in rota_gaps(person["rota"], person["unit"], chain + mine,
                                                today):
                broken.append(f"{person['_id']} ({', '.join(sorted(missing))} on "
                              f"{day.isoformat()})")
        if broken:
            raise conflict("This change removes shifts that rotas still use: "
                           f"{'; '.join(sorted(set(broken)))}. Change those rotas first.")

    def _check_start(self, unit, start):
        """A change applies from today (unit time) at the earliest and after every closed
        day of the unit's subtree."""
        today = self.calendar.today(unit)
        if start < today:
            raise unprocessable({"effective_from": [
                f"in the past: a change applies from today ({today.isoformat()}) at the "
                "earliest, so days already worked keep the rules they were worked under"]})
        closed = closed_in(self.db, unit)
        if closed:
            last_unit, last = max(closed, key=lambda c: c[1])
            problems = domain.config_entry_problems({"effective_from": start, "settings": {}},
                                                    last_closed=last)
            if problems:
                raise unprocessable({"effective_from": [
                    f"{reason} (closed in unit {last_unit}; corrections change a closed day)"
                    for _, reason in problems]})

    # -- holidays -------------------------------------------------------------------------------

    @route("GET", f"{API}/holidays", roles=("pegawai", *STAFF_READERS), query=HolidayQuery(),
           response=HolidaysOut(), tags=["configuration"], problems=UNKNOWN_UNIT,
           summary="National holidays, regional days and cuti bersama of a year (of a unit)")
    def get_holidays(self, request, principal, query):
        unit = query["unit"]
        if unit is not None and self.db[UNITS].find_one({"_id": unit}, {"_id": 1}) is None:
            raise not_found(f"Unit {unit} is not in this Pemda's directory.")
        year = query["year"] or domain.local_date(db_now(), self.calendar.timezone(
            unit) if unit else "Asia/Jakarta").year
        regional = [d for d in regional_days(self.db) if d["date"].year == year]
        national = national_holidays(year)
        items = []
        if unit is None:  # every day, each with the unit it applies to (the admin's view)
            items += [{"date": d, "name": name, "kind": "national", "unit": None}
                      for d, name in national.items()]
            items += regional
        else:
            found = domain.holiday_calendar(unit, national, regional)
            for day, info in found.items():
                source = next((d for d in regional if d["date"] == day and d["kind"] == info[
                    "kind"] and d["name"] == info["name"]), {})
                items.append({**source, "date": day, **info, "unit": source.get("unit")})
        items.sort(key=lambda d: (d["date"], d["kind"] != "national", d.get("unit") or ""))
        return {"year": year, "unit": unit,
                "items": [{**d, "date": d["date"].isoformat()} for d in items]}

    @route("POST", f"{API}/holidays", roles=("admin",), body=HolidayBody(),
           response=HolidayOut(), status=201, replay_status=200, tags=["configuration"],
           problems={409: "A national holiday, another day already set for the unit, or a "
                          "day the unit has closed"},
           summary="Add a regional holiday or cuti bersama (the whole Pemda or a subtree)")
    def post_holiday(self, request, principal, body):
        unit, day = body["unit"], body["date"]
        if unit is not None and self.db[UNITS].find_one({"_id": unit}, {"_id": 1}) is None:
            raise unprocessable({"unit": [f"{unit} is not in this Pemda's directory"]})
        national = national_holidays(day.year)
        if day in national:
            raise conflict(f"{day.isoformat()} is already a national holiday "
                           f"({national[day]}).")
        self._refuse_closed_day(unit, day, "add")
        item = {"date": day.isoformat(), "name": body["name"], "kind": body["kind"],
                "unit": unit, "by": principal.sub, "at": db_now()}
        outcome = {}

        def change(doc):
            same = [d for d in doc.get("days", ()) if d["date"] == item["date"]
                    and d.get("unit") == unit]
            if same and (same[0]["name"], same[0]["kind"]) == (item["name"], item["kind"]):
                outcome["first"] = same[0]  # a retry of the same request
                return None
            if same:
                raise conflict(f"{item['date']} is already {same[0]['kind']} "
                               f"\"{same[0]['name']}\" for {unit or 'the whole Pemda'}: "
                               "delete it first to change it.")
            return ({"days": sorted([*doc.get("days", ()), item], key=lambda d: d["date"])},
                    {"audit": {"action": "added", **item}})

        cas(self.db[CALENDAR], "regional", change, lambda: {"days": []})
        self.calendar.clear()
        if "first" in outcome:
            return 200, outcome["first"], {"Idempotent-Replayed": "true"}
        return 201, item

    @route("DELETE", f"{API}/holidays/<day>", roles=("admin",), query=UnitQuery(),
           status=204, tags=["configuration"],
           summary="Remove a regional holiday or cuti bersama (?unit= for a subtree's)")
    def delete_holiday(self, request, principal, query, day):
        unit, when = query["unit"], _date_arg(day, "date")
        self._refuse_closed_day(unit, when, "remove")
        at = db_now()

        def change(doc):
            same = [d for d in doc.get("days", ()) if d["date"] == when.isoformat()
                    and d.get("unit") == unit]
            if not same:
                raise not_found(f"No regional day on {when.isoformat()} for "
                                f"{unit or 'the whole Pemda'} (national holidays cannot be "
                                "removed).")
            return ({"days": [d for d in doc["days"] if d is not same[0]]},
                    {"audit": {**same[0], "action": "removed", "by": principal.sub,
                               "at": at, "added_by": same[0].get("by")}})

        cas(self.db[CALENDAR], "regional", change, lambda: {"days": []})
        self.calendar.clear()
        return 204, None

    def _refuse_closed_day(self, unit, day, what):
        closed = [(code, last) for code, last in closed_in(self.db, unit) if day <= last]
        if closed:
            code, last = closed[0]
            raise conflict(f"Cannot {what} {day.isoformat()}: unit {code} has closed its days "
                           f"up to {last.isoformat()}, and a closed day is final. Its "
                           "employees' corrections are the way to change it.")

    # -- shift rota -----------------------------------------------------------------------------

    @route("GET", f"{API}/people/<nip>/rota", roles=("pegawai", *STAFF_READERS),
           response=RotaOut(), tags=["configuration"], summary="An employee's shift rota")
    def get_rota(self, request, principal, nip):
        employee = employee_or_404(self.db, principal, nip)
        person = self.db[PEOPLE].find_one({"_id": nip}, {"rota": 1, "unit": 1, "version": 1})
        return {"nip": nip, "unit": employee["unit"], "rota": (person or {}).get("rota"),
                "version": (person or {}).get("version", 0)}

    @route("PUT", f"{API}/people/<nip>/rota", roles=WRITERS, body=RotaBody(),
           response=RotaOut(), tags=["configuration"],
           summary="Set an employee's shift rota (a cyclic pattern and/or explicit days)")
    def put_rota(self, request, principal, body, nip):
        employee = self._writable_employee(principal, nip)
        unit = employee["unit"]
        pattern = body["pattern"] and {"anchor": body["pattern"]["anchor"].isoformat(),
                                       "cycle": body["pattern"]["cycle"]}
        roster = {d.isoformat(): code for d, code in sorted(body["roster"].items())}
        rota = {"pattern": pattern, "roster": roster}
        self._check_codes(unit, rota)
        last = max((c[1] for c in closed_in(self.db, unit)), default=None)
        at = db_now()

        def change(person):
            old = (person.get("rota") or {}).get("roster") or {}
            kept = dict(roster)
            errors = []
            # a closed day's planned shift is final: carry it over, refuse changing it
            for day, code in old.items():
                if last is not None and date.fromisoformat(day) <= last:
                    if day in roster and roster[day] != code:
                        errors.append(f"{day} is closed (planned {code}); ask for a correction")
                    kept[day] = code
            for day in roster:
                if last is not None and date.fromisoformat(day) <= last and day not in old:
                    errors.append(f"{day} is closed: its shift cannot be planned now")
            if errors:
                raise unprocessable({"roster": errors})
            new = {"pattern": pattern, "roster": dict(sorted(kept.items())),
                   "by": principal.sub, "at": at}
            if {k: v for k, v in (person.get("rota") or {}).items() if k not in ("by", "at")} \
                    == {"pattern": pattern, "roster": new["roster"]}:
                return None  # the same rota again
            return {"rota": new, "unit": person.get("unit", unit)}, {}

        cas(self.db[PEOPLE], nip, change, lambda: {"unit": unit})
        self.calendar.clear()
        person = self.db[PEOPLE].find_one({"_id": nip}, {"rota": 1, "version": 1})
        return {"nip": nip, "unit": unit, "rota": person.get("rota"),
                "version": person["version"]}

    @route("DELETE", f"{API}/people/<nip>/rota", roles=WRITERS, status=204,
           tags=["configuration"],
           summary="Remove an employee's rota (back to the office week)")
    def delete_rota(self, request, principal, nip):
        self._writable_employee(principal, nip)
        for _ in range(CAS_ATTEMPTS):
            person = self.db[PEOPLE].find_one({"_id": nip}, {"rota": 1, "version": 1})
            if not person or not person.get("rota"):
                return 204, None
            if self.db[PEOPLE].update_one(
                    {"_id": nip, "version": person["version"]},
                    {"$unset": {"rota": ""}, "$inc": {"version": 1}}).matched_count:
                self.calendar.clear()
                return 204, None
        raise conflict("The employee's record changed under many concurrent writes; "
                       "try again.")

    def _writable_employee(self, principal, nip):
        employee = employee_or_404(self.db, principal, nip)
        if not (principal.has_any(WRITERS) and principal.can_write(employee["unit"])):
            raise forbidden(f"You may read {nip}'s records but change only those of your own "
                            "unit's subtree.")
        return employee

    def _check_codes(self, unit, rota):
        """Every shift code must be one of the unit's ``shifts`` (see ``rota_gaps``)."""
        errors = {}
        for where, missing, day, known in rota_gaps(rota, unit, config_entries(self.db, unit),
                                                    self.calendar.today(unit)):
            errors.setdefault(where, []).append(
                f"unknown shift {', '.join(sorted(missing))} on {day.isoformat()}: unit {unit} "
                f"has {', '.join(sorted(known)) or 'no shifts'} (set them in its "
                "configuration first)")
        if errors:
            raise unprocessable(errors)

    # -- outages --------------------------------------------------------------------------------

    @route("POST", f"{API}/outages", roles=WRITERS, body=OutageBody(), response=OutageOut(),
           status=201, replay_status=200, tags=["configuration"],
           problems={**UNKNOWN_UNIT, 409: "The window starts in a day the unit has closed"},
           summary="Declare a system outage window for a unit's subtree (nobody is late)")
    def post_outage(self, request, principal, body):
        unit = body["unit"]
        self._unit_doc(principal, unit, write=True)
        start, end = to_ms(body["start"]), to_ms(body["end"])
        self._refuse_closed_window(unit, start, "declare")
        key = request.headers.get("Idempotency-Key")
        outage_id = (uuid.uuid5(ID_NAMESPACE, f"{principal.sub}:{key}") if key
                     else uuid.uuid4()).hex
        doc = {"_id": outage_id, "unit": unit, "start": start, "end": end,
               "reason": body["reason"], "declared_by": principal.sub, "declared_at": db_now(),
               "cancelled": False}
        try:
            self.db[OUTAGES].insert_one(doc)
        except pymongo.errors.DuplicateKeyError:
            first = self.db[OUTAGES].find_one({"_id": outage_id})
            return 200, outage_out(first), {"Idempotent-Replayed": "true"}
        self.calendar.clear()
        return 201, outage_out(doc)

    @route("GET", f"{API}/outages", roles=STAFF_READERS, query=OutageQuery(),
           response=OutagesOut(), tags=["configuration"], problems=UNKNOWN_UNIT,
           summary="Outage windows that apply to a unit or were declared in its subtree")
    def get_outages(self, request, principal, query):
        unit = query["unit"]
        self._unit_doc(principal, unit)
        today = self.calendar.today(unit)
        first = query["from_"] or today - timedelta(days=31)
        last = query["to"] or today + timedelta(days=31)
        if last < first or last - first > MAX_LIST_RANGE:
            raise unprocessable({"to": ["on or after from, at most 366 days later"]})
        tz = domain.zone(self.calendar.timezone(unit))
        lo = to_ms(datetime.combine(first, time(0), tzinfo=tz))
        hi = lo + timedelta(days=(last - first).days + 1)
        # outages are few (a handful a year): a scan, filtered by overlap
        docs = self.db[OUTAGES].find({"start": {"$lt": hi}, "end": {"$gte": lo}})
        items = [d for d in docs if domain.in_subtree(unit, d["unit"])
                 or domain.in_subtree(d["unit"], unit)]
        items.sort(key=lambda d: (d["start"], d["_id"]))
        return {"items": [outage_out(d) for d in items]}

    @route("POST", f"{API}/outages/<outage_id>/cancel", roles=WRITERS, body=OutageCancelBody(),
           response=OutageOut(), tags=["configuration"],
           summary="Cancel an outage window (declared by mistake), with a reason")
    def cancel_outage(self, request, principal, body, outage_id):
        doc = self.db[OUTAGES].find_one({"_id": outage_id})
        if doc is None:
            raise not_found()
        self._unit_doc(principal, doc["unit"], write=True)
        if doc.get("cancelled"):
            return 200, outage_out(doc), {"Idempotent-Replayed": "true"}
        self._refuse_closed_window(doc["unit"], doc["start"], "cancel")
        changed = self.db[OUTAGES].update_one(
            {"_id": outage_id, "cancelled": False},
            {"$set": {"cancelled": True, "cancelled_by": principal.sub,
                      "cancelled_at": db_now(), "cancel_reason": body["reason"]}})
        self.calendar.clear()
        doc = self.db[OUTAGES].find_one({"_id": outage_id})
        if not changed.modified_count:
            return 200, outage_out(doc), {"Idempotent-Replayed": "true"}
        return outage_out(doc)

    def _refuse_closed_window(self, unit, start, what):
        """An outage starting on or before a closed day (in that unit's own zone) would
        change results already published."""
        for code, last in closed_in(self.db, unit):
            first_day = domain.local_date(start, self.calendar.timezone(code))
            if first_day <= last:
                raise conflict(f"Cannot {what} this outage: unit {code} has closed its days "
                               f"up to {last.isoformat()} and the window starts on "
                               f"{first_day.isoformat()}. A closed day is final: its "
                               "employees' corrections are the way to change it.")


def _grouped(problems, prefix):
    errors = {}
    for name, reason in problems:
        key = name if name == "effective_from" else f"{prefix}.{name}"
        errors.setdefault(key, []).append(reason)
    return errors

