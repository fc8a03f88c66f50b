"""Corrections against the real broker and database: request rules, one open correction per
day, only the supervisor (or the Plt of the supervisor's position) decides, an approval
revising a closed day (``day_revised`` with the unit's counts), repeats and races.

The corrected day is a past one, closed before the correction: its records (none here) cannot
come through the check-in endpoint (it judges at the server's now), see
test_attendance_closing.py."""

from datetime import UTC, datetime, timedelta

import pytest
from nameko.containers import ServiceContainer

from pamong.testing import EventRecorder, free_port, race, wait_until
from tests.integration.attendance_support import (
    API,
    NIP_HEAD,
    NIP_KABID,
    NIP_STAFF,
    NIP_STAFF2,
    publish_directory,
    token,
)
from tests.integration.test_attendance_closing import (
    BIDANG,
    admin,
    close,
    last_workdays,
    result_of,
    today,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def recorder(config):
    rec = EventRecorder(config, "attendance")
    yield rec
    rec.close()


def ask(client, nip=NIP_STAFF, key=None, **body):
    headers = {"Idempotency-Key": key} if key else {}
    return client.request("POST", f"{API}/corrections", token=token(client, nip),
                          headers=headers, json=body)


def body_for(day, check_in="07:25", check_out="16:45", reason="HP rusak, lupa presensi"):
    return {"date": day.isoformat(), "check_in": check_in, "check_out": check_out,
            "reason": reason}


def decide(client, nip, correction_id, tok, decision="approved", note=None):
    return client.request("POST", f"{API}/corrections/{nip}/{correction_id}/decision",
                          token=tok, json={"decision": decision, "note": note})


def kabid(client):
    return token(client, NIP_KABID, roles=("pimpinan",), opd="3510.03.01")


def test_bad_requests_change_nothing(attendance):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    cases = [({**body_for(day), "check_in": None, "check_out": None}, "check_in"),
             (body_for(today() + timedelta(days=1)), "date"),
             (body_for(today() - timedelta(days=31)), "date"),
             (body_for(day, check_in="7:5"), "check_in"),
             (body_for(day, check_in="16:00", check_out="08:00"), "check_out"),
             ({**body_for(day), "extra": 1}, "extra")]
    for body, field in cases:
        r = ask(client, **body)
        assert r.status_code == 422 and field in r.json()["errors"], (body, r.text)
    assert db.people.count_documents({"corrections": {"$exists": True}}) == 0
    assert ask(client, NIP_STAFF, key="bad key!", **body_for(day)).status_code == 400


def test_one_open_correction_per_day_and_repeats(attendance):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    first = ask(client, key="corr-key-0001", **body_for(day))
    assert first.status_code == 201, first.text
    assert first.json()["approver"] == NIP_KABID and first.json()["status"] == "requested"
    again = ask(client, key="corr-key-0001", **body_for(day))
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = ask(client, key="corr-key-0002", **body_for(day, check_in="07:00"))
    assert other.status_code == 409 and first.json()["id"] in other.json()["detail"]
    # concurrent requests for another day: one wins, the others see it
    day2 = last_workdays(2)[1]
    responses = race(range(5), lambda i: ask(client, key=f"raced-key-{i:04d}",
                                             **body_for(day2)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    person = db.people.find_one({"_id": NIP_STAFF})
    assert len(person["corrections"]) == 2
    listed = client.request("GET", f"{API}/corrections/{NIP_STAFF}", token=kabid(client))
    assert [c["date"] for c in listed.json()["items"]] == [day.isoformat(), day2.isoformat()]


def test_an_approved_correction_revises_the_closed_day(attendance, recorder):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    assert close(client, BIDANG, day).json()["counts"]["absent"] == 3
    assert day.isoformat() in db.people.find_one({"_id": NIP_STAFF})["absences"][
        str(day.year)]
    asked = ask(client, **body_for(day)).json()
    pending = client.request("GET", f"{API}/corrections/pending", token=kabid(client))
    assert [c["id"] for c in pending.json()["items"]] == [asked["id"]]
    r = decide(client, NIP_STAFF, asked["id"], kabid(client), note="ok")
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["decided_by"] == NIP_KABID
    result = result_of(db, NIP_STAFF, day)
    assert result["status"] == "present" and result["codes"] == [] and result["revision"] == 1
    doc = db.days.find_one({"_id": f"{NIP_STAFF}:{day.isoformat()}"})
    assert doc["correction"]["id"] == asked["id"] and doc["correction"]["check_out"] is not None
    assert "revising" not in doc and doc["revisions"][0]["before"] == "absent"
    assert day.isoformat() not in db.people.find_one({"_id": NIP_STAFF})["absences"][
        str(day.year)]
    revised = wait_until(lambda: recorder.of("attendance.day_revised"), timeout=15)
    data = revised[0]["data"]
    assert (data["nip"], data["before"], data["after"], data["reason"]) == (
        NIP_STAFF, "absent", "present", "correction")
    assert data["counts"]["absent"] == 2 and data["counts"]["present"] == 1
    assert data["revision"] == 1
    decided = wait_until(lambda: recorder.of("attendance.correction_decided"), timeout=15)
    assert decided[0]["data"]["decision"] == "approved"
    # the same decision again (a retry that lost its answer): same answer, nothing new
    again = decide(client, NIP_STAFF, asked["id"], kabid(client), note="ok")
    assert again.status_code == 200 and again.json() == r.json()
    assert decide(client, NIP_STAFF, asked["id"], kabid(client), "rejected",
                  "no").status_code == 409
    unit_day = client.request("GET", f"{API}/units/{BIDANG}/days/{day.isoformat()}",
                              token=admin(client)).json()
    assert unit_day["revision"] == 1 and unit_day["counts"] == data["counts"]
    wait_until(lambda: len(recorder.of("attendance.day_closed")) == 1, timeout=15)
    assert len(recorder.of("attendance.day_revised")) == 1
    assert len(recorder.of("attendance.correction_decided")) == 1
    # the relay pulls the entry after the broker confirmed it: a consumer may see it first
    wait_until(lambda: not db.closes.find_one(
        {"_id": f"{BIDANG}:{day.isoformat()}"}).get("_outbox"), timeout=15)
    assert db.revisions_due.count_documents({}) == 0  # the note is gone once revised


def test_a_revision_left_by_a_dead_process_is_finished_by_the_tick(attendance, config,
                                                                      recorder):
    """A process that approved a correction and died before applying it to the closed day
    (the people document says approved, the day knows nothing) leaves its note; the next
    close tick applies the correction and revises the day. The state is written as that
    process leaves it: the note first, then the decision, nothing after."""
    from services.attendance.service import AttendanceService

    client, db = attendance.client, attendance.db
    day, other = last_workdays(2)
    assert close(client, BIDANG, day).json()["counts"]["absent"] == 3
    asked = ask(client, **body_for(day)).json()
    stale = datetime.now(UTC) - timedelta(minutes=10)
    db.revisions_due.insert_many([
        {"_id": f"{NIP_STAFF}:{day}:{day}:correction", "nip": NIP_STAFF, "start": str(day),
         "end": str(day), "reason": "correction", "correction": asked["id"], "at": stale},
        # a change that never happened (died before its write): revises nothing
        {"_id": f"{NIP_STAFF2}:{day}:{day}:leave", "nip": NIP_STAFF2, "start": str(day),
         "end": str(day), "reason": "leave", "correction": None, "at": stale},
        # a request still running (a young note): left alone
        {"_id": f"{NIP_KABID}:{other}:{other}:leave", "nip": NIP_KABID, "start": str(other),
         "end": str(other), "reason": "leave", "correction": None,
         "at": datetime.now(UTC)}])
    db.people.update_one({"_id": NIP_STAFF}, {"$set": {
        "corrections.0.status": "approved", "corrections.0.decided_by": NIP_KABID,
        "corrections.0.decided_at": stale, "corrections.0.note": "ok"}})
    assert result_of(db, NIP_STAFF, day)["status"] == "absent"

    settings = {**attendance.config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}",
                "ATTENDANCE_CLOSE_INTERVAL_SECONDS": 3600}  # ticks once, at start
    container = ServiceContainer(AttendanceService, settings)
    container.start()
    try:
        wait_until(lambda: db.revisions_due.count_documents({}) == 1, timeout=30,
                   message="the stale notes finished")
    finally:
        container.stop()
    doc = db.days.find_one({"_id": f"{NIP_STAFF}:{day.isoformat()}"})
    assert doc["correction"]["id"] == asked["id"]
    assert doc["result"]["status"] == "present" and doc["result"]["revision"] == 1
    assert result_of(db, NIP_STAFF2, day)["status"] == "absent"
    assert result_of(db, NIP_STAFF2, day).get("revision", 0) == 0
    assert [n["_id"] for n in db.revisions_due.find()] == [
        f"{NIP_KABID}:{other}:{other}:leave"]
    revised = wait_until(lambda: recorder.of("attendance.day_revised"), timeout=15)
    assert [(e["data"]["nip"], e["data"]["after"]) for e in revised] == [
        (NIP_STAFF, "present")]


def test_a_correction_of_a_day_not_closed_is_used_by_the_close(attendance):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    asked = ask(client, NIP_STAFF2, **body_for(day, check_in="08:15", check_out=None)).json()
    assert decide(client, NIP_STAFF2, asked["id"], kabid(client)).status_code == 200
    assert db.closes.count_documents({}) == 0
    close(client, BIDANG, day)
    result = result_of(db, NIP_STAFF2, day)
    assert result["status"] == "present" and result["codes"] == ["TL2", "PSW4"]


def test_only_the_supervisor_or_the_plt_decides(attendance, config):
    client, db = attendance.client, attendance.db
    day = last_workdays(1)[0]
    asked = ask(client, **body_for(day)).json()
    not_visible = [token(client, NIP_STAFF2),  # a colleague
                   token(client, roles=("opd_admin",), opd="3510.04")]
    for tok in not_visible:
        assert decide(client, NIP_STAFF, asked["id"], tok).status_code == 404
    visible_but_not_deciding = [token(client, NIP_STAFF),  # the employee themself
                                token(client, roles=("opd_admin",), opd="3510.03"),
                                token(client, NIP_HEAD, roles=("pimpinan",), opd="3510.03"),
                                admin(client)]
    for tok in visible_but_not_deciding:
        assert decide(client, NIP_STAFF, asked["id"], tok).status_code == 403
    assert decide(client, NIP_STAFF, "no-such-id", kabid(client)).status_code == 404
    bad = decide(client, NIP_STAFF, asked["id"], kabid(client), "rejected", None)
    assert bad.status_code == 422 and "note" in bad.json()["errors"]
    assert db.people.find_one({"_id": NIP_STAFF})["corrections"][0]["status"] == "requested"
    # a colleague acting (Plt) in the kabid's position today decides
    start = today()
    publish_directory(config, "acting.assigned", {
        "id": "act-1", "kind": "plt", "position": "pos-2002", "unit": BIDANG,
        "nip": NIP_STAFF2, "start": start, "end": start + timedelta(days=5), "version": 1})
    wait_until(lambda: db.acting.find_one({"_id": "act-1"}), timeout=15)
    plt = token(client, NIP_STAFF2, roles=("pegawai",))
    pending = client.request("GET", f"{API}/corrections/pending", token=plt).json()
    assert [c["id"] for c in pending["items"]] == [asked["id"]] and not pending["next_cursor"]
    # two decisions at once: one wins
    responses = race([("approved", None), ("rejected", "tidak sesuai")],
                     lambda d: decide(client, NIP_STAFF, asked["id"], plt, *d))
    assert sorted(r.status_code for r in responses) == [200, 409]
    entry = db.people.find_one({"_id": NIP_STAFF})["corrections"][0]
    assert entry["decided_by"] == NIP_STAFF2 and entry["decided_at"] <= datetime.now(UTC)
