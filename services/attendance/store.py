"""Attendance storage. Every hot path is an ``_id`` lookup (the only indexed filter on the
local database, and the cheapest on any): a check-in reads the employee, their unit chain, their
person document and today's day document by ``_id`` and writes the day document once, so its
cost does not grow with the records stored.

Collections (``pamong_attendance``), besides the directory replica (``units``, ``employees``,
``acting``):

- ``days``: ``_id "<nip>:<YYYY-MM-DD>"``, one employee's working day: its records (check-ins
  and check-outs, each with its idempotency key), refused attempts, a correction, and once
  the day is closed its result. 10,000 employees: about 3.65 million a year (the close
  writes a result for every calendar day); archived by year (see the module README).
- ``people``: ``_id nip``, what belongs to the employee across days: leave requests,
  assignments (dinas luar), correction requests, a shift rota, the unexcused absences of the
  year. One per employee; old years' entries are archived.
- ``unit_config``: ``_id`` unit code, the unit's effective-dated configuration entries.
- ``calendar``: ``_id "regional"``, regional holidays and cuti bersama (national ones come
  from the ``holidays`` package).
- ``outages``: declared system outage windows (few).
- ``closes``: ``_id "<unit>:<YYYY-MM-DD>"``, the close of one unit's day (counts, revision).
- ``close_cursor``: ``_id`` unit code, the last day closed in that unit.
- ``devices``: ``_id "<device>:<YYYY-MM-DD>"``, the employees a device recorded for that day
  (shared-device flag).
- ``revisions_due``: ``_id "<nip>:<start>:<end>:<reason>"``, days to revise after a change
  that can alter closed days, written before the change and removed once revised (only
  what is in flight, or was when a process died).
"""

from datetime import date, datetime, timedelta

from nameko.extensions import DependencyProvider

from pamong.auth.principal import subtree_filter
from pamong.cache import TimedCache
from pamong.calendar import national_holidays
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import Index, by_ids, db_now, mongo_of
from services.attendance import domain
from services.attendance.settings import entry_from_doc

DAYS, PEOPLE, CONFIG, CALENDAR = "days", "people", "unit_config", "calendar"
OUTAGES, CLOSES, CURSORS, DEVICES = "outages", "closes", "close_cursor", "devices"
REVISIONS_DUE = "revisions_due"

# secondary indexes for the rare scans (lists for a supervisor); MongoDB uses them, the local
# database ignores them (see the README's "What still differs from MongoDB")
INDEXES = [Index(PEOPLE, [("unit", 1)])]  # a rota check of a unit subtree (configuration)


def day_id(nip, day):
    return f"{nip}:{day.isoformat()}"


def employees_of(db, unit, with_subunits=False):
    """The replica's active employees of a unit (or its subtree): a scan of ``employees``,
    which grows with the Pemda's staff, not with attendance records."""
    query = subtree_filter("unit", unit) if with_subunits else {"unit": unit}
    return list(db[EMPLOYEES].find({**query, "status": "active"}))


# -- configuration, read through a short per-process cache -----------------------------------

def config_entries(db, unit):
    """The configuration entries of ``unit`` and its ancestors (domain form)."""
    docs = by_ids(db[CONFIG], domain.unit_chain(unit))
    return [entry_from_doc(code, entry) for code, doc in docs.items()
            for entry in doc.get("entries", ())]


def regional_days(db):
    """Regional holidays and cuti bersama, ``[{date, name, kind, unit}]`` with dates."""
    doc = db[CALENDAR].find_one({"_id": "regional"}) or {}
    return [{**item, "date": date.fromisoformat(item["date"])} for item in doc.get("days", ())]


class Calendar:
    """Settings, holidays and places of units, cached a few seconds per process."""

    def __init__(self, db, seconds=5.0):
        self.db = db
        self.cache = TimedCache(seconds)

    # every unit and every configuration entry in one read each per period, not one per unit:
    # a province's thousands of units would otherwise each cost a read every few seconds
    def _units(self):
        return self.cache.get(("units",), lambda: {
            doc["_id"]: doc for doc in self.db[UNITS].find({})})

    def _entries_by_unit(self):
        return self.cache.get(("entries",), lambda: {
            doc["_id"]: [entry_from_doc(doc["_id"], e) for e in doc.get("entries", ())]
            for doc in self.db[CONFIG].find({})})

    def unit(self, code):
        return self._units().get(code)

    def entries(self, unit):
        by_unit = self._entries_by_unit()
        return [entry for code in domain.unit_chain(unit) for entry in by_unit.get(code, ())]

    def settings(self, unit, day):
        return domain.effective_settings(self.entries(unit), unit, day)

    def timezone(self, unit):
        doc = self.unit(unit)
        return (doc or {}).get("timezone", "Asia/Jakarta")

    def today(self, unit):
        """The unit's date now, in its own time zone."""
        return domain.local_date(db_now(), self.timezone(unit))

    def holidays(self, unit, year):
        national = self.cache.get(("national", year), lambda: national_holidays(year))
        extra = self.cache.get(("regional",), lambda: regional_days(self.db))
        return domain.holiday_calendar(unit, national, extra)

    def offices(self, unit):
        """The offices of the unit, or of its nearest ancestor that has some."""
        for code in domain.unit_chain(unit):
            doc = self.unit(code)
            if doc and doc.get("offices"):
                return doc["offices"]
        return []

    def outages(self, unit):
        every = self.cache.get(("outages",), lambda: list(self.db[OUTAGES].find(
            {"cancelled": {"$ne": True}})))
        return domain.outages_for(unit, every)

    def clear(self):
        self.cache.clear()


def last_closed(db, unit):
    doc = db[CURSORS].find_one({"_id": unit})
    return date.fromisoformat(doc["last_closed"]) if doc else None


def day_window_for(calendar, unit, day, rota=None):
    """(hours, opens, closes) of ``day`` for an employee of ``unit`` (hours None: a day off,
    and then the window is the calendar day)."""
    tz = calendar.timezone(unit)
    settings = calendar.settings(unit, day)
    hours = domain.hours_on(settings, day, rota)
    if hours is None:
        start = datetime.combine(day, datetime.min.time(), tzinfo=domain.zone(tz))
        return None, start, start + timedelta(days=1)
    opens, closes = domain.day_window(day, hours, tz, settings)
    return hours, opens, closes


class CalendarProvider(DependencyProvider):
    """One ``Calendar`` per process (its cache is shared by every worker)."""

    def start(self):
        self.calendar = Calendar(mongo_of(self.container, "CalendarProvider").db,
                                 float(self.container.config.get(
                                     "ATTENDANCE_CONFIG_CACHE_SECONDS", 5)))

    def get_dependency(self, worker_ctx):
        return self.calendar
