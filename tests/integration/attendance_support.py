"""What the attendance integration tests share: a small Pemda fed to the service's directory
replica by real ``directory`` events over the broker, tokens, and a running service.

    def test_x(attendance):             # fixture from tests/integration/conftest.py
        client, db = attendance.client, attendance.db
        r = checkin(client, NIP_STAFF, key="k-00000001")
"""

import uuid
from dataclasses import dataclass

import pymongo

from pamong.events.contracts import dump_data
from pamong.events.envelope import new_event
from pamong.storage import database_name
from pamong.testing import publish_raw, wait_until

API = "/api/attendance/v1"

# Kabupaten Banyuwangi (WIB), a fictional OPD with an office, a bidang below it, another OPD,
# and a WITA unit to see that days are judged in the unit's own zone.
OFFICE = {"name": "Kantor Dinas Kesehatan", "latitude": -8.2192, "longitude": 114.3691,
          "radius_m": 100}
FAR = (-8.2292, 114.3691)  # about 1.1 km south of the office
NEAR = (-8.21925, 114.36915)  # a few metres from it

UNITS = [
    {"code": "3510", "name": "Pemerintah Kabupaten Banyuwangi", "kind": "pemda", "parent": None,
     "opd": None, "timezone": "Asia/Jakarta", "offices": []},
    {"code": "3510.03", "name": "Dinas Kesehatan", "kind": "opd", "parent": "3510",
     "opd": "3510.03", "timezone": "Asia/Jakarta", "offices": [OFFICE]},
    {"code": "3510.03.01", "name": "Bidang Pelayanan Kesehatan", "kind": "bidang",
     "parent": "3510.03", "opd": "3510.03", "timezone": "Asia/Jakarta", "offices": []},
    {"code": "3510.04", "name": "Dinas Pendidikan", "kind": "opd", "parent": "3510",
     "opd": "3510.04", "timezone": "Asia/Jakarta",
     "offices": [{"name": "Kantor Dinas Pendidikan", "latitude": -8.2100,
                  "longitude": 114.3600, "radius_m": 150}]},
    {"code": "3510.09", "name": "UPTD Pulau (WITA)", "kind": "uptd", "parent": "3510",
     "opd": "3510.09", "timezone": "Asia/Makassar", "offices": [OFFICE]},
]

NIP_HEAD = "197001011995031001"  # Kepala Dinas Kesehatan
NIP_KABID = "197505052000032002"  # Kabid Pelayanan, supervised by the head
NIP_STAFF = "198609262015051001"  # staff of the bidang, supervised by the kabid
NIP_STAFF2 = "199002022019031003"  # staff of the bidang, supervised by the kabid
NIP_OTHER = "198811112014022004"  # Dinas Pendidikan
NIP_WITA = "199101012020121005"  # UPTD in WITA

EMPLOYEES = [
    (NIP_HEAD, "dr. Hadi Santoso", "3510.03", None, "Kepala Dinas", True),
    (NIP_KABID, "Sri Wahyuni", "3510.03.01", NIP_HEAD, "Kepala Bidang", True),
    (NIP_STAFF, "Budi Prasetyo", "3510.03.01", NIP_KABID, "Perawat", False),
    (NIP_STAFF2, "Rina Kartika", "3510.03.01", NIP_KABID, "Bidan", False),
    (NIP_OTHER, "Agus Salim", "3510.04", None, "Guru", False),
    (NIP_WITA, "Made Wirawan", "3510.09", None, "Pelaksana", False),
]


def unit_event(unit, version=1, **changes):
    return {**unit, "active": True, "version": version, **changes}


def employee_event(nip, name, unit, supervisor, title, heads, version=1, **changes):
    opd = unit if unit.count(".") == 1 else unit.rsplit(".", 1)[0]
    return {"nip": nip, "kind": "pns", "name": name, "display_name": name,
            "gender": "L" if nip[14] == "1" else "P", "unit": unit, "opd": opd,
            "position": {"id": f"pos-{nip[-4:]}", "title": title,
                         "kind": "struktural" if heads else "pelaksana", "heads_unit": heads,
                         "may_sign": heads},
            "supervisor": supervisor, "phone": "+6281234567890", "email": None,
            "status": "active", "nik_masked": None, "version": version, **changes}


def publish_directory(config, event_type, data):
    """A directory event as the directory publishes it (contract-dumped, enveloped)."""
    event = new_event("directory", event_type, dump_data(event_type, 1, data),
                      opd=data.get("opd"))
    publish_raw(config, "directory", event_type, event)
    return event


def attendance_db(config, service="attendance"):
    return pymongo.MongoClient(config["MONGO_URI"], tz_aware=True)[
        database_name(config, service)]


def seed_directory(config, units=UNITS, employees=EMPLOYEES, service="attendance"):
    """Feed ``service``'s replica through the broker and wait until it holds everything."""
    db = attendance_db(config, service)
    for unit in units:
        publish_directory(config, "unit.upserted", unit_event(unit))
    for row in employees:
        publish_directory(config, "employee.upserted", employee_event(*row))
    wait_until(lambda: db.units.count_documents({}) >= len(units)
               and db.employees.count_documents({}) >= len(employees), timeout=30,
               message="the directory replica seeded")
    return db


def token(client, nip=None, roles=("pegawai",), opd="3510.03.01", sub=None):
    return client.token(roles=roles, opd=opd, sub=sub or nip or "admin-1", nip=nip)


def reading(position=NEAR, accuracy=10.0, device="dev-1", device_time=None, mock=False):
    from datetime import UTC, datetime

    return {"latitude": position[0], "longitude": position[1], "accuracy_m": accuracy,
            "device_id": device,
            "device_time": (device_time or datetime.now(UTC)).isoformat(),
            "mock_location": mock}


def checkin(client, nip, key=None, kind="in", opd="3510.03.01", **reading_args):
    return client.request("POST", f"{API}/check-{kind}", token=token(client, nip, opd=opd),
                          headers={"Idempotency-Key": key or uuid.uuid4().hex},
                          json=reading(**reading_args))


def count_from_midnight(client, unit="3510.03"):
    """Let ``unit``'s day count records from 00:00 (``checkin_from``) from today on: a test
    that checks in and expects it to count passes between midnight and 05:00 too (a record
    before the window opens is kept but does not count, by design)."""
    from datetime import UTC, datetime

    from services.attendance import domain

    today = domain.local_date(datetime.now(UTC), "Asia/Jakarta")
    answer = client.request("POST", f"{API}/units/{unit}/config",
                            token=token(client, roles=("admin",), opd=None),
                            json={"effective_from": today.isoformat(),
                                  "settings": {"checkin_from": "00:00"}})
    assert answer.status_code == 201, answer.text


@dataclass
class Running:
    """A service under test: its HTTP client, its database, its settings."""

    client: object
    db: object
    config: dict
