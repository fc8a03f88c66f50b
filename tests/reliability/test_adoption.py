"""Adoption (issue 18, item 2): an OPD runs only directory + letters + notify
(``PAMONG_MODULES``); later it adds attendance, which catches up from the directory's snapshot
and takes a check-in the same day; then it retires attendance with ``pamong bus retire``, and
no queue is left to fill for ever.

Every module is a real ``pamong serve`` child process on a vhost and databases of its own;
the operator's commands run as the ``pamong`` command line does."""

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import eventlet
import pytest
import requests
from kombu import Connection

from pamong.events import dlq
from pamong.events.topology import bindings_of
from pamong.modules import load_service
from pamong.testing import HttpClient, broker, free_port, serve_process, wait_until
from tests.integration.attendance_support import attendance_db
from tests.integration.notify_support import notify_settings, start_notify_process, start_standins

pytestmark = pytest.mark.reliability

ADOPTED = "directory,letters,notify"
DATA = Path(__file__).parent.parent / "data" / "directory"
DIRECTORY_API = "/api/directory/v1"
CSV = {"Content-Type": "text/csv; charset=utf-8"}
EMPLOYEES = 6  # tests/data/directory/employees.csv
CHECKER = "199004172015032001"  # Siti Nur Aini, Bidang Mutasi: her office is BKPSDM's
BKPSDM = (-8.2176, 114.3667)  # Kantor BKPSDM (units.csv)
JOKO = "198707302010121001"
NEWCOMER = "199511222020122003"
MOVED = (DATA / "employees.csv").read_text().replace(
    "PNS,3510.06.01,,0878-3306-6001,,CLTN,,,", "PNS,3510.06.02,,0878-3306-6001,,CLTN,,,")
WITH_NEWCOMER = MOVED.rstrip("\n") + (
    f"\n{NEWCOMER},Rina Wulandari,,,P,22-11-1995,PNS,3510.06.01,,0812-3307-7003,,AKTIF,,,\n")
ATTENDANCE_QUEUE = "attendance.replica_employee_upserted"


def pamong(config, *args, **env):
    """``pamong <args>`` as an operator runs it (the test's broker; only the adopted
    modules installed)."""
    env = {**os.environ, "AMQP_URI": config["AMQP_URI"], "PAMONG_MODULES": ADOPTED,
           "PYTHONWARNINGS": "ignore", **env}
    done = subprocess.run([sys.executable, "-m", "pamong.cli.main", *args], env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=60)
    print(f"$ pamong {' '.join(args)}  -> exit {done.returncode}\n{done.stdout}{done.stderr}")
    return done


def queues(vhost, prefix):
    """``{name: messages}`` of the vhost's queues starting with ``prefix`` (exact counts:
    passive declares, not the management API's samples)."""
    url, auth = broker._api(f"/queues/{quote(vhost, safe='')}?columns=name")
    names = [q["name"] for q in requests.get(url, auth=auth, timeout=10).json()
             if q["name"].startswith(prefix)]
    with Connection(broker.amqp_uri_for(vhost)) as connection:
        channel = connection.channel()
        return {n: channel.queue_declare(n, passive=True).message_count for n in names}


def import_employees(client, text):
    response = client.as_staff("POST", f"{DIRECTORY_API}/imports/employees", roles=("admin",),
                               opd="3510", data=text.encode(), headers=CSV)
    assert response.status_code == 200, response.text
    return response.json()


def replica_holds(config, service, nip=None, count=EMPLOYEES, unit=None):
    employees = attendance_db(config, service).employees
    if nip is None:
        return employees.count_documents({}) == count
    doc = employees.find_one({"_id": nip})
    return doc is not None and (unit is None or doc["unit"] == unit)


def subscribed_types(source):
    """The event types of ``source`` that the adopted modules' queues take."""
    return {b.event_type for name in ADOPTED.split(",") for b in bindings_of(load_service(name))
            if b.source == source}


@pytest.fixture
def stack(config, tmp_path, request):
    """directory, letters and notify as `pamong serve` processes, only those adopted."""
    started = []

    def stop_all():
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    request.addfinalizer(stop_all)
    wa, smtp, sms = start_standins()
    for standin in (wa, smtp, sms):
        request.addfinalizer(standin.stop)
    ports = {name: free_port() for name in ("directory", "letters", "notify")}
    settings = notify_settings(config, ports["notify"], wa, smtp, sms)

    def start(name):  # all at once: the replicas are empty until the import anyway
        if name == "notify":
            return start_notify_process(config, settings, ports["notify"],
                                        PAMONG_MODULES=ADOPTED).process
        extra = {"LETTERS_KEYS_DIR": str(tmp_path / "letters-ca")} if name == "letters" else {}
        return serve_process(config, name, ports[name], PAMONG_MODULES=ADOPTED, **extra)

    started += list(eventlet.GreenPool(3).imap(start, ["directory", "letters", "notify"]))
    return {"client": HttpClient(f"http://127.0.0.1:{ports['directory']}", config),
            "started": started}


def test_an_opd_adopts_attendance_late_and_retires_it(config, vhost, stack):
    directory = stack["client"]
    for kind in ("units", "positions"):
        r = directory.as_staff("POST", f"{DIRECTORY_API}/imports/{kind}", roles=("admin",),
                               opd="3510", data=(DATA / f"{kind}.csv").read_bytes(), headers=CSV)
        assert r.status_code == 200, r.text
    assert import_employees(directory, (DATA / "employees.csv").read_text())["created"] == 6
    for module in ("letters", "notify"):
        wait_until(lambda m=module: replica_holds(config, m), timeout=30,
                   message=f"{module}'s replica holds the employees")
    assert not queues(vhost, "attendance."), "no attendance queue before it is adopted"

    # the OPD adopts attendance: its replica is empty, so it asks for the directory's snapshot
    port = free_port()
    attendance = serve_process(config, "attendance", port, PAMONG_MODULES=f"{ADOPTED},attendance",
                               ATTENDANCE_CONFIG_CACHE_SECONDS=0,
                               ATTENDANCE_CLOSE_INTERVAL_SECONDS=0)
    stack["started"].append(attendance)
    db = attendance_db(config, "attendance")
    # units and employees come through queues of their own: wait for both
    wait_until(lambda: replica_holds(config, "attendance") and db.units.count_documents({}) == 4,
               timeout=30, message="attendance caught up from the snapshot")
    assert {d["_id"] for d in db.employees.find({}, {"_id": 1})} == \
        {d["_id"] for d in attendance_db(config, "letters").employees.find({}, {"_id": 1})}

    # ... and works the same day: a check-in at the office (its status depends on the clock)
    client = HttpClient(f"http://127.0.0.1:{port}", config)
    key = uuid.uuid4().hex
    r = client.request(
        "POST", "/api/attendance/v1/check-in",
        token=client.token(roles=("pegawai",), opd="3510.06", sub=f"u-{CHECKER}", nip=CHECKER),
        headers={"Idempotency-Key": key},
        json={"latitude": BKPSDM[0], "longitude": BKPSDM[1], "accuracy_m": 10,
              "device_id": "hp-siti", "device_time": datetime.now(UTC).isoformat(),
              "mock_location": False})
    assert r.status_code == 201, r.text
    day = db.days.find_one({"nip": CHECKER})
    assert [rec["key"] for rec in day["records"]] == [key]
    assert day["records"][0]["place"] == "Kantor BKPSDM"

    # retiring it while it runs is refused: its consumers are still on the queues
    running = pamong(config, "bus", "retire", "attendance")
    assert running.returncode == 1
    assert "still running" in running.stderr and "--force" in running.stderr
    assert queues(vhost, "attendance.")

    # stopped but not retired, its queues fill with every directory change: the problem
    attendance.terminate()
    attendance.wait(timeout=30)
    assert import_employees(directory, MOVED)["transferred"] == 1
    wait_until(lambda: replica_holds(config, "letters", JOKO, unit="3510.06.02"), timeout=30,
               message="the transfer reached letters")
    wait_until(lambda: queues(vhost, ATTENDANCE_QUEUE)[ATTENDANCE_QUEUE] >= 1, timeout=10,
               message="the transfer waiting in attendance's queue")
    waiting = sum(n for name, n in queues(vhost, "attendance.").items()
                  if not name.endswith((".dlq", ".unroutable")))

    # a message parked in a DLQ is never dropped silently
    parked = "attendance.replica_unit_upserted.dlq"
    with Connection(config["AMQP_URI"]) as connection:
        connection.Producer().publish({"id": "poisoned"}, exchange="", routing_key=parked,
                                      delivery_mode=2)
    before = queues(vhost, "attendance.")
    # attendance's own events that no adopted module takes (permits would take check-ins)
    # were parked in attendance.unroutable by its relay: parked messages as well
    unsubscribed = {m["type"] for m in dlq.show(config["AMQP_URI"], "attendance.unroutable")}
    assert "attendance.checked_in" in unsubscribed
    assert not unsubscribed & subscribed_types("attendance")
    parked_count = sum(n for name, n in before.items() if name.endswith((".dlq", ".unroutable")))
    # asked to delete the exchange too: notify subscribes to attendance's events, so no
    refused = pamong(config, "bus", "retire", "attendance", "--exchange")
    assert refused.returncode == 1
    assert f"{parked_count} parked message(s) would be lost: {parked} (1)" in refused.stderr
    assert "--drop-parked" in refused.stderr
    assert "attendance.events still routes to" in refused.stderr
    assert "notify.intake_attendance_leave_decided" in refused.stderr

    dry = pamong(config, "bus", "retire", "attendance", "--drop-parked", "--dry-run")
    assert dry.returncode == 0
    assert f"would delete {len(before)} queue(s), {waiting} event(s) still waiting for " \
           f"attendance and {parked_count} parked message(s)" in dry.stdout
    assert ATTENDANCE_QUEUE in dry.stdout
    # from a pod, whose network policy lets it reach AMQP only: the code names the queues
    blind = pamong(config, "bus", "retire", "attendance", "--drop-parked", "--dry-run",
                   RABBIT_MANAGEMENT_URL=f"http://guest:guest@127.0.0.1:{free_port()}")
    assert blind.returncode == 0 and "the topology of services/attendance" in blind.stdout
    assert f"would delete {len(before)} queue(s), {waiting} event(s)" in blind.stdout
    assert queues(vhost, "attendance.") == before, "a refusal or a dry run deletes nothing"

    done = pamong(config, "bus", "retire", "attendance", "--drop-parked")
    assert done.returncode == 0, done.stderr
    assert f"retired attendance: deleted {len(before)} queue(s)" in done.stdout
    assert queues(vhost, "attendance.") == {}
    again = pamong(config, "bus", "retire", "attendance")
    assert again.returncode == 0 and "nothing to retire" in again.stdout

    # the directory goes on: letters and notify take the change, no attendance queue grows
    assert import_employees(directory, WITH_NEWCOMER)["created"] == 1
    for module in ("letters", "notify"):
        wait_until(lambda m=module: replica_holds(config, m, NEWCOMER), timeout=30,
                   message=f"the newcomer reached {module}")
    assert queues(vhost, "attendance.") == {}
    # what the directory parks as unroutable are only the types no adopted module takes
    # (as before attendance came and after it left): nothing meant for a subscriber
    parked_types = {m["type"] for m in dlq.show(config["AMQP_URI"], "directory.unroutable",
                                                limit=500)}
    assert not parked_types & subscribed_types("directory"), parked_types
    handler_queues = [b.queue for name in ADOPTED.split(",")
                      for b in bindings_of(load_service(name))]
    assert {n for _, n in dlq.list_dlqs(config["AMQP_URI"], handler_queues)} == {0}
    print(f"\nadoption: {EMPLOYEES} employees caught up by attendance from the snapshot, "
          f"check-in stored; retired {len(before)} queues ({waiting} waiting event(s), "
          f"{parked_count} parked); directory.unroutable holds only unsubscribed types "
          f"{sorted(parked_types)}")


def test_what_retiring_refuses_and_how_to_override_it():
    from pamong.events.retire import Plan, QueueState, refusals, topic_matches

    found = Plan("attendance", "/", queues=[
        QueueState("attendance.on_x", "handler", 3, 1),
        QueueState("attendance.on_x.dlq", "parked", 2, 0),
        QueueState("attendance.unroutable", "parked", 0, 0)],
        exchange="attendance.events", exchange_exists=True, exchange_bound=["notify.on_y"])
    assert [p.split(":")[0] for p in refusals(found, exchange=True)] == [
        "attendance is still running", "2 parked message(s) would be lost",
        "attendance.events still routes to 1 queue(s) of other modules"]
    assert "pamong dlq show attendance.on_x --limit 2" in refusals(found)[1]
    assert refusals(found, force=True, drop_parked=True) == []  # the exchange is kept
    assert found.waiting == 3
    assert topic_matches("#", "employee.upserted") and topic_matches("employee.*", "employee.x")
    assert not topic_matches("employee.*", "employee.x.y")
    assert topic_matches("*.upserted.#", "unit.upserted")
