"""The demo month (``services/attendance/seed.py``) against a real database: what the reports
need is there and true to the rules, and a second run changes nothing."""

from collections import Counter
from datetime import date, timedelta

from pamong.launcher import prepare_demo
from pamong.storage import client_for, database_name
from services.attendance import domain
from services.attendance.seed import TIMEZONE, DemoPemda, before_start, seed
from services.attendance.store import Calendar


def snapshot(db):
    return {name: sorted(db[name].find({}), key=lambda d: d["_id"])
            for name in ("days", "people", "close_cursor")}


def test_demo_month_is_realistic_and_idempotent(config):
    db = client_for(config["MONGO_URI"])[database_name(config, "attendance")]
    report = before_start(config)
    pemda = DemoPemda()
    calendar = Calendar(db)
    days = list(db.days.find({}))
    people = {p["_id"]: p for p in db.people.find({})}
    assert days and report["days_written"] == len(days)

    # the day documents are those the service writes: records and keys, no result yet
    statuses, flags, places = Counter(), Counter(), Counter()
    for doc in days:
        nip, day = doc["nip"], date.fromisoformat(doc["date"])
        assert doc["_id"] == f"{nip}:{doc['date']}" and nip in pemda.active
        assert doc["unit"] == pemda.unit_of[nip] and "result" not in doc
        assert report["first"] <= day <= report["last"]
        assert doc["keys"] == [r["key"] for r in doc["records"]]
        settings = calendar.settings(doc["unit"], day)
        hours = domain.hours_on(settings, day)
        assert hours is not None and day not in calendar.holidays(doc["unit"], day.year)
        for r in doc["records"]:
            assert r["distance_m"] <= r["radius_m"] and r["accuracy_m"] <= r["radius_m"]
            assert r["at"] <= r["received_at"]
            flags.update(r["flags"])
            places[r["place_kind"]] += 1
        by_kind = {r["kind"]: r["at"] for r in doc["records"]}
        result = domain.day_status(day, hours, TIMEZONE, check_in=by_kind.get("in"),
                                   check_out=by_kind.get("out"), settings=settings)
        statuses[result["status"]] += 1
        statuses.update(result["codes"])
        if not result["codes"]:
            statuses["on_time"] += 1

    # most on time, some late in several brackets, a few early leaves
    assert statuses["on_time"] > 0.7 * len(days)
    assert statuses["TL1"] and statuses["TL2"] + statuses["TL3"] and statuses["PSW1"]
    # a few flagged records of each kind, never most of them
    records = sum(len(d["records"]) for d in days)
    assert flags["mock_location"] and flags["clock_drift"]
    assert flags["mock_location"] + flags["clock_drift"] < 0.05 * records

    # approved leave: its working days carry no record; one dinas luar recorded at its place
    leaves = [(nip, leave) for nip, p in people.items() for leave in p.get("leaves", ())]
    assert leaves and all(leave["status"] == "approved" for _, leave in leaves)
    by_id = {d["_id"] for d in days}
    for nip, leave in leaves:
        assert leave["approver"] not in (None, nip) and leave["type"] in domain.LEAVE_TYPES
        start, end = date.fromisoformat(leave["start"]), date.fromisoformat(leave["end"])
        unit = pemda.unit_of[nip]
        assert leave["working_days"] == len(domain.working_days(
            start, end, lambda d, unit=unit: calendar.settings(unit, d),
            calendar.holidays(unit, start.year)))
        assert not any(f"{nip}:{(start + timedelta(k)).isoformat()}" in by_id
                       for k in range((end - start).days + 1))
    assignments = [a for p in people.values() for a in p.get("assignments", ())]
    assert len(assignments) == 1 and assignments[0]["status"] == "active"
    assert places["assignment"] and places["office"] > 10 * places["assignment"]
    assert all(p["version"] >= 1 and p["unit"] == pemda.unit_of[p["_id"]]
               for p in people.values())

    # every demo unit's close waits on yesterday until `seed` releases the month; a cursor
    # the service moved is the service's
    cursors = {c["_id"]: c for c in db.close_cursor.find({})}
    assert set(cursors) == set(pemda.unit_of.values())
    assert {(c["last_closed"], c["demo_from"]) for c in cursors.values()} == {
        (report["last"].isoformat(), (report["first"] - timedelta(days=1)).isoformat())}
    moved = sorted(cursors)[0]
    db.close_cursor.update_one({"_id": moved},
                               {"$set": {"last_closed": report["first"].isoformat()}})

    # a second run changes nothing
    before = snapshot(db)
    again = before_start(config)
    assert again["days_written"] == 0 and again["people_changed"] == 0
    assert snapshot(db) == before


def test_the_launcher_writes_the_month_first_and_it_closes_once_the_replica_is_full(config):
    """``pamong run --demo``: ``prepare_demo`` writes the month before the modules start;
    ``seed`` releases it to the close timer only once the directory replica holds every demo
    employee (a close while the replica fills would leave the late ones' days unclosed)."""
    db = client_for(config["MONGO_URI"])[database_name(config, "attendance")]
    prepare_demo(["directory", "attendance"], config)
    pemda = DemoPemda()
    units = set(pemda.unit_of.values())
    assert db.days.count_documents({}) > 20 * len(pemda.active) * 0.5
    waiting = {c["_id"]: c for c in db.close_cursor.find({})}
    assert set(waiting) == units and all("demo_from" in c for c in waiting.values())

    # the replica is still filling: nothing released
    db.employees.insert_many([{"_id": nip} for nip in pemda.active[:-1]])
    assert seed(None, config, timeout=1.5) == 0
    assert {c["_id"]: c for c in db.close_cursor.find({})} == waiting

    # every demo employee is in: each unit's close starts the day before the month
    db.employees.insert_one({"_id": pemda.active[-1]})
    assert seed(None, config, timeout=5) == len(units)
    released = {c["_id"]: c for c in db.close_cursor.find({})}
    assert {c["last_closed"] for c in released.values()} == {
        c["demo_from"] for c in waiting.values()}
    assert not any("demo_from" in c for c in released.values())
    assert seed(None, config, timeout=5) == 0  # once
