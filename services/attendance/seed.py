"""Demo attendance for ``make run`` (``pamong run --demo``): a month of the demo Pemda's
check-ins up to yesterday, so the reports show something true.

The launcher calls ``before_start(config)`` before it starts the attendance service, so the
day close (which catches up missed days on start) always finds the month's records already
there; a seed written after the start would race it and find yesterday closed as absent. The
directory replica may still be empty then, so the employees, units and offices come from
``services.directory.demo``'s generator (deterministic) rather than from the replica.

The month is closed by the service's own timer, and only once the replica holds every demo
employee: a close computes the employees its unit has *then*, so a tick while the directory's
events are still arriving would close a unit's days without the people on their way. On a
first run ``before_start`` puts each demo unit's close cursor on yesterday (nothing to close)
with the month's start beside it; ``seed`` (called by the launcher once the modules answer)
waits for the replica to hold the demo employees, then moves those cursors back to the day
before the month, and the next tick (``ATTENDANCE_CLOSE_INTERVAL_SECONDS``) closes the month.

Past days cannot go through the API (the server's clock decides a check-in, and an offline
upload is refused after 72 hours), so the seed writes what the service itself writes: day
documents shaped like
``records.write_record`` makes them (records and keys only: the day close computes the
results, catching up the missed days on start) and ``people`` documents with approved leave
and one assignment (dinas luar), by the same compare-and-set on ``version``.

Deterministic (a random generator per employee and day, seeded from both, so a run on another
day agrees on the days they share) and idempotent: a day document that exists is left alone,
and a leave or an assignment already there (by its id) is not added again.
"""

import random
import time as clock
from datetime import UTC, datetime, time, timedelta

import pymongo.errors

from pamong.replica import EMPLOYEES
from pamong.storage import by_ids, client_for, database_name
from services.attendance import domain
from services.attendance.store import CURSORS, DAYS, PEOPLE, Calendar, day_id
from services.directory import csvio
from services.directory.demo import demo_pemda

SEED = 3510
DAYS_BACK = 30  # a month up to yesterday
LATE_SHARE, EARLY_SHARE, ABSENT_SHARE, NO_CHECKOUT_SHARE = 0.12, 0.05, 0.01, 0.01
LATE_MINUTES = ((1, 30, 0.7), (31, 60, 0.2), (61, 90, 0.1))  # TL1-TL3 and their shares
EARLY_MINUTES = ((1, 30, 0.75), (31, 60, 0.25))  # PSW1-PSW2
DRIFT = timedelta(minutes=9)  # more than the default 300 s: flagged clock_drift
PEOPLE_ON_LEAVE, FLAGGED_PER_KIND = 6, 3
ASSIGNMENT_PLACE = {"name": "Kantor Gubernur Jawa Timur, Surabaya", "latitude": -7.2458,
                    "longitude": 112.7378, "radius_m": 200}
TIMEZONE = "Asia/Jakarta"  # the demo Pemda is WIB throughout
CAS_ATTEMPTS = 10


def before_start(config):
    """Write the demo month into the database of ``config`` (the service is not running)."""
    db = client_for(config["MONGO_URI"])[database_name(config, "attendance")]
    report = load(db)
    print(f"attendance demo: {report['days_written']} days written "
          f"({report['days_present']} already there), {report['people_changed']} people "
          f"with leave or an assignment added")
    return report


def load(db, today=None):
    """Write the demo month (``today`` excluded; default: today in WIB). Returns counts."""
    pemda = DemoPemda()
    today = today or datetime.now(domain.zone(TIMEZONE)).date()
    first, last = today - timedelta(days=DAYS_BACK), today - timedelta(days=1)
    calendar = Calendar(db, seconds=600)
    plan = pemda.plan(calendar, first, last)
    people_changed = sum(write_person(db, nip, pemda.unit_of[nip], entries)
                         for nip, entries in sorted(plan.items()))
    # what is stored decides who is away (a run on a later day keeps the first run's plan)
    people = by_ids(db[PEOPLE], pemda.active)
    docs = [doc for nip in pemda.active for doc in pemda.days_of(
        nip, calendar, first, last, people.get(nip, {}), plan.get(nip, {}).get("flag"))]
    present = by_ids(db[DAYS], [d["_id"] for d in docs], {"_id": 1})
    missing = [d for d in docs if d["_id"] not in present]
    for start in range(0, len(missing), 500):
        db[DAYS].insert_many(missing[start:start + 500], ordered=True)
    start_close_cursors(db, set(pemda.unit_of.values()), last, first - timedelta(days=1))
    return {"first": first, "last": last, "days_written": len(missing),
            "days_present": len(present), "people_changed": people_changed}


def start_close_cursors(db, units, yesterday, before_first):
    """A unit never closed gets its cursor on ``yesterday`` and ``demo_from`` on
    ``before_first`` (``release_month`` moves it there); a cursor already there is the
    service's and stays."""
    for unit in sorted(units):
        try:
            db[CURSORS].insert_one({"_id": unit, "last_closed": yesterday.isoformat(),
                                    "demo_from": before_first.isoformat()})
        except pymongo.errors.DuplicateKeyError:
            pass


def release_month(db):
    """Move each cursor ``start_close_cursors`` wrote back to ``demo_from`` (the next close
    tick closes the month), unless the service has moved it since. Returns how many moved."""
    moved = 0
    for cursor in list(db[CURSORS].find({"demo_from": {"$exists": True}})):
        moved += db[CURSORS].update_one(
            {"_id": cursor["_id"], "last_closed": cursor["last_closed"]},
            {"$set": {"last_closed": cursor["demo_from"]}, "$unset": {"demo_from": ""}},
        ).modified_count
    return moved


def seed(base_url, config, timeout=120.0):
    """After the start (the launcher): once the directory replica holds every demo employee,
    let the close timer close the demo month (see the module docstring)."""
    db = client_for(config["MONGO_URI"])[database_name(config, "attendance")]
    active = DemoPemda().active
    deadline = clock.monotonic() + timeout
    while len(by_ids(db[EMPLOYEES], active, {"_id": 1})) < len(active):
        if clock.monotonic() > deadline:
            print(f"attendance demo: the directory replica still lacks demo employees after "
                  f"{timeout:.0f} s; the month is not closed (check the directory module)")
            return 0
        clock.sleep(0.5)
    moved = release_month(db)
    if moved:
        print(f"attendance demo: the month closes at the next close tick ({moved} units)")
    return moved


class DemoPemda:
    """The demo Pemda's active employees, their offices and supervisors (from ``demo.py``)."""

    def __init__(self):
        files = demo_pemda()
        units = {u.record["code"]: u.record for u in csvio.parse("units", files["units"]).rows}
        positions = {p.record["id"]: p.record
                     for p in csvio.parse("positions", files["positions"]).rows}
        employees = [e.record for e in csvio.parse("employees", files["employees"]).rows]
        holder = {e["position"]: e["nip"] for e in employees
                  if e["status"] == "active" and e.get("position")}
        self.units = units
        self.active = sorted(e["nip"] for e in employees if e["status"] == "active")
        self.unit_of = {e["nip"]: e["unit"] for e in employees}
        self.supervisor = {}
        for e in employees:
            if e.get("supervisor"):
                self.supervisor[e["nip"]] = e["supervisor"]
                continue
            post = (positions.get(e.get("position")) or {}).get("superior")
            while post and post not in holder:  # a vacant post: the next one up decides
                post = positions[post]["superior"]
            self.supervisor[e["nip"]] = holder.get(post)

    def office(self, unit):
        for code in domain.unit_chain(unit):
            offices = (self.units.get(code) or {}).get("offices")
            if offices:
                return offices[0]
        raise ValueError(f"no office for {unit}")

    # -- who is away when ---------------------------------------------------------------------

    def plan(self, calendar, first, last):
        """``{nip: {"leaves": [...], "assignments": [...]}}``: a few approved leaves and one
        dinas luar in the month, and a few employees whose records get flagged."""
        rng = random.Random(f"{SEED}:plan")
        # staff with a supervisor to approve; heads of units stay in the office
        staff = [nip for nip in self.active if self.supervisor.get(nip)]
        chosen = rng.sample(staff, PEOPLE_ON_LEAVE + 1 + 2 * FLAGGED_PER_KIND)
        plan = {}
        for i, nip in enumerate(chosen[:PEOPLE_ON_LEAVE]):
            kind, length = ("CS", rng.randint(1, 3)) if i % 3 == 2 else ("CT", rng.randint(2, 4))
            days = self.workdays(calendar, nip, first, last)
            if len(days) <= length:
                continue
            start = rng.randrange(0, len(days) - length)
            plan[nip] = {"leaves": [self.leave(calendar, nip, kind, days[start],
                                               days[start + length - 1])]}
        nip = chosen[PEOPLE_ON_LEAVE]
        days = self.workdays(calendar, nip, first, last)
        start = days[len(days) // 2]
        plan[nip] = {"assignments": [self.assignment(nip, start, days[len(days) // 2 + 2])]}
        flagged = chosen[PEOPLE_ON_LEAVE + 1:]
        for i, nip in enumerate(flagged):
            plan.setdefault(nip, {})["flag"] = "mock_location" if i % 2 else "clock_drift"
        return plan

    def workdays(self, calendar, nip, first, last):
        unit = self.unit_of[nip]
        return domain.working_days(first, last, lambda d: calendar.settings(unit, d),
                                   {**calendar.holidays(unit, first.year),
                                    **calendar.holidays(unit, last.year)})

    def leave(self, calendar, nip, kind, start, end):
        requested = at_local(start - timedelta(days=3), time(9, 12))
        approver = self.supervisor[nip]
        return {"id": f"demo-leave-{nip}-{start.isoformat()}", "type": kind,
                "start": start.isoformat(), "end": end.isoformat(),
                "reason": {"CT": "Keperluan keluarga", "CS": "Sakit (surat keterangan dokter)"}[
                    kind],
                "working_days": len(self.workdays(calendar, nip, start, end)),
                "status": "approved", "approver": approver, "requested_at": requested,
                "decided_by": approver, "decided_at": requested + timedelta(hours=3),
                "note": None}

    def assignment(self, nip, start, end):
        return {"id": f"demo-assignment-{nip}-{start.isoformat()}", "start": start.isoformat(),
                "end": end.isoformat(), "place": dict(ASSIGNMENT_PLACE),
                "purpose": "Rapat koordinasi tingkat provinsi", "source": "manual",
                "letter": None, "status": "active", "created_by": self.supervisor[nip],
                "created_at": at_local(start - timedelta(days=5), time(10, 0))}

    # -- the records ----------------------------------------------------------------------

    def days_of(self, nip, calendar, first, last, person, flag):
        unit = self.unit_of[nip]
        opd = ".".join(unit.split(".")[:2]) if "." in unit else None
        office = self.office(unit)
        leaves = [x for x in person.get("leaves", ()) if x["status"] == "approved"]
        assignments = [a for a in person.get("assignments", ()) if a["status"] == "active"]
        for day in self.workdays(calendar, nip, first, last):
            iso = day.isoformat()
            if any(x["start"] <= iso <= x["end"] for x in leaves):
                continue  # on leave: no records
            assignment = next((a for a in assignments if a["start"] <= iso <= a["end"]), None)
            hours = domain.hours_on(calendar.settings(unit, day), day)
            rng = random.Random(f"{SEED}:{nip}:{iso}")
            records = day_records(rng, nip, day, hours, office, assignment, flag)
            if records:
                yield {"_id": day_id(nip, day), "nip": nip, "date": iso, "unit": unit,
                       "opd": opd, "records": records, "keys": [r["key"] for r in records]}


def day_records(rng, nip, day, hours, office, assignment, flag):
    """The day's check-in and check-out (either may be missing), as the service stores them."""
    if rng.random() < ABSENT_SHARE:
        return []
    start, end = hours.bounds(day, TIMEZONE)
    if rng.random() < LATE_SHARE:
        check_in = start + timedelta(minutes=pick(rng, LATE_MINUTES), seconds=rng.randint(0, 59))
    else:
        check_in = start - timedelta(minutes=rng.randint(1, 40), seconds=rng.randint(0, 59))
    check_out = None
    if rng.random() >= NO_CHECKOUT_SHARE:
        early = pick(rng, EARLY_MINUTES) if rng.random() < EARLY_SHARE else -rng.randint(0, 50)
        check_out = end - timedelta(minutes=early, seconds=rng.randint(0, 59))
    place = (dict(assignment["place"], kind="assignment") if assignment
             else dict(office, kind="office"))
    # a flagged employee gets the flag on some days only
    flagged = flag if flag and rng.random() < 0.3 else None
    device = f"demo-{nip[-6:]}"
    out = []
    for kind, local in (("in", check_in), ("out", check_out)):
        if local is not None:
            out.append(record(rng, nip, day, kind, local, place, device, flagged))
    return out


def record(rng, nip, day, kind, local, place, device, flag):
    at = local.astimezone(UTC).replace(microsecond=rng.randrange(0, 1000) * 1000)
    device_at = at + (DRIFT if flag == "clock_drift"
                      else timedelta(seconds=rng.randint(-20, 20)))
    # a few metres to a few tens of metres from the place, well inside its radius
    latitude = place["latitude"] + rng.uniform(-0.0002, 0.0002)
    longitude = place["longitude"] + rng.uniform(-0.0002, 0.0002)
    accuracy = float(rng.choice((4, 6, 8, 10, 12, 15, 20, 25)))
    reading = {"latitude": latitude, "longitude": longitude, "accuracy_m": accuracy,
               "at": at, "device_at": device_at, "mock": flag == "mock_location"}
    fence = domain.geofence(latitude, longitude, accuracy, [place])
    return {"key": f"demo-{nip}-{day.isoformat()}-{kind}", "kind": kind, "at": at,
            "received_at": at + timedelta(milliseconds=rng.randint(40, 900)),
            "device_at": device_at, "latitude": latitude, "longitude": longitude,
            "accuracy_m": accuracy, "device_id": device, "mock": reading["mock"],
            "place": place["name"], "place_kind": place["kind"],
            "distance_m": round(fence["distance_m"], 1), "radius_m": place["radius_m"],
            "flags": domain.record_flags(reading, None), "offline": False}


def pick(rng, brackets):
    """Minutes in one of ``(low, high, share)``, chosen by share."""
    roll = rng.random()
    for low, high, share in brackets:
        if roll < share:
            return rng.randint(low, high)
        roll -= share
    return rng.randint(brackets[-1][0], brackets[-1][1])


def at_local(day, clock):
    return datetime.combine(day, clock, tzinfo=domain.zone(TIMEZONE)).astimezone(UTC)


def write_person(db, nip, unit, entries):
    """Add the planned leaves and assignments to the employee's ``people`` document, by
    compare-and-set on ``version``, unless the seed gave them one of that kind before (on
    another day: its days are written already). True when something was added."""
    wanted = {k: entries.get(k, []) for k in ("leaves", "assignments")}
    if not any(wanted.values()):
        return False
    for _ in range(CAS_ATTEMPTS):
        doc = db[PEOPLE].find_one({"_id": nip})
        if doc is None:
            try:
                db[PEOPLE].insert_one({"_id": nip, "unit": unit, "version": 1, "leaves": [],
                                       "assignments": [], "corrections": [], **wanted})
            except pymongo.errors.DuplicateKeyError:
                continue  # created meanwhile (a request through the API): re-read
            return True
        missing = {k: v for k, v in wanted.items()
                   if not any(y["id"].startswith("demo-") for y in doc.get(k, ()))}
        missing = {k: v for k, v in missing.items() if v}
        if not missing:
            return False
        if db[PEOPLE].update_one(
                {"_id": nip, "version": doc["version"]},
                {"$push": {k: {"$each": v} for k, v in missing.items()},
                 "$inc": {"version": 1}}).matched_count:
            return True
    raise RuntimeError(f"the people document of {nip} kept changing; run the seed again")

