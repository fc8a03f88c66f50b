"""Closing a unit's day against the real broker and database: results of every active
employee, counts and one ``day_closed``, the unit's own time zone, re-runs, two replica
processes, a dead closer's lease, the timer catching up a missed close, outages, the PP 94/2021
threshold at the 3rd absence, and who may close and read.

Past days: a check-in is always judged at the server's *now*, and today has not ended, so
records of a past day cannot come through the HTTP endpoint. These tests insert the past
day documents exactly as ``records.write_record`` stores them (``past_day``), and say so.
"""

import uuid
from datetime import UTC, datetime, time, timedelta

import holidays
import pytest
from nameko.containers import ServiceContainer

from pamong.testing import EventRecorder, HttpClient, free_port, race, wait_until
from services.attendance.domain import zone
from tests.integration.attendance_support import (
    API,
    NEAR,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    NIP_WITA,
    OFFICE,
    token,
)

pytestmark = pytest.mark.integration
BIDANG = "3510.03.01"
WIB = "Asia/Jakarta"


def today(tz=WIB):
    return datetime.now(UTC).astimezone(zone(tz)).date()


def last_workdays(n, tz=WIB):
    """The ``n`` most recent days before today that are Monday-Friday and no national
    holiday, newest first."""
    found, day = [], today(tz) - timedelta(days=1)
    national = holidays.Indonesia(years=[day.year - 1, day.year])
    while len(found) < n:
        if day.isoweekday() <= 5 and day not in national:
            found.append(day)
        day -= timedelta(days=1)
    return found


def local(day, clock, tz=WIB):
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=zone(tz)).astimezone(UTC)


def past_day(db, nip, unit, day, records, tz=WIB, flags=()):
    """A past day document shaped as ``records.write_record`` writes it."""
    opd = ".".join(unit.split(".")[:2])
    stored = []
    for kind, clock in records:
        at = local(day, clock, tz)
        stored.append({"key": uuid.uuid4().hex, "kind": kind, "at": at, "received_at": at,
                       "device_at": at, "latitude": NEAR[0], "longitude": NEAR[1],
                       "accuracy_m": 10.0, "device_id": f"dev-{nip[-4:]}", "mock": False,
                       "place": OFFICE["name"], "place_kind": "office", "distance_m": 5.0,
                       "radius_m": 100, "flags": list(flags), "offline": False})
    db.days.insert_one({"_id": f"{nip}:{day.isoformat()}", "nip": nip, "date": day.isoformat(),
                        "unit": unit, "opd": opd, "records": stored,
                        "keys": [r["key"] for r in stored]})


def admin(client):
    return token(client, roles=("admin",), opd="3510")


def close(client, unit, day, tok=None):
    return client.request("POST", f"{API}/units/{unit}/days/{day.isoformat()}/close",
                          token=tok or admin(client))


def result_of(db, nip, day):
    return (db.days.find_one({"_id": f"{nip}:{day.isoformat()}"}) or {}).get("result")


def approved_leave(db, nip, day, kind="CT"):
    db.people.insert_one({"_id": nip, "unit": BIDANG, "version": 1, "leaves": [
        {"id": "lv-1", "type": kind, "start": day.isoformat(), "end": day.isoformat(),
         "reason": "keluarga", "working_days": 1, "status": "approved", "approver": NIP_KABID,
         "requested_at": datetime.now(UTC), "decided_by": NIP_KABID,
         "decided_at": datetime.now(UTC), "note": None}]})


@pytest.fixture
def recorder(config):
    rec = EventRecorder(config, "attendance")
    yield rec
    rec.close()


def test_closing_a_unit_judges_every_active_employee(attendance, recorder):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    past_day(db, NIP_STAFF, BIDANG, day, [("in", "08:10"), ("out", "17:00")])  # 40 min: TL2
    approved_leave(db, NIP_STAFF2, day)  # and the kabid has no record: absent
    r = close(client, BIDANG, day)
    assert r.status_code == 200, r.text
    counts = r.json()["counts"]
    assert (counts["employees"], counts["present"], counts["late"], counts["absent"],
            counts["leave"], counts["on_time"]) == (3, 1, 1, 1, 1, 0)
    assert r.json()["state"] == "closed" and r.json()["revision"] == 0
    staff = result_of(db, NIP_STAFF, day)
    assert staff["status"] == "present" and staff["codes"] == ["TL2"]
    assert staff["late_minutes"] == 40 and staff["deduction"] == "1"
    assert result_of(db, NIP_KABID, day)["status"] == "absent"  # a day document was created
    assert result_of(db, NIP_STAFF2, day)["leave_type"] == "CT"
    assert db.people.find_one({"_id": NIP_KABID})["absences"][str(day.year)] == [
        day.isoformat()]
    events = wait_until(lambda: recorder.of("attendance.day_closed"), timeout=15)
    assert events[0]["data"]["unit"] == BIDANG and events[0]["data"]["counts"] == counts
    # run again: the same results, nothing new published
    again = close(client, BIDANG, day)
    assert again.status_code == 200 and again.json()["counts"] == counts
    # the relay pulls the entry after the broker confirmed it: a consumer may see it first
    wait_until(lambda: not db.closes.find_one(
        {"_id": f"{BIDANG}:{day.isoformat()}"}).get("_outbox"), timeout=15)
    assert result_of(db, NIP_STAFF, day)["closed_at"] == staff["closed_at"]
    wait_until(lambda: recorder.of("attendance.checked_in") == [] and len(
        recorder.of("attendance.day_closed")) == 1)
    assert db.close_cursor.find_one({"_id": BIDANG})["last_closed"] == day.isoformat()
    # the unit's day as readers see it
    page = client.request("GET", f"{API}/units/{BIDANG}/days/{day.isoformat()}?limit=2",
                          token=token(client, roles=("opd_admin",), opd="3510.03")).json()
    assert [i["nip"] for i in page["items"]] == sorted([NIP_STAFF, NIP_KABID, NIP_STAFF2])[:2]
    rest = client.request("GET", f"{API}/units/{BIDANG}/days/{day.isoformat()}?limit=2&"
                                 f"cursor={page['next_cursor']}", token=admin(client)).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


def test_a_regional_holiday_closes_as_holiday(attendance):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    db.calendar.insert_one({"_id": "regional", "days": [
        {"date": day.isoformat(), "name": "Hari Jadi Banyuwangi", "kind": "regional",
         "unit": "3510.04"}]})
    r = close(client, "3510.04", day)
    assert r.status_code == 200 and r.json()["counts"]["holiday"] == 1
    assert result_of(db, NIP_OTHER, day)["holiday"]["name"] == "Hari Jadi Banyuwangi"


def test_an_outage_window_excuses_lateness(attendance):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    db.outages.insert_one({"_id": uuid.uuid4().hex, "unit": "3510.03",
                           "start": local(day, "06:30"), "end": local(day, "09:30"),
                           "reason": "server down", "declared_by": "admin-1",
                           "declared_at": datetime.now(UTC), "cancelled": False})
    past_day(db, NIP_STAFF, BIDANG, day, [("in", "09:05"), ("out", "17:00")])
    assert close(client, BIDANG, day).status_code == 200
    staff = result_of(db, NIP_STAFF, day)
    assert staff["status"] == "present" and staff["codes"] == [] and staff["deduction"] == "0"
    assert staff["excused"] == ["check-in"] and staff["late_minutes"] == 95


def test_a_wita_unit_closes_at_its_own_midnight(attendance):
    client, db = attendance.client, attendance.db
    wita_today = today("Asia/Makassar")
    refused = close(client, "3510.09", wita_today)
    assert refused.status_code == 409
    midnight = datetime.combine(wita_today + timedelta(days=1), time(0),
                                tzinfo=zone("Asia/Makassar"))
    assert midnight.isoformat() in refused.json()["detail"]
    assert db.closes.count_documents({}) == 0
    day = last_workdays(1, "Asia/Makassar")[0]
    # 07:30 WITA is 06:30 WIB: judged on the unit's clock, on time
    past_day(db, NIP_WITA, "3510.09", day, [("in", "07:30"), ("out", "16:40")],
             tz="Asia/Makassar")
    r = close(client, "3510.09", day)
    assert r.status_code == 200 and r.json()["counts"]["on_time"] == 1
    assert result_of(db, NIP_WITA, day)["codes"] == []


def test_bad_input_and_who_may_close_and_read(attendance):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    bad = client.request("POST", f"{API}/units/{BIDANG}/days/2026-13-01/close",
                         token=admin(client))
    assert bad.status_code == 422 and "day" in bad.json()["errors"]
    assert close(client, "3510.77", day).status_code == 404  # no such unit
    denied = {token(client, NIP_STAFF): 403,  # pegawai
              token(client, NIP_KABID, roles=("pimpinan",), opd="3510.03.01"): 403,
              token(client, roles=("opd_admin",), opd="3510.04"): 404}  # another OPD
    for tok, status in denied.items():
        assert close(client, BIDANG, day, tok).status_code == status
    assert client.request("POST", f"{API}/units/{BIDANG}/days/{day}/close").status_code == 401
    assert db.closes.count_documents({}) == 0
    assert close(client, BIDANG, day, token(client, roles=("opd_admin",),
                                            opd="3510.03")).status_code == 200
    path = f"{API}/units/{BIDANG}/days/{day.isoformat()}"
    for tok in (token(client, roles=("verifikator",), opd="3510.03"),
                token(client, NIP_KABID, roles=("pimpinan",), opd="3510.03.01"), admin(client)):
        assert client.request("GET", path, token=tok).status_code == 200
    for tok in (token(client, NIP_OTHER, roles=("pimpinan",), opd="3510.04"),
                token(client, roles=("opd_admin",), opd="3510.04")):
        assert client.request("GET", path, token=tok).status_code == 404
    assert client.request("GET", path, token=token(client, NIP_STAFF)).status_code == 403
    open_day = client.request("GET", f"{API}/units/{BIDANG}/days/{today().isoformat()}",
                              token=admin(client)).json()
    assert open_day["state"] == "open" and open_day["counts"] is None


def test_concurrent_closes_close_once(attendance, recorder):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    past_day(db, NIP_STAFF, BIDANG, day, [("in", "07:00"), ("out", "17:00")])
    responses = race(range(6), lambda _: close(client, BIDANG, day))
    assert {r.status_code for r in responses} == {200}
    assert len({str(r.json()["counts"]) for r in responses}) == 1
    wait_until(lambda: recorder.of("attendance.day_closed"), timeout=15)
    assert db.closes.find_one({"_id": f"{BIDANG}:{day.isoformat()}"})["runs"] == 1
    assert len(recorder.of("attendance.day_closed")) == 1


def test_a_dead_closers_lease_runs_out_and_the_next_run_finishes(attendance, recorder):
    client, db = attendance.client, attendance.db
    attendance.config["ATTENDANCE_CLOSE_LEASE_SECONDS"] = 1
    day = last_workdays(1)[0]
    past_day(db, NIP_STAFF, BIDANG, day, [("in", "07:00"), ("out", "17:00")])
    at = datetime.now(UTC).replace(microsecond=0)
    # a closer died half-way: the close claimed, one stale result written, nothing published
    db.closes.insert_one({"_id": f"{BIDANG}:{day.isoformat()}", "unit": BIDANG,
                          "opd": "3510.03", "date": day.isoformat(), "state": "closing",
                          "owner": "dead-replica", "lease_until": at + timedelta(seconds=1),
                          "started_at": at, "revision": 0, "dirty": [], "dirty_n": 0,
                          "runs": 1, "history": []})
    db.days.update_one({"_id": f"{NIP_STAFF}:{day.isoformat()}"}, {"$set": {"result": {
        "status": "absent", "codes": [], "revision": 0, "closed_at": at}}})
    r = close(client, BIDANG, day)  # waits for the lease to run out, then takes over
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["present"] == 1
    assert result_of(db, NIP_STAFF, day)["status"] == "present"
    assert db.closes.find_one({"_id": f"{BIDANG}:{day.isoformat()}"})["runs"] == 2
    wait_until(lambda: len(recorder.of("attendance.day_closed")) == 1, timeout=15)


def test_two_replica_processes_close_one_unit_day_once(config, recorder):
    from pamong.testing import serve_process
    from tests.integration.attendance_support import seed_directory

    ports = [free_port(), free_port()]
    env = {"DIRECTORY_SNAPSHOT_ON_EMPTY": "false", "ATTENDANCE_CONFIG_CACHE_SECONDS": "0",
           "ATTENDANCE_CLOSE_INTERVAL_SECONDS": "0"}
    processes = [serve_process(config, "attendance", port, **env) for port in ports]
    try:
        db = seed_directory(config)
        day = last_workdays(1)[0]
        past_day(db, NIP_STAFF, BIDANG, day, [("in", "07:45"), ("out", "17:00")])
        clients = [HttpClient(f"http://127.0.0.1:{port}", config) for port in ports]
        responses = race(clients * 3, lambda c: close(c, BIDANG, day))
        assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
        assert {r.json()["counts"]["late"] for r in responses} == {1}
        wait_until(lambda: recorder.of("attendance.day_closed"), timeout=20)
        assert len(recorder.of("attendance.day_closed")) == 1
        assert db.closes.count_documents({}) == 1
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def test_the_timer_catches_up_missed_closes_on_start(attendance, config, recorder):
    from services.attendance.service import AttendanceService

    db = attendance.db
    yesterday = today() - timedelta(days=1)
    # the service was down: the bidang was last closed three days ago
    db.close_cursor.insert_one({"_id": BIDANG,
                                "last_closed": (yesterday - timedelta(days=2)).isoformat()})
    missed = [yesterday - timedelta(days=1), yesterday]
    settings = {**attendance.config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
                "ATTENDANCE_CLOSE_INTERVAL_SECONDS": 3600}
    container = ServiceContainer(AttendanceService, settings)
    container.start()
    try:
        wait_until(lambda: (db.close_cursor.find_one({"_id": BIDANG}) or {}).get(
            "last_closed") == yesterday.isoformat(), timeout=30, message="caught up")
        for day in missed:
            doc = db.closes.find_one({"_id": f"{BIDANG}:{day.isoformat()}"})
            assert doc["state"] == "closed" and doc["closed_by"] == "timer"
            assert doc["counts"]["employees"] == 3
        # a unit never closed starts yesterday (ATTENDANCE_FIRST_DAY unset)
        wait_until(lambda: (db.close_cursor.find_one({"_id": "3510.04"}) or {}).get(
            "last_closed") == yesterday.isoformat(), timeout=30)
        assert db.closes.find_one({"_id": f"3510.04:{missed[0].isoformat()}"}) is None
        def bidang_closed():
            found = [e for e in recorder.of("attendance.day_closed")
                     if e["data"]["unit"] == BIDANG]
            return found if len(found) == 2 else None

        closed = wait_until(bidang_closed, timeout=20)
        assert sorted(e["data"]["date"] for e in closed) == [d.isoformat() for d in missed]
    finally:
        container.stop()


def test_the_third_absence_reaches_the_oral_warning_once(attendance, recorder):
    client, db = attendance.client, attendance.db
    days = last_workdays(3)
    for day in days:  # the kabid never came; the staff did
        for nip in (NIP_STAFF, NIP_STAFF2):
            past_day(db, nip, BIDANG, day, [("in", "07:00"), ("out", "17:00")])
    for day in days[:2]:
        assert close(client, BIDANG, day).status_code == 200
    assert recorder.of("attendance.absence_threshold_reached") == []
    assert close(client, BIDANG, days[2]).status_code == 200
    events = wait_until(lambda: recorder.of("attendance.absence_threshold_reached"),
                        timeout=15)
    assert [(e["data"]["nip"], e["data"]["level"], e["data"]["days"]) for e in events] == [
        (NIP_KABID, "oral_warning", 3)]
    assert events[0]["data"]["text_id"] == "teguran lisan"
    # closing again (a re-run, a redelivered trigger) reaches nothing new
    for day in days:
        assert close(client, BIDANG, day).status_code == 200
    listed = db.people.find_one({"_id": NIP_KABID})["absences"]
    assert sum(len(v) for v in listed.values()) == 3
    wait_until(lambda: len(recorder.of("attendance.day_closed")) == 3, timeout=15)
    assert len(recorder.of("attendance.absence_threshold_reached")) == 1
    assert NIP_HEAD not in str(recorder.of("attendance.absence_threshold_reached"))
