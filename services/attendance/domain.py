"""Attendance's rules, as pure functions over plain dicts and small dataclasses (no pymongo,
nameko or HTTP).

- **Hours.** A working day is ``Hours(start, end, break_minutes)`` in the unit's local time;
  ``end <= start`` means it ends the next day (a night shift; ``end == start`` is a 24-hour
  shift). A week is ``{ISO weekday 1..7: Hours | None}`` (None: day off). The day a shift
  belongs to is the day it starts.
- **Configuration** is effective-dated and inherited down the unit tree: entries
  ``{"unit", "effective_from", "settings": {...}}``; for each field the nearest unit up the
  tree that sets it wins, and within that unit the latest entry in force on the day
  (``effective_settings``). A change therefore never rewrites a day before its date.
- **Judging a day** (``day_status``) happens in the unit's time zone (WIB ``Asia/Jakarta``,
  WITA ``Asia/Makassar``, WIT ``Asia/Jayapura``) from server times; minutes are counted on the
  clock face (seconds dropped), so a check-in at 07:30:59 for 07:30 is on time and a
  check-out at 15:59:30 for 16:00 is one minute early.
- **Percentages** are ``Decimal`` (the deductions add up in recaps without float drift).

Sources: Perpres 21/2023 (working hours), PP 11/2017 (leave), PP 94/2021 (discipline), and the
common regional deduction table (TL/PSW brackets); see ``../shared/DOMAIN.md``.
"""

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from math import asin, cos, radians, sin, sqrt
from zoneinfo import ZoneInfo

# -- time zones ----------------------------------------------------------------------------

ZONES = {"WIB": "Asia/Jakarta", "WITA": "Asia/Makassar", "WIT": "Asia/Jayapura"}


def zone(name):
    """``WIB``/``WITA``/``WIT`` or an IANA name (what the directory stores) -> ZoneInfo."""
    return ZoneInfo(ZONES.get(name, name))


def local_date(at, tz):
    """The unit's calendar day of an instant (a check-in at 23:30 UTC is already tomorrow in
    Jakarta)."""
    return at.astimezone(zone(tz)).date()


def _at(day, clock, tz):
    return datetime.combine(day, clock, tzinfo=zone(tz))


def _clock_minute(at, tz):
    """The instant as the unit's clock shows it: local time, seconds dropped."""
    return at.astimezone(zone(tz)).replace(second=0, microsecond=0)


def _minutes_of(clock):
    return clock.hour * 60 + clock.minute


def _plus(clock, minutes):
    total = (_minutes_of(clock) + minutes) % 1440
    return time(total // 60, total % 60)


# -- schedules -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Hours:
    """One day's planned hours. ``shift`` is the rota code for a shift worker's day, None
    for the office week (a shift is worked on holidays; an office day is not)."""

    start: time
    end: time
    break_minutes: int = 0
    shift: str | None = None

    @property
    def crosses_midnight(self):
        return self.end <= self.start

    @property
    def span_minutes(self):
        span = _minutes_of(self.end) - _minutes_of(self.start)
        return span if span > 0 else span + 1440

    @property
    def work_minutes(self):
        return self.span_minutes - self.break_minutes

    def bounds(self, day, tz):
        """(start, end) as aware datetimes of ``day`` in ``tz``; the end may be the next
        day."""
        end_day = day + timedelta(days=1) if self.crosses_midnight else day
        return _at(day, self.start, tz), _at(end_day, self.end, tz)

    def to_dict(self):
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M"),
                "break_minutes": self.break_minutes, "shift": self.shift}

    @classmethod
    def from_dict(cls, data):
        return cls(time.fromisoformat(data["start"]), time.fromisoformat(data["end"]),
                   data.get("break_minutes", 0), data.get("shift"))


def even_week(start, weekly_minutes, workdays=5, break_minutes=60, friday_break=90):
    """A week of ``workdays`` days (Monday first) sharing ``weekly_minutes`` of work evenly,
    each starting at ``start``. Breaks come on top of the work, so a day ends at start + its
    share + its break: the hours excluding breaks add up to the weekly total whatever the
    Friday break is. Raises ValueError when the minutes do not divide evenly (give such a
    week day by day instead)."""
    share, rest = divmod(weekly_minutes, workdays)
    if rest or not 1 <= workdays <= 7:
        raise ValueError(f"{weekly_minutes} minutes do not spread evenly over {workdays} days")
    week = {}
    for weekday in range(1, 8):
        if weekday > workdays:
            week[weekday] = None
            continue
        pause = friday_break if weekday == 5 else break_minutes
        week[weekday] = Hours(start, _plus(start, share + pause), pause)
    return week


# Perpres 21/2023: 37.5 h = 2,250 min a week excluding breaks, from 07:30, break 60 (Friday 90).
# 5 days: 450 min (7 h 30) a day -> Mon-Thu 07:30 + 7:30 + 1:00 = 16:00, Fri + 1:30 = 16:30;
#   4 x 450 + 450 = 2,250.
OFFICE_WEEK = even_week(time(7, 30), 2250)
# 6 days (public-service units): 375 min (6 h 15) a day -> Mon-Thu and Sat 07:30-14:45,
#   Fri 07:30-15:15; 6 x 375 = 2,250.
SIX_DAY_WEEK = even_week(time(7, 30), 2250, workdays=6)
# Ramadan: 32.5 h = 1,950 min from 08:00, Friday break 60. DOMAIN is silent on the other days'
# break: 30 min, as in the MenPAN-RB Ramadan circulars. 5 days: 390 min (6 h 30) a day ->
#   Mon-Thu 08:00 + 6:30 + 0:30 = 15:00, Fri + 1:00 = 15:30.
RAMADAN_WEEK = even_week(time(8, 0), 1950, break_minutes=30, friday_break=60)
# 6 days: 325 min (5 h 25) -> Mon-Thu and Sat 08:00-13:55, Fri 08:00-14:25.
RAMADAN_SIX_DAY_WEEK = even_week(time(8, 0), 1950, workdays=6, break_minutes=30,
                                 friday_break=60)


def week_minutes(week):
    """Working minutes in a week, breaks excluded."""
    return sum(h.work_minutes for h in week.values() if h is not None)


def workdays_per_week(week):
    return sum(1 for h in week.values() if h is not None)


def ramadan_profile(settings, day):
    """The Ramadan profile ``{"start", "end", "week"?}`` covering ``day``, or None. Without
    its own ``week`` a profile uses RAMADAN_WEEK, or RAMADAN_SIX_DAY_WEEK for a unit whose
    normal week has six days."""
    for profile in settings.get("ramadan") or ():
        if profile["start"] <= day <= profile["end"]:
            return profile
    return None


def shift_code(rota, day):
    """The shift code an employee works on ``day``: an explicit roster entry
    (``rota["roster"][day]``, None for a day off) wins over the cyclic pattern
    (``rota["pattern"] = {"anchor": date, "cycle": ["P", "S", "M", None, ...]}``, day 0 of the
    cycle on the anchor, repeating both ways). None: no shift that day."""
    roster = rota.get("roster") or {}
    if day in roster:
        return roster[day]
    pattern = rota.get("pattern")
    if pattern and pattern["cycle"]:
        cycle = pattern["cycle"]
        return cycle[(day - pattern["anchor"]).days % len(cycle)]
    return None


def hours_on(settings, day, rota=None):
    """The planned Hours of ``day`` for an employee, or None for a day off.

    A shift worker (``rota`` given) works the shifts of the unit's rota
    (``settings["shifts"][code]``) and nothing else; an office worker follows the Ramadan
    profile covering the day, else the weekly schedule. Holidays are not looked at here
    (``day_status`` does: they stop the office week, not a shift). A rota code the unit has
    no shift for (the employee moved to a unit without it) falls back to the office week, so
    the day is still judged and one stale rota never stops a unit's close."""
    if rota is not None:
        code = shift_code(rota, day)
        if code is None:
            return None
        if code in settings["shifts"]:
            return replace(settings["shifts"][code], shift=code)
    profile = ramadan_profile(settings, day)
    if profile is not None:
        week = profile.get("week") or (
            RAMADAN_SIX_DAY_WEEK if workdays_per_week(settings["week"]) >= 6 else RAMADAN_WEEK)
        return week.get(day.isoweekday())
    return settings["week"].get(day.isoweekday())


def day_window(day, hours, tz, settings):
    """(opens, closes): the instants between which a record counts for ``day``. An office day
    opens at ``checkin_from`` (05:00 by default; earlier only if the day starts earlier) and
    closes at midnight (later only if the day ends later); a shift opens
    ``shift_lead_minutes`` before its start and closes as long after its end."""
    start, end = hours.bounds(day, tz)
    if hours.shift is not None:
        lead = timedelta(minutes=settings["shift_lead_minutes"])
        return start - lead, end + lead
    return (min(_at(day, settings["checkin_from"], tz), start),
            max(_at(day + timedelta(days=1), time(0), tz), end))


def day_records(records, opens, closes):
    """(check_in, check_out) of a day from records ``{"kind": "in"|"out", "at": datetime}``:
    the first check-in and the last check-out (not before that check-in) inside the window;
    None where there is none."""
    inside = sorted((r for r in records if opens <= r["at"] < closes), key=lambda r: r["at"])
    check_in = next((r["at"] for r in inside if r["kind"] == "in"), None)
    outs = [r["at"] for r in inside
            if r["kind"] == "out" and (check_in is None or r["at"] >= check_in)]
    return check_in, outs[-1] if outs else None


def day_closes_at(day, tz, settings, hours=()):
    """When ``day`` can be closed in the unit: its local midnight, or later when one of its
    ``hours`` (the shifts that day) is still open then."""
    closes = _at(day + timedelta(days=1), time(0), tz)
    for planned in hours:
        if planned is not None:
            closes = max(closes, day_window(day, planned, tz, settings)[1])
    return closes


# -- brackets ------------------------------------------------------------------------------

# (highest minutes of the bracket, deduction percent); the last bracket is open (None) and also
# stands for a missing record. DOMAIN's common default, the same for TL and PSW.
DEFAULT_BRACKETS = ((30, Decimal("0.5")), (60, Decimal("1")), (90, Decimal("1.5")),
                    (None, Decimal("2")))
ABSENT_PERCENT = Decimal("4")


def bracket(minutes, table=DEFAULT_BRACKETS, prefix="TL", grace=0):
    """``(code, percent)`` for ``minutes`` late (``prefix="TL"``) or early (``"PSW"``);
    None when on time. ``minutes=None`` is a missing record: the last bracket (TL4/PSW4).

    0 minutes is on time; 1-30 is bracket 1, 31-60 bracket 2, 61-90 bracket 3, 91 and more
    bracket 4 (DOMAIN's table). Grace only forgives: lateness of at most ``grace`` minutes
    is on time, and beyond it the *whole* lateness counts from the scheduled start (grace 5:
    5 min on time, 6 min TL1, 31 min TL2). It never moves the bracket edges, which the
    regional regulation sets in minutes after the start."""
    if minutes is not None and minutes <= max(grace, 0):
        return None
    level = len(table)
    if minutes is not None:
        level = next(i for i, (upto, _) in enumerate(table, 1) if upto is None or minutes <= upto)
    return f"{prefix}{level}", table[level - 1][1]


def bracket_problems(table):
    """Why a configured bracket table is unusable: [(field, reason)]."""
    if not table:
        return [("brackets", "at least one bracket")]
    problems = []
    bounds = [upto for upto, _ in table]
    if bounds[-1] is not None:
        problems.append(("brackets", "the last bracket is open-ended (no upper bound)"))
    closed = bounds[:-1]
    if any(b is None or b < 1 for b in closed):
        problems.append(("brackets", "every bracket but the last has an upper bound >= 1"))
    elif any(a >= b for a, b in zip(closed, closed[1:], strict=False)):
        problems.append(("brackets", "upper bounds increase"))
    percents = [p for _, p in table]
    if any(p < 0 for p in percents) or any(a > b for a, b in zip(percents, percents[1:],
                                                                    strict=False)):
        problems.append(("brackets", "percentages are >= 0 and never decrease"))
    return problems


# -- configuration -------------------------------------------------------------------------

DEFAULT_SETTINGS = {
    "week": OFFICE_WEEK,
    "ramadan": [],                  # [{"start": date, "end": date, "week"?: week}]
    "shifts": {},                   # the unit's rota: {code: Hours}
    "checkin_from": time(5, 0),
    "shift_lead_minutes": 120,
    "grace_minutes": 0,
    "tl_brackets": DEFAULT_BRACKETS,
    "psw_brackets": DEFAULT_BRACKETS,
    "absent_percent": ABSENT_PERCENT,
    "max_clock_drift_seconds": 300,
    "max_speed_kmh": 250,
    "morning_ends": time(12, 0),
}


def parent_code(code):
    """``3510.03.01`` -> ``3510.03``; the root has no parent."""
    return code.rsplit(".", 1)[0] if "." in code else None


def unit_chain(code):
    """The unit and its ancestors, nearest first."""
    chain = [code]
    while (code := parent_code(code)) is not None:
        chain.append(code)
    return chain


def in_subtree(code, root):
    return code == root or code.startswith(root + ".")


def resolve_settings(entries, unit, day, defaults=DEFAULT_SETTINGS):
    """``(settings, sources)`` in force for ``unit`` on ``day``: field by field, the nearest
    unit up the tree whose entries set the field, and of that unit's entries in force
    (``effective_from <= day``) the latest; two entries of one unit and date: the later in
    the list. ``sources`` is ``{field: (unit, effective_from)}`` for what did not come from
    ``defaults``."""
    rank = {code: i for i, code in enumerate(unit_chain(unit))}
    best = {}
    for index, entry in enumerate(entries):
        if entry["unit"] not in rank or entry["effective_from"] > day:
            continue
        key = (rank[entry["unit"]], -entry["effective_from"].toordinal(), -index)
        for name, value in entry["settings"].items():
            if name not in best or key < best[name][0]:
                best[name] = (key, value, (entry["unit"], entry["effective_from"]))
    settings = {**defaults, **{name: value for name, (_, value, _) in best.items()}}
    return settings, {name: source for name, (_, _, source) in best.items()}


def effective_settings(entries, unit, day, defaults=DEFAULT_SETTINGS):
    """The settings in force for ``unit`` on ``day`` (see ``resolve_settings``)."""
    return resolve_settings(entries, unit, day, defaults)[0]


def config_entry_problems(entry, last_closed=None, known=DEFAULT_SETTINGS):
    """Why a configuration entry cannot be stored: [(field, reason)]. A closed day is final,
    so a change starts after the last closed day at the earliest."""
    problems = []
    if last_closed is not None and entry["effective_from"] <= last_closed:
        problems.append(("effective_from", f"{last_closed.isoformat()} is closed: a change "
                         f"applies from {(last_closed + timedelta(days=1)).isoformat()}"))
    settings = entry.get("settings") or {}
    problems += [(name, "unknown setting") for name in sorted(set(settings) - set(known))]
    for name in ("tl_brackets", "psw_brackets"):
        if name in settings:
            problems += [(name, reason) for _, reason in bracket_problems(settings[name])]
    if "grace_minutes" in settings and not 0 <= settings["grace_minutes"] <= 60:
        problems.append(("grace_minutes", "between 0 and 60"))
    return problems


# -- holidays and working days -------------------------------------------------------------

def holiday_calendar(unit, national, extra=()):
    """``{date: {"name", "kind"}}`` of the days off for ``unit``.

    ``national``: the national holidays, a ``{date: name}`` mapping or a set of dates (the
    ``holidays`` package's ``holidays.Indonesia(years=...)`` is such a mapping; the service
    passes it in, so these rules do not depend on it). ``extra``: regional days and cuti
    bersama set by ``admin``, ``{"date", "name", "kind": "regional"|"cuti_bersama",
    "unit": code | None}``, applying to that unit's subtree (None: the whole Pemda)."""
    calendar = {}
    named = national if hasattr(national, "items") else dict.fromkeys(national, "")
    for day, name in named.items():
        calendar[day] = {"name": name or "Hari libur nasional", "kind": "national"}
    for item in extra:
        if item.get("unit") is None or in_subtree(unit, item["unit"]):
            calendar.setdefault(item["date"], {"name": item["name"], "kind": item["kind"]})
    return calendar


def working_days(start, end, settings, holidays=None, rota=None):
    """The working days of [start, end] (leave counts them): days with planned hours that are
    not holidays (a shift worker's shifts count on holidays too). ``settings`` is a dict, or a
    function of the date when the configuration changes within the range."""
    holidays = holidays or {}
    found, day = [], start
    while day <= end:
        in_force = settings(day) if callable(settings) else settings
        hours = hours_on(in_force, day, rota)
        if hours is not None and (hours.shift is not None or day not in holidays):
            found.append(day)
        day += timedelta(days=1)
    return found


# -- a day's status ------------------------------------------------------------------------

def covering(items, day, statuses=("approved",)):
    """The first item ``{"start", "end", "status"?}`` whose dates cover ``day`` (status, when
    present, among ``statuses``)."""
    for item in items:
        if item["start"] <= day <= item["end"] and item.get("status", statuses[0]) in statuses:
            return item
    return None


def outages_for(unit, outages):
    """The outage windows ``{"unit", "start", "end"}`` declared for the unit or an ancestor."""
    return [o for o in outages if in_subtree(unit, o["unit"])]


def _covered(outages, at):
    return any(o["start"] <= at <= o["end"] for o in outages)


def day_status(day, hours, tz, *, check_in=None, check_out=None, holidays=None, leaves=(),
               assignments=(), outages=(), settings=DEFAULT_SETTINGS):
    """The result of one employee's ``day``.

    ``hours``: the planned Hours (``hours_on``), None for a day off; ``check_in``/
    ``check_out``: the server times chosen by ``day_records``; ``holidays``: the unit's
    ``holiday_calendar``; ``leaves`` and ``assignments``: the employee's, with dates
    (only an approved leave counts); ``outages``: the unit's (``outages_for``).

    In order: a day off or an office holiday; approved leave; an assignment (dinas luar: its
    travel does not follow office hours, so it is never late, early or absent); then the
    records. No record at all is absent without reason (``absent_percent``), except when
    outages cover both the start and the end: then nobody could record and the day is
    ``outage`` (no deduction; the employee's correction settles it). Otherwise lateness and
    early leave are bracketed separately (a missing check-in is TL4, a missing check-out
    PSW4); ``grace_minutes`` forgives lateness only (leaving early has no tolerance); an
    outage covering the start forgives any lateness or missing check-in, one
    covering the end any early leave or missing check-out. The day's deduction is the sum,
    at most ``absent_percent``.

    Returns ``{"date", "status", "codes", "late_minutes", "early_minutes", "deduction",
    "excused", "holiday", "leave_type", "assignment"}``; status is one of ``day_off``,
    ``holiday``, ``leave``, ``assignment``, ``absent``, ``outage``, ``present`` (a present day
    carries its TL/PSW codes)."""
    result = {"date": day, "status": None, "codes": [], "late_minutes": None,
              "early_minutes": None, "deduction": Decimal(0), "excused": [], "holiday": None,
              "leave_type": None, "assignment": None}
    holiday = (holidays or {}).get(day)
    if hours is None:
        return {**result, "status": "holiday" if holiday else "day_off", "holiday": holiday}
    if holiday and hours.shift is None:
        return {**result, "status": "holiday", "holiday": holiday}
    leave = covering(leaves, day)
    if leave is not None:
        return {**result, "status": "leave", "leave_type": leave["type"]}
    assignment = covering(assignments, day)
    if assignment is not None:
        return {**result, "status": "assignment", "assignment": assignment.get("id")}

    start, end = hours.bounds(day, tz)
    start_excused, end_excused = _covered(outages, start), _covered(outages, end)
    if check_in is None and check_out is None:
        if start_excused and end_excused:
            return {**result, "status": "outage", "excused": ["check-in", "check-out"]}
        return {**result, "status": "absent", "deduction": settings["absent_percent"]}

    codes, deduction, excused = [], Decimal(0), []
    late = None if check_in is None else max(
        0, int((_clock_minute(check_in, tz) - start).total_seconds() // 60))
    early = None if check_out is None else max(
        0, int((end - _clock_minute(check_out, tz)).total_seconds() // 60))
    for minutes, excuse, table, prefix, grace, what in (
            (late, start_excused, settings["tl_brackets"], "TL", settings["grace_minutes"],
             "check-in"),
            (early, end_excused, settings["psw_brackets"], "PSW", 0, "check-out")):
        found = bracket(minutes, table, prefix, grace)
        if found is None:
            continue
        if excuse:
            excused.append(what)
            continue
        codes.append(found[0])
        deduction += found[1]
    return {**result, "status": "present", "codes": codes, "late_minutes": late,
            "early_minutes": early, "deduction": min(deduction, settings["absent_percent"]),
            "excused": excused}


# -- leave (PP 11/2017) --------------------------------------------------------------------

# limit: (unit, amount) for one request, None where PP 11/2017 sets none that DOMAIN names;
# service: years of continuous service required.
LEAVE_TYPES = {
    "CT": {"name": "Cuti tahunan", "label": "annual", "limit": ("working_days", 18),
           "service": 1},
    "CB": {"name": "Cuti besar", "label": "long", "limit": ("months", 3), "service": 5},
    "CS": {"name": "Cuti sakit", "label": "sick", "limit": None, "service": 0},
    "CM": {"name": "Cuti melahirkan", "label": "maternity", "limit": ("months", 3),
           "service": 0},
    "CAP": {"name": "Cuti karena alasan penting", "label": "important reasons",
            "limit": ("months", 1), "service": 0},
    "CBer": {"name": "Cuti bersama", "label": "collective", "limit": None, "service": 0},
    "CLTN": {"name": "Cuti di luar tanggungan negara", "label": "unpaid",
             "limit": ("months", 36), "service": 5},
}
ANNUAL_ENTITLEMENT, ANNUAL_CARRY_MAX, ANNUAL_CAP = 12, 6, 18
OPEN_LEAVE_STATUSES = ("requested", "approved")


def add_months(day, months):
    """``day`` plus whole months, clamped to the month's end (31 Jan + 1 -> 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for last in (31, 30, 29, 28):
        try:
            return day.replace(year=year, month=month + 1, day=min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def overlapping_leaves(existing, start, end):
    """The open requests (requested or approved) sharing a day with [start, end]."""
    return [r for r in existing if r.get("status") in OPEN_LEAVE_STATUSES
            and r["start"] <= end and start <= r["end"]]


def leave_problems(request, *, days=None, balance=None, service_years=None, existing=()):
    """Why a leave request ``{"type", "start", "end", "child_order"?}`` cannot be made:
    [(field, reason)]. ``days``: its working days (``working_days``), ``balance``: the annual
    leave left, ``service_years``: completed years of continuous service, ``existing``: the
    employee's other requests. A limit in months ends the day before the same date that many
    months later (3 months from 10 January: until 9 April)."""
    kind = LEAVE_TYPES.get(request["type"])
    if kind is None:
        return [("type", f"one of {', '.join(LEAVE_TYPES)}")]
    problems = []
    start, end = request["start"], request["end"]
    if end < start:
        problems.append(("end", "before the start"))
    if request["type"] == "CBer":
        problems.append(("type", "cuti bersama is set nationally, not requested"))
    if service_years is not None and service_years < kind["service"]:
        problems.append(("type", f"{request['type']} needs {kind['service']} years of "
                                 "continuous service"))
    if kind["limit"] and kind["limit"][0] == "months":
        last = add_months(start, kind["limit"][1]) - timedelta(days=1)
        if end > last:
            problems.append(("end", f"{request['type']} lasts at most {kind['limit'][1]} "
                                    f"months: until {last.isoformat()}"))
    if request["type"] == "CT" and days is not None:
        if days == 0:
            problems.append(("start", "no working day in the range"))
        elif balance is not None and days > balance:
            problems.append(("end", f"{days} working days asked, {balance} left"))
    if request["type"] == "CM" and (request.get("child_order") or 1) > 3:
        problems.append(("child_order", "maternity leave covers the 1st to 3rd child; a later "
                                        "birth takes long leave (CB)"))
    for other in overlapping_leaves(existing, start, end):
        if other.get("id") != request.get("id"):
            problems.append(("start", f"overlaps request {other.get('id')} "
                                      f"({other['start'].isoformat()} to "
                                      f"{other['end'].isoformat()})"))
    return problems


def annual_leave_balance(previous_unused, taken, *, entitlement=ANNUAL_ENTITLEMENT,
                         carry_max=ANNUAL_CARRY_MAX, cap=ANNUAL_CAP, long_leave=False):
    """One year's annual leave: at most ``carry_max`` unused days of the previous year carried
    over, ``entitlement`` + carried at most ``cap`` (12, 6, 18: DOMAIN). A year in which long
    leave (CB) is taken has no annual leave (PP 11/2017). ``remaining`` is negative only when
    more was taken than available (the request check refuses that)."""
    carried = min(max(previous_unused, 0), carry_max)
    available = 0 if long_leave else min(entitlement + carried, cap)
    return {"entitled": 0 if long_leave else entitlement, "carried": 0 if long_leave else carried,
            "available": available, "taken": taken, "remaining": available - taken}


def annual_leave_ledger(taken_by_year, first_year, last_year, opening_unused=0,
                        long_leave_years=()):
    """``{year: balance}`` from ``first_year`` to ``last_year``, each year carrying the
    previous one's remaining days."""
    ledger, unused = {}, opening_unused
    for year in range(first_year, last_year + 1):
        balance = annual_leave_balance(unused, taken_by_year.get(year, 0),
                                       long_leave=year in long_leave_years)
        ledger[year] = balance
        unused = max(balance["remaining"], 0)
    return ledger


# -- geofence ------------------------------------------------------------------------------

EARTH_RADIUS_M = 6_371_008.8  # the mean Earth radius (IUGG)


def distance_m(lat1, lon1, lat2, lon2):
    """Great-circle (haversine) distance in metres."""
    phi1, phi2 = radians(lat1), radians(lat2)
    h = (sin((phi2 - phi1) / 2) ** 2
         + cos(phi1) * cos(phi2) * sin(radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * asin(min(1.0, sqrt(h)))


def geofence(latitude, longitude, accuracy_m, places):
    """Whether a reading is inside one of ``places`` (offices or an assignment's place,
    ``{"name", "latitude", "longitude", "radius_m"}``).

    Rule: inside a place when the reported point is within its radius **and** the accuracy is
    no worse than the radius. We do not demand distance + accuracy <= radius: indoors a phone
    at its desk often reports 30-60 m, and that stricter rule would turn away people who are
    in the building; a reading vaguer than the radius proves nothing and is refused.
    (Fake positions come with perfect accuracy anyway: they are flagged, not measured.)

    Returns ``{"inside", "reason", "place", "distance_m", "radius_m", "accuracy_m"}``:
    inside -> the nearest accepting place; ``reason="accuracy"`` -> the point is within a
    radius but the reading is too vague (that place); ``"outside"`` -> the nearest place;
    ``"no_place"`` -> nothing to check against. A missing or negative accuracy is no
    accuracy at all."""
    accuracy = accuracy_m if accuracy_m is not None and accuracy_m >= 0 else float("inf")
    result = {"inside": False, "reason": "no_place", "place": None, "distance_m": None,
              "radius_m": None, "accuracy_m": accuracy_m}
    measured = sorted(((distance_m(latitude, longitude, p["latitude"], p["longitude"]), i, p)
                       for i, p in enumerate(places)), key=lambda m: m[:2])
    if not measured:
        return result
    within = [(d, p) for d, _, p in measured if d <= p["radius_m"]]
    accepted = [(d, p) for d, p in within if accuracy <= p["radius_m"]]
    if accepted:
        (distance, place), reason = accepted[0], None
    elif within:
        (distance, place), reason = within[0], "accuracy"
    else:
        (distance, _, place), reason = measured[0], "outside"
    return {**result, "inside": reason is None, "reason": reason, "place": place,
            "distance_m": distance, "radius_m": place["radius_m"]}


# -- suspicion flags -----------------------------------------------------------------------
# Records: {"nip", "device_id", "at" (server time, or device time when offline),
# "device_at", "latitude", "longitude", "accuracy_m", "mock"}. Flags are kept for the
# supervisor; none of them rejects a record.

def mock_flags(record):
    """The device says the position came from a mock-location provider."""
    return ["mock_location"] if record.get("mock") else []


def drift_flags(server_at, device_at, max_seconds):
    """The device clock is off the server's by more than ``max_seconds`` (the server's clock
    decides the record's time either way)."""
    if device_at is None:
        return []
    return ["clock_drift"] if abs((server_at - device_at).total_seconds()) > max_seconds else []


def speed_kmh(previous, record):
    """The speed needed between two records, after granting both readings their accuracy
    (jitter inside the accuracy circles is no travel). Infinite for a real move in no time."""
    moved = distance_m(previous["latitude"], previous["longitude"], record["latitude"],
                       record["longitude"])
    moved -= (previous.get("accuracy_m") or 0) + (record.get("accuracy_m") or 0)
    if moved <= 0:
        return 0.0
    hours = abs((record["at"] - previous["at"]).total_seconds()) / 3600
    return float("inf") if hours == 0 else moved / 1000 / hours


def travel_flags(previous, record, max_kmh):
    """Impossible travel: the employee's previous record is too far away for the time
    between them."""
    if previous is None:
        return []
    return ["impossible_travel"] if speed_kmh(previous, record) > max_kmh else []


def shared_devices(records, tz, morning_ends=time(12, 0)):
    """``{(device_id, local date): [nips]}`` for the devices used by two or more employees in
    one morning (before ``morning_ends``, unit time)."""
    users = {}
    for record in records:
        local = record["at"].astimezone(zone(tz))
        if local.time() < morning_ends and record.get("device_id"):
            users.setdefault((record["device_id"], local.date()), set()).add(record["nip"])
    return {key: sorted(nips) for key, nips in users.items() if len(nips) > 1}


def shared_device_flags(records, tz, morning_ends=time(12, 0)):
    """One flag list per record (same order): ``shared_device`` on every morning record of
    a device several employees used that morning."""
    shared = shared_devices(records, tz, morning_ends)
    flags = []
    for record in records:
        local = record["at"].astimezone(zone(tz))
        key = (record.get("device_id"), local.date())
        flags.append(["shared_device"] if key in shared and local.time() < morning_ends
                     else [])
    return flags


def record_flags(record, previous, settings=DEFAULT_SETTINGS, offline=False):
    """The flags of one record judged alone (mock location, clock drift, impossible travel
    from the employee's ``previous`` record), sorted. An offline record's time *is* its device
    time, so it is flagged ``offline`` instead of being measured for drift."""
    flags = mock_flags(record) + travel_flags(previous, record, settings["max_speed_kmh"])
    if offline:
        flags.append("offline")
    else:
        flags += drift_flags(record["at"], record.get("device_at"),
                             settings["max_clock_drift_seconds"])
    return sorted(flags)


# -- unexcused absence (PP 94/2021) --------------------------------------------------------

# (from, to, level, English, Indonesian); cumulative working days in a year.
SANCTIONS = (
    (3, 3, "oral_warning", "oral warning", "teguran lisan"),
    (4, 6, "written_warning", "written warning", "teguran tertulis"),
    (7, 10, "written_dissatisfaction", "written statement of dissatisfaction",
     "pernyataan tidak puas secara tertulis"),
    (11, 13, "allowance_cut_6", "allowance cut 25% for 6 months",
     "pemotongan tunjangan kinerja 25% selama 6 bulan"),
    (14, 16, "allowance_cut_9", "allowance cut 25% for 9 months",
     "pemotongan tunjangan kinerja 25% selama 9 bulan"),
    (17, 20, "allowance_cut_12", "allowance cut 25% for 12 months",
     "pemotongan tunjangan kinerja 25% selama 12 bulan"),
    (21, 24, "demotion", "demotion one level for 12 months",
     "penurunan jabatan setingkat lebih rendah selama 12 bulan"),
    (25, 27, "removal_from_position", "removal from position (to pelaksana) for 12 months",
     "pembebasan dari jabatannya menjadi jabatan pelaksana selama 12 bulan"),
    (28, None, "dismissal", "dismissal (honourable, not at own request)",
     "pemberhentian dengan hormat tidak atas permintaan sendiri sebagai PNS"),
)
DISMISSAL_CONSECUTIVE_DAYS = 10


def _sanction(row, days, consecutive):
    low, high, level, text, text_id = row
    return {"level": level, "from": low, "to": high, "text": text, "text_id": text_id,
            "days": days, "consecutive": consecutive}


def absence_threshold(days, consecutive=0):
    """The PP 94/2021 threshold reached by ``days`` cumulative unexcused working days in a year
    (or ``consecutive`` of them in a row), or None below 3 days. Reported, not imposed."""
    if consecutive >= DISMISSAL_CONSECUTIVE_DAYS:
        return _sanction(SANCTIONS[-1], days, consecutive)
    for row in reversed(SANCTIONS):
        if days >= row[0]:
            return _sanction(row, days, consecutive)
    return None


def thresholds_crossed(before, after, consecutive_before=0, consecutive_after=0):
    """The thresholds newly reached going from ``before`` to ``after`` days (each one once,
    lowest first): what ``attendance.absence_threshold_reached`` announces."""
    old = absence_threshold(before, consecutive_before)
    new = absence_threshold(after, consecutive_after)
    if new is None or (old is not None and old["level"] == new["level"]):
        return []
    old_index = -1 if old is None else [r[2] for r in SANCTIONS].index(old["level"])
    new_index = [r[2] for r in SANCTIONS].index(new["level"])
    return [_sanction(row, after, consecutive_after)
            for row in SANCTIONS[old_index + 1:new_index + 1]
            if row[0] <= after or row is SANCTIONS[-1]]


def longest_absence_run(results):
    """The longest run of ``absent`` days in date-ordered day results; days off, holidays and
    outages neither count nor break a run (they are not working days), anything else
    breaks it."""
    longest = run = 0
    for result in results:
        if result["status"] == "absent":
            run += 1
            longest = max(longest, run)
        elif result["status"] not in ("day_off", "holiday", "outage"):
            run = 0
    return longest


# -- years of service from the NIP (leave eligibility) -------------------------------------

def service_years(nip, on):
    """Completed years of service on ``on`` of a PNS, read from the NIP: digits 9-14 are the
    year and month of appointment as CPNS (TMT CPNS), e.g. ``198609262015051001`` -> May
    2015. None when the NIP does not carry a valid month (then no check is made)."""
    if not (isinstance(nip, str) and len(nip) == 18 and nip.isdigit()):
        return None
    year, month = int(nip[8:12]), int(nip[12:14])
    if not (1 <= month <= 12 and year >= 1900):
        return None
    months = (on.year - year) * 12 + on.month - month
    return max(months, 0) // 12


# -- reports -------------------------------------------------------------------------------
# Recaps sum the results the day close stored (``days.result``: deduction a string percent);
# they never judge a day themselves, so a report and the close cannot disagree. Only today's
# presence (``presence_now``) judges live records, and it calls nobody absent.

BRACKET_CODES = tuple(f"{prefix}{level}" for prefix in ("TL", "PSW") for level in range(1, 5))
RECAP_COUNTS = ("closed_days", "days_present", "absences", "leave_days", "assignment_days",
                "holidays", "days_off", "outage_days")


def month_dates(year, month):
    """Every date of a month."""
    first = datetime(year, month, 1).date()
    return [first + timedelta(days=i) for i in range((add_months(first, 1) - first).days)]


def empty_recap():
    return {**dict.fromkeys(RECAP_COUNTS, 0),
            "brackets": {code: {"count": 0, "minutes": 0} for code in BRACKET_CODES},
            "leave": {}, "deduction": Decimal(0)}


def add_day(recap, result):
    """Count one closed day's stored ``result`` into ``recap`` (in place; returns it). A
    bracket's minutes are the day's late (TL) or early (PSW) minutes; a missing record (TL4
    or PSW4 without minutes) counts once with no minutes. A configured table with more
    brackets adds its codes."""
    status = result["status"]
    recap["closed_days"] += 1
    if status == "present":
        recap["days_present"] += 1
        for code in result.get("codes") or ():
            minutes = result.get("late_minutes" if code.startswith("TL") else "early_minutes")
            slot = recap["brackets"].setdefault(code, {"count": 0, "minutes": 0})
            slot["count"] += 1
            slot["minutes"] += minutes or 0
    elif status == "absent":
        recap["absences"] += 1
    elif status == "leave":
        recap["leave_days"] += 1
        kind = result.get("leave_type") or "?"
        recap["leave"][kind] = recap["leave"].get(kind, 0) + 1
    elif status == "assignment":
        recap["assignment_days"] += 1
    elif status == "holiday":
        recap["holidays"] += 1
    elif status == "day_off":
        recap["days_off"] += 1
    elif status == "outage":
        recap["outage_days"] += 1
    recap["deduction"] += Decimal(str(result.get("deduction") or "0"))
    return recap


def add_recap(total, recap):
    """Add ``recap`` into ``total`` (in place; returns it): per-unit and report totals."""
    for name in RECAP_COUNTS:
        total[name] += recap[name]
    for code, slot in recap["brackets"].items():
        into = total["brackets"].setdefault(code, {"count": 0, "minutes": 0})
        into["count"] += slot["count"]
        into["minutes"] += slot["minutes"]
    for kind, days in recap["leave"].items():
        total["leave"][kind] = total["leave"].get(kind, 0) + days
    total["deduction"] += recap["deduction"]
    return total


def presence_now(day, hours, tz, *, check_in=None, check_out=None, holidays=None, leaves=(),
                 assignments=(), outages=(), settings=DEFAULT_SETTINGS):
    """An employee's presence on ``day`` while it is still open, by ``day_status``'s rules:
    ``{"status", "code", "late_minutes"}`` with status ``day_off``, ``holiday``, ``leave``,
    ``assignment``, ``checked_in`` or ``not_yet_in`` (belum hadir: never "absent" before the
    close). ``code`` is the TL bracket of a late check-in (None when on time, within grace or
    excused by an outage); ``late_minutes`` the minutes after the scheduled start."""
    result = day_status(day, hours, tz, check_in=check_in, check_out=None, holidays=holidays,
                        leaves=leaves, assignments=assignments, outages=outages,
                        settings=settings)
    if result["status"] in ("day_off", "holiday", "leave", "assignment"):
        return {"status": result["status"], "code": None, "late_minutes": None}
    if check_in is None:
        return {"status": "not_yet_in", "code": None, "late_minutes": None}
    code = next((c for c in result["codes"] if c.startswith("TL")), None)
    return {"status": "checked_in", "code": code, "late_minutes": result["late_minutes"]}


def consecutive_absences(absent, working):
    """The longest run of unexcused absences (``absent``: dates) where only the ``working``
    days (dates; the working-day calendar) between them can break a run: a weekend or holiday
    between two absences neither counts nor breaks it (``longest_absence_run``)."""
    absent = set(absent)
    if not absent:
        return 0
    first, last = min(absent), max(absent)
    days = sorted(absent | {d for d in working if first <= d <= last})
    return longest_absence_run(
        [{"status": "absent" if d in absent else "present"} for d in days])


# -- closing a day -------------------------------------------------------------------------
# The day close turns what is stored about one employee's day (the day document: records and
# an approved correction; the person document: leave, assignments) into the ``result`` kept
# on the day document; reports only sum those results. ``revision`` and ``closed_at`` are
# the close's to add.

RESULT_FIELDS = ("status", "codes", "late_minutes", "early_minutes", "deduction", "excused",
                 "holiday", "leave_type", "assignment", "check_in", "check_out", "flags")


def percent_text(value):
    """A Decimal percentage as stored (``"0.5"``, ``"2"``, ``"0"``): one spelling per value, so
    a recomputed result compares equal to the stored one."""
    text = f"{Decimal(value).normalize():f}"
    return "0" if text in ("-0", "0.0") else text


def _stored_dates(item):
    return {**item, "start": datetime.strptime(item["start"], "%Y-%m-%d").date(),
            "end": datetime.strptime(item["end"], "%Y-%m-%d").date()}


def compute_day(day, doc, person, *, settings, tz, holidays=None, outages=(), rota=None):
    """One employee's closed-day result from their day document ``doc`` (``records``, an
    approved ``correction`` ``{check_in, check_out}`` of UTC datetimes or None) and person
    document ``person`` (stored form: ``leaves``/``assignments`` with ``YYYY-MM-DD`` dates),
    with the unit's ``settings``, ``tz``, ``holidays`` (``holiday_calendar``) and ``outages``
    (``outages_for``); ``rota`` in the domain form for a shift worker.

    The first check-in and last check-out inside the day's window count (``day_records``); a
    correction's time replaces the record's it gives (a null one leaves the records' time);
    then ``day_status`` judges. Every flag of the day's records is collected for the
    supervisor, whatever the status. Returns the ``RESULT_FIELDS`` (deduction as text)."""
    doc, person = doc or {}, person or {}
    records = doc.get("records") or ()
    hours = hours_on(settings, day, rota)
    check_in = check_out = None
    if hours is not None:
        opens, closes = day_window(day, hours, tz, settings)
        check_in, check_out = day_records(records, opens, closes)
    correction = doc.get("correction") or {}
    if correction.get("check_in") is not None:
        check_in = correction["check_in"]
    if correction.get("check_out") is not None:
        check_out = correction["check_out"]
    leaves = [_stored_dates(item) for item in person.get("leaves") or ()
              if item.get("status") == "approved"]
    # an assignment's own status is active|cancelled: ``covering`` should not see it
    assignments = [{k: v for k, v in _stored_dates(item).items() if k != "status"}
                   for item in person.get("assignments") or ()
                   if item.get("status", "active") == "active"]
    judged = day_status(day, hours, tz, check_in=check_in, check_out=check_out,
                        holidays=holidays, leaves=leaves, assignments=assignments,
                        outages=outages, settings=settings)
    flags = sorted({flag for record in records for flag in record.get("flags") or ()})
    return {"status": judged["status"], "codes": judged["codes"],
            "late_minutes": judged["late_minutes"], "early_minutes": judged["early_minutes"],
            "deduction": percent_text(judged["deduction"]), "excused": judged["excused"],
            "holiday": judged["holiday"], "leave_type": judged["leave_type"],
            "assignment": judged["assignment"], "check_in": check_in, "check_out": check_out,
            "flags": flags}


def same_result(stored, computed):
    """Whether a stored result says what a fresh computation says (``revision``,
    ``closed_at`` and other bookkeeping aside)."""
    if stored is None:
        return False
    return all(stored.get(name) == computed.get(name) for name in RESULT_FIELDS)


COUNT_NAMES = ("employees", "present", "on_time", "late", "early_leave", "absent", "leave",
               "assignment", "holiday", "day_off", "outage", "flagged")


def close_counts(results):
    """A unit-day's counts (``attendance.day_closed``) from its employees' results: every
    status, and among the present the on-time ones (no TL/PSW code), the late (a TL code)
    and those who left early (a PSW code; one can be both late and early); ``flagged``:
    employees with a flagged record, whatever their status."""
    counts = dict.fromkeys(COUNT_NAMES, 0)
    for result in results:
        counts["employees"] += 1
        status = result["status"]
        counts[status] += 1
        codes = result.get("codes") or ()
        if status == "present":
            late = any(code.startswith("TL") for code in codes)
            early = any(code.startswith("PSW") for code in codes)
            counts["late"] += late
            counts["early_leave"] += early
            counts["on_time"] += not (late or early)
        counts["flagged"] += bool(result.get("flags"))
    return counts
