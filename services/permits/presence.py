"""Today's attendance per OPD for the public dashboard: a read model fed by the attendance
module's ``attendance.checked_in`` events, over the directory replica's employee counts.

Aggregate only: the dashboard shows, per OPD, how many employees checked in today out of
how many active employees the directory lists; never a name or a NIP.

**Counted once per NIP and day.** ``attendance.checked_in`` comes for the first record of an
employee's day and for later ones; an employee counts once per day, in the OPD the event
names (the unit's OPD from the replica when the event has none). Three writes, each by
``_id``:

1. claim the employee's day: insert ``{_id: nip, opd, event, counted: false}`` into the
   day's collection ``presence_<YYYYMMDD>``. A duplicate key means the day is claimed: by
   another event (a later check-in, or a twin first one: nothing to do) or by this same
   event (a redelivery after a crash: carry on);
2. add one to the day's counts ``presence`` ``_id "<YYYY-MM-DD>"`` (``opds.<opd>`` and
   ``present``) with ``apply_once``: the event id is recorded in the same atomic write, so a
   redelivery after this step counts nothing again;
3. mark the claim ``counted``: a later redelivery stops at step 1.

A crash between 2 and 3 is covered by ``apply_once``'s memory of the last 100 (at most 200)
event ids of the day document; only a redelivery arriving after more than that many other
first check-ins of the same day could count a second time. The consumer kernel's inbox
already drops redeliveries of a handled event, so this is the net under it.

Day collections are dropped after ``PERMITS_PRESENCE_KEEP_DAYS`` (one ``drop`` per day, as
the inbox does; deleting by date would scan on the local database). The day counts
(``presence`` ``_id`` a date, a few hundred bytes) are kept.

**Employees per OPD** (the denominator) come from the directory replica: a timer
(``PERMITS_HEADCOUNT_SECONDS``, default 300, and at start) counts the active employees per
OPD in one pass over the replica's ``employees`` and writes ``presence`` ``_id
"headcount"`` when the figures changed. The dashboard reads that one document, never the
employees. A directory change shows within the timer's interval.
"""

import logging
from datetime import date, timedelta

import pymongo.errors

from pamong.contracts import attendance as contracts  # noqa: F401 - registers the contracts
from pamong.events.consumer import apply_once, handles
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import by_ids, db_now
from pamong.timers import setting_timer
from services.permits.dashboard import field_key, unit_code
from services.permits.store import PRESENCE, local_today

log = logging.getLogger(__name__)

DAY_PREFIX = f"{PRESENCE}_"  # + YYYYMMDD: the claims of that day
HEADCOUNT = "headcount"
KEEP_DAYS = 7
UNBOOKED = {"_applied": 0}


def day_collection(day):
    return f"{DAY_PREFIX}{day:%Y%m%d}"


def day_of_collection(name):
    """The date of a day collection's name, None for any other collection."""
    digits = name[len(DAY_PREFIX):] if name.startswith(DAY_PREFIX) else ""
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def opd_of(db, data):
    """The OPD an event's employee counts in: the event's, else the unit's in the replica,
    else the unit itself (a unit the replica does not know yet)."""
    if data.get("opd"):
        return data["opd"]
    unit = db[UNITS].find_one({"_id": data["unit"]}, {"opd": 1}) or {}
    return unit.get("opd") or data["unit"]


def count_check_in(db, event):
    """Count ``event`` (an ``attendance.checked_in``) once per NIP and day (see the module
    docstring). True when this call added the employee to the day's counts."""
    data = event.data
    day = data["date"]
    claims = db[day_collection(day)]
    opd = opd_of(db, data)
    try:
        claims.insert_one({"_id": data["nip"], "opd": opd, "event": event.id,
                           "counted": False, "at": db_now()})
    except pymongo.errors.DuplicateKeyError:
        claim = claims.find_one({"_id": data["nip"]})
        if claim is None or claim.get("event") != event.id or claim.get("counted"):
            return False  # another check-in of the day counted the employee, or this one did
        opd = claim["opd"]  # where the claim put the employee (the replica may have moved)
    applied = apply_once(db[PRESENCE], {"_id": day.isoformat()},
                         {"$inc": {f"opds.{field_key(opd)}": 1, "present": 1, "version": 1}},
                         event, upsert=True)
    claims.update_one({"_id": data["nip"], "event": event.id}, {"$set": {"counted": True}})
    return applied


def headcount(employees):
    """``{opd field key: active employees}`` from the replica's employee documents."""
    counts = {}
    for person in employees:
        if person.get("status", "active") != "active" or not person.get("opd"):
            continue
        key = field_key(person["opd"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def presence_figures(day_doc, headcount_doc, unit_names, on):
    """The dashboard's attendance section (pure): per OPD present / employees / percent,
    the Pemda's total, and whether anything arrived today (``reported``)."""
    present = {unit_code(k): n for k, n in ((day_doc or {}).get("opds") or {}).items() if n}
    staff = {unit_code(k): n for k, n in ((headcount_doc or {}).get("opds") or {}).items()
             if n}
    rows = []
    for opd in sorted(set(present) | set(staff), key=lambda c: (unit_names.get(c) or c, c)):
        employees, here = staff.get(opd), present.get(opd, 0)
        rows.append({"opd": opd, "name": unit_names.get(opd), "employees": employees,
                     "present": here, "pct": _pct(here, employees)})
    total_present = sum(present.values())
    total_staff = sum(staff.values())
    return {"date": on, "reported": bool(present), "present": total_present,
            "employees": total_staff or None, "pct": _pct(total_present, total_staff),
            "rows": rows if present else []}


def _pct(part, whole):
    return round(min(part, whole) * 100 / whole, 1) if whole else None


def read_presence(db, on):
    """``(day document, headcount document)`` of day ``on``: two reads by ``_id``."""
    docs = by_ids(db[PRESENCE], [on.isoformat(), HEADCOUNT], UNBOOKED)
    return docs.get(on.isoformat()), docs.get(HEADCOUNT)


class PresenceReadModel:
    """Mixed into the permits service (needs ``db`` and ``config``)."""

    @handles("attendance", "attendance.checked_in")
    def presence_on_checked_in(self, event):
        count_check_in(self.db, event)

    @setting_timer("PERMITS_HEADCOUNT_SECONDS", 300)
    def presence_headcount(self):
        """Count the active employees per OPD in the directory replica (one pass) and keep
        the figures in ``presence`` ``headcount`` when they changed."""
        counts = headcount(self.db[EMPLOYEES].find({}, {"opd": 1, "status": 1}))
        kept = self.db[PRESENCE].find_one({"_id": HEADCOUNT}) or {}
        if kept.get("opds") != counts:
            try:
                self.db[PRESENCE].update_one(
                    {"_id": HEADCOUNT}, {"$set": {"opds": counts, "at": db_now()},
                                         "$inc": {"version": 1}}, upsert=True)
            except pymongo.errors.DuplicateKeyError:
                pass  # another replica's timer inserted it at the same moment: same figures
        return counts

    @setting_timer("PERMITS_PRESENCE_PURGE_SECONDS", 3600)
    def presence_purge(self):
        """Drop the day collections of claims older than ``PERMITS_PRESENCE_KEEP_DAYS``."""
        keep = int(self.config.get("PERMITS_PRESENCE_KEEP_DAYS", KEEP_DAYS))
        oldest = local_today(self.config) - timedelta(days=keep)
        dropped = []
        for name in self.db.list_collection_names():
            day = day_of_collection(name)
            if day is not None and day < oldest:
                self.db.drop_collection(name)
                dropped.append(name)
        if dropped:
            log.info("presence claims dropped: %s", ", ".join(sorted(dropped)))
        return dropped
