"""Leave over HTTP against the real broker and database: working days with the unit's
calendar, the annual balance with carry-over, overlaps refused (sequentially, concurrently and
across two service processes), idempotent requests, and who may decide: the supervisor, or
the Plt/Plh of the supervisor's position on the day, and nobody else."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pamong.testing import EventRecorder, race, wait_until
from tests.integration.attendance_support import (
    API,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    publish_directory,
    token,
)

pytestmark = pytest.mark.integration

# 2027-08-13 is a Friday; 14-15 the weekend; 17 August a national holiday (Independence Day)
FRI, WED = date(2027, 8, 13), date(2027, 8, 18)


def today():
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta")).date()


def ask(client, nip=NIP_STAFF, type="CT", start=FRI, end=WED, key=None, **extra):
    headers = {"Idempotency-Key": key} if key else {}
    return client.request("POST", f"{API}/leave", token=token(client, nip), headers=headers,
                          json={"type": type, "start": start.isoformat(),
                                "end": end.isoformat(), "reason": "urusan keluarga", **extra})


def decide(client, leave_id, decision="approved", t=None, nip=NIP_STAFF, note=None):
    return client.request("POST", f"{API}/leave/{nip}/{leave_id}/decision",
                          token=t or token(client, NIP_KABID),
                          json={"decision": decision, "note": note})


def leaves_of(db, nip=NIP_STAFF):
    return (db.people.find_one({"_id": nip}) or {}).get("leaves", [])


def test_working_days_skip_the_weekend_and_a_national_holiday(attendance, config):
    recorder = EventRecorder(config, "attendance")
    try:
        r = ask(attendance.client)
        assert r.status_code == 201, r.text
        body = r.json()
        # Fri 13, Mon 16 and Wed 18: the weekend and 17 August do not count
        assert body["working_days"] == 3 and body["status"] == "requested"
        assert body["approver"] == NIP_KABID and body["type_name"] == "Cuti tahunan"
        event = wait_until(lambda: recorder.of("attendance.leave_requested"), timeout=15)[0]
        assert event["data"]["id"] == body["id"] and event["data"]["approver"] == NIP_KABID
        assert event["data"]["working_days"] == 3 and event["opd"] == "3510.03"
    finally:
        recorder.close()


def test_a_regional_holiday_counts_as_a_day_off(attendance):
    attendance.db.calendar.insert_one({"_id": "regional", "days": [
        {"date": "2027-08-16", "name": "Hari Jadi Banyuwangi", "kind": "regional",
         "unit": None}]})
    r = ask(attendance.client)
    assert r.status_code == 201 and r.json()["working_days"] == 2


def test_bad_requests_are_refused_and_change_nothing(attendance):
    client = attendance.client
    cases = [
        ({"end": FRI - timedelta(days=1)}, "end"),  # before the start
        ({"type": "XX"}, "type"),
        ({"type": "CBer"}, "type"),  # set nationally
        ({"type": "CM", "child_order": 4}, "child_order"),
        ({"type": "CAP", "end": FRI + timedelta(days=40)}, "end"),  # a month at most
        ({"start": date(2027, 8, 14), "end": date(2027, 8, 15)}, "start"),  # a weekend
        ({"start": today() - timedelta(days=60), "end": today()}, "start"),  # too far back
        ({"end": date(2027, 8, 18) + timedelta(days=30), "start": date(2027, 8, 2),
          "type": "CT"}, "end"),  # more than 12 days
        ({"start": date(2027, 12, 30), "end": date(2028, 1, 4)}, "end"),  # across a year
    ]
    for change, field in cases:
        args = {"type": "CT", "start": FRI, "end": WED, **change}
        r = ask(client, **args)
        assert r.status_code == 422, (change, r.text)
        assert field in r.json()["errors"], (change, r.json())
    no_reason = client.request("POST", f"{API}/leave", token=token(client, NIP_STAFF),
                               json={"type": "CS", "start": "2027-08-13", "end": "2027-08-13"})
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["errors"]
    bad_key = ask(client, key="no spaces allowed")
    assert bad_key.status_code == 400
    assert leaves_of(attendance.db) == []


def test_annual_leave_needs_a_year_of_service(attendance, config):
    from tests.integration.attendance_support import employee_event

    fresh = "199505052027011001"  # appointed January 2027
    publish_directory(config, "employee.upserted", employee_event(
        fresh, "Dewi Lestari", "3510.03.01", NIP_KABID, "Pelaksana", False))
    wait_until(lambda: attendance.db.employees.find_one({"_id": fresh}), timeout=15)
    r = ask(attendance.client, nip=fresh)
    assert r.status_code == 422 and "1 years of continuous service" in r.text
    assert ask(attendance.client, nip=fresh, type="CS").status_code == 201


def test_overlapping_requests_are_refused_naming_the_other(attendance):
    client = attendance.client
    first = ask(client).json()
    again = ask(client, type="CS", start=WED, end=WED + timedelta(days=1))
    assert again.status_code == 422
    assert first["id"] in again.json()["detail"] and first["id"] in str(again.json()["errors"])
    # once cancelled, the dates are free again
    cancel = client.request("POST", f"{API}/leave/{NIP_STAFF}/{first['id']}/cancel",
                            token=token(client, NIP_STAFF), json={})
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    assert ask(client, type="CS", start=WED, end=WED).status_code == 201


def test_concurrent_overlapping_requests_let_one_through(attendance):
    client = attendance.client
    ranges = [(FRI + timedelta(days=i % 3), WED + timedelta(days=i % 3)) for i in range(6)]
    responses = race(ranges, lambda r: ask(client, start=r[0], end=r[1]))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [422] * 5, [r.text for r in responses]
    winner = next(r.json()["id"] for r in responses if r.status_code == 201)
    assert all(winner in r.json()["detail"] for r in responses if r.status_code == 422)
    assert [e["id"] for e in leaves_of(attendance.db)] == [winner]


def test_two_service_processes_let_one_overlapping_request_through(config):
    from pamong.testing import HttpClient, free_port, serve_process
    from tests.integration.attendance_support import seed_directory

    ports = [free_port(), free_port()]
    env = {"DIRECTORY_SNAPSHOT_ON_EMPTY": "false", "ATTENDANCE_CONFIG_CACHE_SECONDS": "0"}
    processes = [serve_process(config, "attendance", port, **env) for port in ports]
    try:
        db = seed_directory(config)
        clients = [HttpClient(f"http://127.0.0.1:{port}", config) for port in ports]
        jobs = [(clients[i % 2], FRI + timedelta(days=i % 2)) for i in range(8)]
        responses = race(jobs, lambda job: ask(job[0], start=job[1], end=job[1]
                                               + timedelta(days=3)))
        assert sorted(r.status_code for r in responses) == [201] + [422] * 7
        assert len(leaves_of(db)) == 1
        # the same key sent to both: one request stored
        keyed = race([clients[0], clients[1]] * 3,
                     lambda c: ask(c, type="CS", start=date(2027, 9, 1),
                                   end=date(2027, 9, 2), key="two-process-key-1"))
        assert {r.status_code for r in keyed} == {201}
        assert len({r.json()["id"] for r in keyed}) == 1
        assert len(leaves_of(db)) == 2
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def test_a_repeat_with_the_same_idempotency_key_returns_the_first_result(attendance, config):
    client = attendance.client
    recorder = EventRecorder(config, "attendance")
    try:
        first = ask(client, key="leave-key-0001")
        again = ask(client, key="leave-key-0001", type="CS")  # even if the body changed
        assert first.status_code == again.status_code == 201
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json() == first.json()
        raced = race(range(6), lambda _: ask(client, key="leave-key-0002", type="CS",
                                             start=date(2027, 9, 6), end=date(2027, 9, 6)))
        assert {r.status_code for r in raced} == {201}
        assert len({r.json()["id"] for r in raced}) == 1
        assert len(leaves_of(attendance.db)) == 2
        wait_until(lambda: len(recorder.of("attendance.leave_requested")) >= 2, timeout=15)
        assert len(recorder.of("attendance.leave_requested")) == 2
    finally:
        recorder.close()


def test_only_the_supervisor_decides(attendance, config):
    client = attendance.client
    recorder = EventRecorder(config, "attendance")
    try:
        leave = ask(client).json()
        refused = {
            "a colleague": (token(client, NIP_STAFF2), 404),
            "the employee themself": (token(client, NIP_STAFF), 403),
            "another OPD's head": (token(client, NIP_OTHER, roles=("pimpinan",),
                                         opd="3510.04"), 404),
            "the head above the supervisor": (token(client, NIP_HEAD, roles=("pimpinan",),
                                                    opd="3510.03"), 403),
            "the OPD admin": (token(client, roles=("opd_admin",), opd="3510.03"), 403),
            "the Pemda admin": (token(client, roles=("admin",), opd="3510"), 403),
        }
        for who, (t, status) in refused.items():
            r = decide(client, leave["id"], t=t)
            assert r.status_code == status, (who, r.text)
        assert leaves_of(attendance.db)[0]["status"] == "requested"
        ok = decide(client, leave["id"])
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "approved" and ok.json()["decided_by"] == NIP_KABID
        again = decide(client, leave["id"], "rejected", note="berubah pikiran")
        assert again.status_code == 409
        assert "approved" in again.json()["detail"] and "requested" in again.json()["detail"]
        events = wait_until(lambda: recorder.of("attendance.leave_decided"), timeout=15)
        assert events[0]["data"]["decision"] == "approved"
        assert events[0]["data"]["decided_by"] == NIP_KABID
    finally:
        recorder.close()


def test_rejection_needs_a_note_and_concurrent_decisions_give_one(attendance):
    client = attendance.client
    leave = ask(client).json()
    bare = decide(client, leave["id"], "rejected")
    assert bare.status_code == 422 and "note" in bare.json()["errors"]
    bad = decide(client, leave["id"], "maybe")
    assert bad.status_code == 422
    missing = decide(client, "no-such-leave")
    assert missing.status_code == 404
    decisions = ["approved", "rejected"] * 3
    responses = race(decisions, lambda d: decide(client, leave["id"], d, note="catatan"))
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    entry = leaves_of(attendance.db)[0]
    winner = next(r.json()["status"] for r in responses if r.status_code == 200)
    assert entry["status"] == winner


def acting_event(nip, start, end, position=f"pos-{NIP_KABID[-4:]}", acting_id="act-1",
                 kind="plh"):
    return {"id": acting_id, "kind": kind, "position": position, "unit": "3510.03.01",
            "nip": nip, "start": start, "end": end, "version": 1}


def test_the_acting_official_decides_on_the_dates_of_the_acting(attendance, config):
    client, db = attendance.client, attendance.db
    first, second = ask(client).json(), ask(client, type="CS", start=date(2027, 9, 1),
                                             end=date(2027, 9, 1)).json()
    # a Plh of the supervisor's position whose dates are over: not (yet) the approver
    publish_directory(config, "acting.assigned", acting_event(
        NIP_STAFF2, today() - timedelta(days=10), today() - timedelta(days=1),
        acting_id="act-past"))
    wait_until(lambda: db.acting.find_one({"_id": "act-past"}), timeout=15)
    assert decide(client, first["id"], t=token(client, NIP_STAFF2)).status_code == 404
    listed = client.request("GET", f"{API}/leave/pending", token=token(client, NIP_STAFF2))
    assert listed.status_code == 200 and listed.json()["items"] == []
    # acting today: sees and decides
    publish_directory(config, "acting.assigned", acting_event(
        NIP_STAFF2, today(), today() + timedelta(days=5), acting_id="act-now"))
    wait_until(lambda: db.acting.find_one({"_id": "act-now"}), timeout=15)
    pending = client.request("GET", f"{API}/leave/pending", token=token(client, NIP_STAFF2))
    assert [i["id"] for i in pending.json()["items"]] == [first["id"], second["id"]]
    assert pending.json()["next_cursor"] is None
    # paged, oldest request first: one a page, the cursor leads to the next
    page1 = client.request("GET", f"{API}/leave/pending?limit=1",
                           token=token(client, NIP_STAFF2)).json()
    assert [i["id"] for i in page1["items"]] == [first["id"]] and page1["next_cursor"]
    page2 = client.request("GET", f"{API}/leave/pending?limit=1&cursor={page1['next_cursor']}",
                           token=token(client, NIP_STAFF2)).json()
    assert [i["id"] for i in page2["items"]] == [second["id"]] and page2["next_cursor"] is None
    assert client.request("GET", f"{API}/leave/pending?cursor=bogus",
                          token=token(client, NIP_STAFF2)).status_code == 400
    seen = client.request("GET", f"{API}/leave/{NIP_STAFF}", token=token(client, NIP_STAFF2))
    assert seen.status_code == 200 and len(seen.json()["items"]) == 2
    r = decide(client, first["id"], t=token(client, NIP_STAFF2))
    assert r.status_code == 200 and r.json()["decided_by"] == NIP_STAFF2
    # the supervisor still decides too; the Plh cannot decide their own leave
    assert decide(client, second["id"], "rejected", note="kurang data").status_code == 200
    own = ask(client, nip=NIP_STAFF2, type="CS", start=date(2027, 10, 4),
              end=date(2027, 10, 4)).json()
    assert decide(client, own["id"], t=token(client, NIP_STAFF2),
                  nip=NIP_STAFF2).status_code == 403
    # the acting ended early (acting.ended): no longer
    ended = {**acting_event(NIP_STAFF2, today(), today() + timedelta(days=5),
                            acting_id="act-now"), "version": 2,
             "ended_on": today() - timedelta(days=1)}
    third = ask(client, type="CS", start=date(2027, 10, 11), end=date(2027, 10, 11)).json()
    publish_directory(config, "acting.ended", ended)
    wait_until(lambda: (db.acting.find_one({"_id": "act-now"}) or {}).get("ended_on"),
               timeout=15)
    assert decide(client, third["id"], t=token(client, NIP_STAFF2)).status_code == 404


def test_the_annual_balance_carries_at_most_six_days(attendance):
    client = attendance.client
    # 2027: 4 days taken (Mon 2 - Thu 5 August) of 12
    taken = ask(client, start=date(2027, 8, 2), end=date(2027, 8, 5)).json()
    assert taken["working_days"] == 4
    assert decide(client, taken["id"]).status_code == 200
    balance = client.request("GET", f"{API}/leave/{NIP_STAFF}/balance?year=2027",
                             token=token(client, NIP_STAFF)).json()
    assert (balance["available"], balance["taken"], balance["remaining"]) == (12, 4, 8)
    assert balance["carried"] == 0  # opening balance 0 before the first year with data
    # 8 left: 9 days are refused, waiting requests count against the balance
    nine = ask(client, start=date(2027, 9, 1), end=date(2027, 9, 13))
    assert nine.status_code == 422 and "9 working days asked, 8 left" in nine.text
    waiting = ask(client, start=date(2027, 9, 1), end=date(2027, 9, 3)).json()  # 3 days
    assert waiting["working_days"] == 3
    assert ask(client, start=date(2027, 10, 4), end=date(2027, 10, 11)).status_code == 422
    balance = client.request("GET", f"{API}/leave/{NIP_STAFF}/balance?year=2027",
                             token=token(client, NIP_KABID)).json()
    assert balance["requested"] == 3 and balance["remaining"] == 8
    # 2028: 8 unused, 6 carried: 18 available
    b2028 = client.request("GET", f"{API}/leave/{NIP_STAFF}/balance?year=2028",
                           token=token(client, NIP_STAFF)).json()
    assert (b2028["entitled"], b2028["carried"], b2028["available"]) == (12, 6, 18)
    assert [row["year"] for row in b2028["ledger"]] == [2027, 2028]
    # 2029 after nothing taken in 2028: 12 + 6 = 18, never more
    b2029 = client.request("GET", f"{API}/leave/{NIP_STAFF}/balance?year=2029",
                           token=token(client, NIP_STAFF)).json()
    assert b2029["available"] == 18
    # a 2028 request of 15 working days fits the carried balance
    long = ask(client, start=date(2028, 3, 1), end=date(2028, 3, 21))
    assert long.status_code == 201, long.text
    assert 12 < long.json()["working_days"] <= 18


def test_cancel_rules(attendance):
    client = attendance.client
    leave = ask(client).json()
    path = f"{API}/leave/{NIP_STAFF}/{leave['id']}/cancel"
    assert client.request("POST", path, token=token(client, NIP_STAFF2),
                          json={}).status_code == 404
    assert client.request("POST", path, token=token(client, NIP_KABID),
                          json={}).status_code == 403
    assert decide(client, leave["id"]).status_code == 200
    # approved and not started: the employee may still cancel
    ok = client.request("POST", path, token=token(client, NIP_STAFF), json={"note": "batal"})
    assert ok.status_code == 200 and ok.json()["cancelled_by"] == NIP_STAFF
    assert ok.json()["decided_by"] == NIP_KABID  # the approval stays on record
    again = client.request("POST", path, token=token(client, NIP_STAFF), json={})
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    # approved and started (a sick day today): no longer
    sick = ask(client, type="CS", start=today(), end=today()).json()
    assert decide(client, sick["id"]).status_code == 200
    started = client.request("POST", f"{API}/leave/{NIP_STAFF}/{sick['id']}/cancel",
                             token=token(client, NIP_STAFF), json={})
    assert started.status_code == 409 and "started" in started.json()["detail"]
    concurrent = ask(client, type="CS", start=date(2027, 11, 1), end=date(2027, 11, 1)).json()
    responses = race(range(4), lambda _: client.request(
        "POST", f"{API}/leave/{NIP_STAFF}/{concurrent['id']}/cancel",
        token=token(client, NIP_STAFF), json={}))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]


def test_who_may_request_and_read(attendance):
    client = attendance.client
    as_admin = client.request("POST", f"{API}/leave", token=token(client, roles=("admin",),
                              opd="3510"), json={})
    assert as_admin.status_code == 403
    unknown = ask(client, nip="199912312020121999")
    assert unknown.status_code == 403 and "not in this Pemda" in unknown.json()["detail"]
    no_nip = client.request("POST", f"{API}/leave", token=client.token(("pegawai",)),
                            json={"type": "CS", "start": "2027-08-13", "end": "2027-08-13",
                                  "reason": "sakit"})
    assert no_nip.status_code == 403
    leave = ask(client).json()
    for path in (f"{API}/leave/{NIP_STAFF}", f"{API}/leave/{NIP_STAFF}/balance"):
        allowed = [token(client, NIP_STAFF), token(client, NIP_KABID),
                   token(client, roles=("opd_admin",), opd="3510.03"),
                   token(client, NIP_KABID, roles=("pimpinan",), opd="3510.03.01"),
                   token(client, roles=("verifikator",), opd="3510.03"),
                   token(client, roles=("admin",), opd="3510")]
        for t in allowed:
            r = client.request("GET", path, token=t)
            assert r.status_code == 200, (path, r.text)
        denied = [token(client, NIP_STAFF2), token(client, roles=("opd_admin",), opd="3510.04"),
                  token(client, NIP_OTHER, roles=("pimpinan",), opd="3510.04")]
        for t in denied:
            assert client.request("GET", path, token=t).status_code == 404, path
        assert client.request("GET", path).status_code == 401
    listed = client.request("GET", f"{API}/leave/{NIP_STAFF}", token=token(client, NIP_STAFF))
    assert [i["id"] for i in listed.json()["items"]] == [leave["id"]]
    pending = f"{API}/leave/pending"
    mine = client.request("GET", pending, token=token(client, NIP_KABID)).json()["items"]
    assert [i["id"] for i in mine] == [leave["id"]] and mine[0]["nip"] == NIP_STAFF
    assert client.request("GET", pending, token=token(client, NIP_HEAD)).json()["items"] == []
    assert client.request("GET", pending, token=token(client, roles=("admin",),
                                                      opd="3510")).status_code == 403
    assert client.request("GET", pending).status_code == 401
    bad_year = client.request("GET", f"{API}/leave/{NIP_STAFF}/balance?year=99",
                              token=token(client, NIP_STAFF))
    assert bad_year.status_code == 422
    assert client.request("GET", f"{API}/leave/199912312020121999",
                          token=token(client, roles=("admin",), opd="3510")).status_code == 404
