"""A directory process killed (SIGKILL) in the middle of a CSV import: after a restart the
import completes by itself, every employee is there once, and each one's event reaches the
bus (at least once, always the same event id: consumers deduplicate by id). The import's
unfinished outbox batch is settled by the sweep: events of the records that were written go
out, the others are written (with their events) by the resumed import."""

import signal
import threading
from datetime import date, timedelta

import pymongo
import pytest
import requests

from pamong.storage import database_name
from pamong.testing import EventRecorder, HttpClient, free_port, serve_process, wait_until
from services.directory import csvio
from services.directory.demo import demo_pemda

pytestmark = pytest.mark.reliability

API = "/api/directory/v1"
EMPLOYEES = 6000


def generated_employees(count, unit, position):
    """``count`` valid, distinct PNS employees (distinct birth dates make distinct NIPs)."""
    first = date(1970, 1, 1)
    records = []
    for i in range(count):
        born = first + timedelta(days=i)
        gender = "L" if i % 2 == 0 else "P"
        nip = f"{born:%Y%m%d}202001{1 if gender == 'L' else 2}001"
        records.append({"nip": nip, "kind": "pns", "name": f"Pegawai {i}", "title_front": None,
                        "title_back": None, "gender": gender, "birth_date": born, "unit": unit,
                        "position": position, "phone": None, "email": None, "status": "active",
                        "nik": None, "supervisor": None, "effective_date": None})
    return csvio.export("employees", records)


def start_directory(config, port):
    return serve_process(config, "directory", port, DIRECTORY_LOCK_LEASE_SECONDS=2,
                         OUTBOX_POLL_SECONDS=0.05, OUTBOX_SWEEP_SECONDS=2,
                         OUTBOX_BATCH_LEASE_SECONDS=2)


def seeded_import(client, db, count):
    """The demo's units and positions imported; a CSV of ``count`` employees in a pelaksana
    position: (position id, CSV text)."""
    demo = demo_pemda()
    for kind in ("units", "positions"):
        response = client.as_staff("POST", f"{API}/imports/{kind}", roles=("admin",),
                                   opd="3510", data=demo[kind].encode())
        assert response.status_code == 200, response.text
    unit, position = next((p["unit"], p["id"]) for p in db.positions.find(
        {"kind": "pelaksana"}).sort("_id", 1))
    return position, generated_employees(count, unit, position)


def kill_midway(process, client, db, text):
    """POST the import, SIGKILL the process once it has started writing."""
    def post():  # the connection breaks when the process dies
        try:
            client.as_staff("POST", f"{API}/imports/employees", roles=("admin",), opd="3510",
                            data=text.encode(), timeout=120)
        except requests.RequestException:
            pass

    poster = threading.Thread(target=post)
    poster.start()
    wait_until(lambda: db.employees.find_one({}, {"_id": 1}) is not None, timeout=60,
               interval=0.005, message="the import has started writing")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    poster.join(timeout=30)
    written = db.employees.count_documents({})
    assert 0 < written < EMPLOYEES, f"killed too late or too early: {written} written"


def test_import_killed_midway_completes_after_restart_with_one_effect_each(config):
    port = free_port()
    client = HttpClient(f"http://127.0.0.1:{port}", config)
    db = pymongo.MongoClient(config["MONGO_URI"])[database_name(config, "directory")]
    recorder = EventRecorder(config, "directory")
    process = start_directory(config, port)
    try:
        _, text = seeded_import(client, db, EMPLOYEES)
        kill_midway(process, client, db, text)
        job, = db.imports.find({"kind": "employees"})
        assert job["status"] == "applying"

        process = start_directory(config, port)
        wait_until(lambda: db.imports.find_one({"_id": job["_id"]})["status"] == "done",
                   timeout=90, interval=0.2, message="the interrupted import resumed")
        assert db.employees.count_documents({}) == EMPLOYEES
        assert db.employees.count_documents({"version": {"$ne": 1}}) == 0  # no second change

        def all_published():
            return len({e["data"]["nip"] for e in recorder.of("employee.upserted")}) == EMPLOYEES

        wait_until(all_published, timeout=120, interval=0.5, message="every employee published")
        ids_per_nip = {}
        for event in recorder.of("employee.upserted"):
            ids_per_nip.setdefault(event["data"]["nip"], set()).add(event["id"])
        assert all(len(ids) == 1 for ids in ids_per_nip.values())
        wait_until(lambda: db["_outbox_batches"].count_documents({}) == 0, timeout=60,
                   interval=0.5, message="outbox drained")
    finally:
        process.terminate()
        process.wait(timeout=30)
        recorder.close()


def test_a_change_after_the_crash_waits_for_the_import_to_finish(config):
    """Between the crash and the resume nothing else is written: the first writer to take the
    lock completes the import, then makes its own change (here one that would have made the
    saved file fail its checks: the position becomes struktural, so one holder only).
    Before, the change went through at once and the resumed import was marked failed with
    part of its rows written."""
    port = free_port()
    client = HttpClient(f"http://127.0.0.1:{port}", config)
    db = pymongo.MongoClient(config["MONGO_URI"])[database_name(config, "directory")]
    process = start_directory(config, port)
    try:
        position, text = seeded_import(client, db, EMPLOYEES)
        kill_midway(process, client, db, text)
        job, = db.imports.find({"kind": "employees"})
        assert job["status"] == "applying"
        # the restarted service's resume timer first fires after 10 s: this change comes first
        process = start_directory(config, port)
        stored = db.positions.find_one({"_id": position})
        body = {k: stored[k] for k in ("title", "unit", "heads_unit", "may_sign", "active")}
        response = client.as_staff("PUT", f"{API}/positions/{position}", roles=("admin",),
                                   opd="3510", json={**body, "kind": "struktural"}, timeout=120)
        assert response.status_code == 200, response.text
        assert db.imports.find_one({"_id": job["_id"]})["status"] == "done"
        assert db.employees.count_documents({"position": position}) == EMPLOYEES
    finally:
        process.terminate()
        process.wait(timeout=30)
