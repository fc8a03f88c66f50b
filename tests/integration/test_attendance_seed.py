"""The demo month (``services/attendance/seed.py``) against a real database: what the reports
need is there and true to the rules, and a second run changes nothing."""

from collections import Counter
from datetime import date, timedelta

from pamong.storage import client_for, database_name
from services.attendance import domain
from services.attendance.seed import TIMEZONE, DemoPemda, before_start
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

    # the close starts at the month's first day in every demo unit; a cursor the service
    # moved is the service's
    cursors = {c["_id"]: c["last_closed"] for c in db.close_cursor.find({})}
    assert set(cursors) == set(pemda.unit_of.values())
    assert set(cursors.values()) == {(report["first"] - timedelta(days=1)).isoformat()}
    moved = sorted(cursors)[0]
    db.close_cursor.update_one({"_id": moved},
                               {"$set": {"last_closed": report["first"].isoformat()}})

    # a second run changes nothing
    before = snapshot(db)
    again = before_start(config)
    assert again["days_written"] == 0 and again["people_changed"] == 0
    assert snapshot(db) == before
