"""Check-in and check-out over HTTP against the real broker and database: the geofence,
idempotency (sequential, concurrent, across two replica processes), flags, offline batches."""

from datetime import UTC, datetime, timedelta

import pytest

from pamong.testing import EventRecorder, race, wait_until
from tests.integration.attendance_support import (
    API,
    FAR,
    NEAR,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    checkin,
    token,
)

pytestmark = pytest.mark.integration


def today_doc(db, nip):
    return db.days.find_one({"nip": nip})


def test_a_check_in_inside_the_fence_is_stored_and_published(attendance, config):
    recorder = EventRecorder(config, "attendance")
    try:
        r = checkin(attendance.client, NIP_STAFF, key="key-first-0001")
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["place"] == "Kantor Dinas Kesehatan" and body["place_kind"] == "office"
        assert body["distance_m"] < 20 and body["radius_m"] == 100 and body["flags"] == []
        doc = today_doc(attendance.db, NIP_STAFF)
        assert [rec["key"] for rec in doc["records"]] == ["key-first-0001"]
        events = wait_until(lambda: recorder.of("attendance.checked_in"), timeout=15)
        assert events[0]["data"]["nip"] == NIP_STAFF and events[0]["data"]["place"] == body["place"]
        assert "latitude" not in events[0]["data"]
    finally:
        recorder.close()


def test_outside_the_fence_is_refused_with_distance_and_radius_and_kept(attendance):
    r = checkin(attendance.client, NIP_STAFF, position=FAR)
    assert r.status_code == 422 and r.headers["Content-Type"] == "application/problem+json"
    problem = r.json()
    assert problem["reason"] == "outside" and problem["radius_m"] == 100
    assert 1000 < problem["distance_m"] < 1300 and "100 m" in problem["detail"]
    doc = today_doc(attendance.db, NIP_STAFF)
    assert doc.get("records", []) == [] and doc["refused"][0]["reason"] == "outside"


def test_a_reading_vaguer_than_the_radius_is_refused_as_too_imprecise(attendance):
    r = checkin(attendance.client, NIP_STAFF, accuracy=250)
    assert r.status_code == 422 and r.json()["reason"] == "accuracy"
    assert "imprecise" in r.json()["detail"]


def test_the_same_key_twice_returns_the_first_result_and_stores_one_record(attendance, config):
    recorder = EventRecorder(config, "attendance")
    try:
        first = checkin(attendance.client, NIP_STAFF, key="same-key-0001")
        # the retry comes from somewhere else (the client moved): still the first result
        again = checkin(attendance.client, NIP_STAFF, key="same-key-0001", position=FAR)
        assert first.status_code == again.status_code == 201
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json() == first.json()
        wait_until(lambda: recorder.of("attendance.checked_in"), timeout=15)
        assert len(today_doc(attendance.db, NIP_STAFF)["records"]) == 1
        assert len(recorder.of("attendance.checked_in")) == 1
    finally:
        recorder.close()


def test_concurrent_requests_with_one_key_store_one_record(attendance):
    responses = race(range(8), lambda _: checkin(attendance.client, NIP_STAFF,
                                                 key="raced-key-0001"))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["received_at"] for r in responses}) == 1
    doc = today_doc(attendance.db, NIP_STAFF)
    assert len(doc["records"]) == 1 and doc["keys"] == ["raced-key-0001"]
    assert len(doc["_outbox"]) <= 1  # at most the one event, until the relay sends it


def test_distinct_keys_are_distinct_records_and_check_out_is_recorded(attendance):
    assert checkin(attendance.client, NIP_STAFF, key="k-in-00000001").status_code == 201
    assert checkin(attendance.client, NIP_STAFF, key="k-in-00000002").status_code == 201
    out = checkin(attendance.client, NIP_STAFF, key="k-out-0000001", kind="out")
    assert out.status_code == 201 and out.json()["kind"] == "out"
    kinds = [r["kind"] for r in today_doc(attendance.db, NIP_STAFF)["records"]]
    assert sorted(kinds) == ["in", "in", "out"]


def test_suspicious_records_are_kept_and_flagged(attendance):
    client = attendance.client
    mock = checkin(client, NIP_STAFF, mock=True, device="dev-a")
    assert mock.status_code == 201 and mock.json()["flags"] == ["mock_location"]
    drift = checkin(client, NIP_STAFF2, device="dev-b",
                    device_time=datetime.now(UTC) - timedelta(minutes=20))
    assert drift.status_code == 201 and "clock_drift" in drift.json()["flags"]


def test_a_device_used_by_two_employees_in_one_morning_is_flagged(attendance):
    from services.attendance.domain import zone

    first = checkin(attendance.client, NIP_STAFF, device="shared-phone")
    second = checkin(attendance.client, NIP_STAFF2, device="shared-phone")
    assert first.status_code == second.status_code == 201
    assert "shared_device" not in first.json()["flags"]
    local = datetime.now(UTC).astimezone(zone("Asia/Jakarta")).time()
    morning = local.hour < 12
    assert ("shared_device" in second.json()["flags"]) is morning


def test_impossible_travel_between_two_records_is_flagged(attendance):
    # the second office is 1.5 km away; reaching it a few seconds later is impossible
    attendance.db.units.update_one({"_id": "3510.03"}, {"$push": {"offices": {
        "name": "Puskesmas Kota", "latitude": -8.2327, "longitude": 114.3691, "radius_m": 100}}})
    assert checkin(attendance.client, NIP_STAFF, position=NEAR).status_code == 201
    far = checkin(attendance.client, NIP_STAFF, position=(-8.2327, 114.3691), kind="out")
    assert far.status_code == 201, far.text
    assert far.json()["place"] == "Puskesmas Kota" and "impossible_travel" in far.json()["flags"]


def test_a_day_that_holds_something_is_judged_against_it(attendance):
    """The first check-in of a day is one insert; a day that holds a refusal or a record
    already takes the general path: the refusal stays, the record lands, and a second
    check-in from far away moments later is flagged as impossible travel."""
    attendance.db.units.update_one({"_id": "3510.03"}, {"$push": {"offices": {
        "name": "Puskesmas Kota", "latitude": -8.2327, "longitude": 114.3691, "radius_m": 100}}})
    assert checkin(attendance.client, NIP_STAFF, position=FAR).status_code == 422
    first = checkin(attendance.client, NIP_STAFF, position=NEAR)
    assert first.status_code == 201 and first.json()["flags"] == []
    far = checkin(attendance.client, NIP_STAFF, position=(-8.2327, 114.3691))
    assert far.status_code == 201 and "impossible_travel" in far.json()["flags"]
    doc = today_doc(attendance.db, NIP_STAFF)
    assert [r["kind"] for r in doc["records"]] == ["in", "in"]
    assert [r["reason"] for r in doc["refused"]] == ["outside"]


def test_bad_input_and_missing_key_change_nothing(attendance):
    client = attendance.client
    no_key = client.request("POST", f"{API}/check-in", token=token(client, NIP_STAFF),
                            json={"latitude": NEAR[0], "longitude": NEAR[1], "accuracy_m": 5,
                                  "device_id": "d", "device_time": datetime.now(UTC).isoformat()})
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json()["errors"]
    bad = client.request("POST", f"{API}/check-in", token=token(client, NIP_STAFF),
                         headers={"Idempotency-Key": "bad-input-001"},
                         json={"latitude": 123, "longitude": NEAR[1], "accuracy_m": -1,
                               "device_id": "d", "device_time": "2026-12-05T07:00:00"})
    assert bad.status_code == 422
    assert {"latitude", "accuracy_m", "device_time"} <= set(bad.json()["errors"])
    assert attendance.db.days.count_documents({}) == 0


def test_who_may_record_and_read(attendance):
    client = attendance.client
    # a token without a NIP, and an employee unknown to the directory
    r = client.request("POST", f"{API}/check-in", token=client.token(("pegawai",)),
                       headers={"Idempotency-Key": "no-nip-00001"}, json={})
    assert r.status_code in (403, 422)
    unknown = checkin(client, "199912312020121999")
    assert unknown.status_code == 403 and "not in this Pemda" in unknown.json()["detail"]
    as_admin = client.request("POST", f"{API}/check-in", token=token(client, roles=("admin",),
                              opd="3510"), headers={"Idempotency-Key": "admin-000001"},
                              json={})
    assert as_admin.status_code == 403
    assert checkin(client, NIP_STAFF).status_code == 201
    day = datetime.now(UTC).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Jakarta")).date()
    path = f"{API}/days/{NIP_STAFF}/{day.isoformat()}"
    allowed = [token(client, NIP_STAFF),  # the employee
               token(client, "197505052000032002", roles=("pegawai",)),  # their supervisor
               token(client, roles=("opd_admin",), opd="3510.03"),
               token(client, roles=("pimpinan",), opd="3510.03.01", nip="197505052000032002"),
               token(client, roles=("admin",), opd="3510")]
    for t in allowed:
        assert client.request("GET", path, token=t).status_code == 200
    denied = [token(client, NIP_STAFF2),  # a colleague
              token(client, roles=("opd_admin",), opd="3510.04"),  # another OPD
              token(client, NIP_OTHER, roles=("pimpinan",), opd="3510.04")]
    for t in denied:
        assert client.request("GET", path, token=t).status_code == 404
    assert client.request("GET", path).status_code == 401


def test_offline_batch_judges_each_record_and_ignores_duplicates(attendance, config):
    client = attendance.client
    now = datetime.now(UTC)

    def record(key, minutes_ago, position=NEAR, kind="in"):
        return {"key": key, "kind": kind, "latitude": position[0], "longitude": position[1],
                "accuracy_m": 8, "device_id": "offline-tab",
                "device_time": (now - timedelta(minutes=minutes_ago)).isoformat()}

    batch = {"records": [record("off-00000001", 30), record("off-00000002", 20, FAR),
                         record("off-00000003", 60 * 24 * 5),  # five days old
                         record("off-00000004", -60),  # an hour in the future
                         record("off-00000005", 5, kind="out")]}
    path = f"{API}/records/offline"
    r = client.request("POST", path, token=token(client, NIP_STAFF), json=batch)
    assert r.status_code == 200, r.text
    body = r.json()
    outcomes = {o["key"]: o for o in body["outcomes"]}
    assert [o["key"] for o in body["outcomes"]] == [rec["key"] for rec in batch["records"]]
    assert outcomes["off-00000001"]["outcome"] == "accepted"
    assert outcomes["off-00000001"]["record"]["flags"] == ["offline"]
    assert outcomes["off-00000002"]["reason"] == "outside"
    assert outcomes["off-00000003"]["reason"] == "too_old"
    assert outcomes["off-00000004"]["reason"] == "in_future"
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 3, 0)
    # the record's time is the device's
    stored = attendance.db.days.find_one({"nip": NIP_STAFF, "keys": "off-00000001"})
    at = next(rec["at"] for rec in stored["records"] if rec["key"] == "off-00000001")
    assert abs((at - (now - timedelta(minutes=30))).total_seconds()) < 1
    # uploaded again (the device did not get the answer): nothing new
    again = client.request("POST", path, token=token(client, NIP_STAFF), json=batch).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    docs = list(attendance.db.days.find({"nip": NIP_STAFF}))
    assert sum(len(d["records"]) for d in docs) == 2


def test_an_offline_batch_over_the_limit_is_refused_whole(attendance):
    client = attendance.client
    records = [{"key": f"lim-{i:08d}", "kind": "in", "latitude": NEAR[0],
                "longitude": NEAR[1], "accuracy_m": 5, "device_id": "t",
                "device_time": datetime.now(UTC).isoformat()} for i in range(101)]
    r = client.request("POST", f"{API}/records/offline", token=token(client, NIP_STAFF),
                       json={"records": records})
    assert r.status_code == 422 and "records" in r.json()["errors"]
    assert attendance.db.days.count_documents({}) == 0


def test_two_replica_processes_store_one_record_per_key(config):
    """The way production runs: two `pamong serve attendance` processes against one
    database, the same requests sent to both at once."""
    from pamong.testing import HttpClient, free_port, serve_process
    from tests.integration.attendance_support import seed_directory

    ports = [free_port(), free_port()]
    env = {"DIRECTORY_SNAPSHOT_ON_EMPTY": "false", "ATTENDANCE_CONFIG_CACHE_SECONDS": "0"}
    processes = [serve_process(config, "attendance", port, **env) for port in ports]
    try:
        db = seed_directory(config)
        clients = [HttpClient(f"http://127.0.0.1:{port}", config) for port in ports]
        keys = [f"two-replicas-{i:04d}" for i in range(20)]
        jobs = [(client, key) for key in keys for client in clients]
        responses = race(jobs, lambda job: checkin(job[0], NIP_STAFF, key=job[1]))
        assert {r.status_code for r in responses} == {201}
        by_key = {}
        for (_, key), r in zip(jobs, responses, strict=True):
            by_key.setdefault(key, set()).add(r.json()["received_at"])
        assert all(len(seen) == 1 for seen in by_key.values())
        doc = db.days.find_one({"nip": NIP_STAFF})
        assert sorted(rec["key"] for rec in doc["records"]) == keys
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


def test_device_notes_of_two_replicas_at_once_see_every_other_employee(config):
    """Two replicas' group writers (each its own client, nothing shared but the database)
    note one device for six employees at once, one of them twice: the device keeps all six,
    once each, and only the note that came first can have been told it was not shared."""
    import pymongo

    from services.attendance.records import GroupDeviceNote

    clients = [pymongo.MongoClient(config["MONGO_URI"]) for _ in range(2)]
    try:
        name = f"{config['MONGO_DB_PREFIX']}attendance"
        groups = [GroupDeviceNote(client[name]["devices"]) for client in clients]
        nips = [f"19900101201501100{i}" for i in range(6)]
        jobs = [(groups[i % 2], nip) for i, nip in enumerate(nips)]
        jobs.append((groups[1], nips[0]))  # a repeat of the first note (a retried request)
        others = race(jobs, lambda job: job[0].insert(("phone-1:2026-12-07", job[1])))
        stored = clients[0][name]["devices"].find_one({"_id": "phone-1:2026-12-07"})
    finally:
        for client in clients:
            client.close()
    assert sorted(stored["nips"]) == nips
    assert all(nip not in seen and set(seen) <= set(nips)
               for (_, nip), seen in zip(jobs, others, strict=True))
    assert sum(1 for seen in others if not seen) <= 1  # the repeat included
