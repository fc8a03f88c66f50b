"""The demo permits (``services/permits/seed.py``) through the real service: four permit
types of the DPMPTSP, applications in every state of the lifecycle, the open ones dated back
so that some are near or over their SLA; a second run creates and changes nothing."""

import pytest
from nameko.containers import ServiceContainer

import services.permits.seed as demo_seed
from pamong.testing import HttpClient, free_port, wait_until
from services.permits import domain
from services.permits.seed import FILES, seed
from services.permits.service import PermitsService
from services.permits.store import local_today
from tests.integration.attendance_support import UNITS, Running, seed_directory

pytestmark = pytest.mark.integration

# the demo directory's licensing office and the recommending OPDs the test replica lacks
DEMO_UNITS = [
    {"code": "3510.05", "name": "Dinas Penanaman Modal dan Pelayanan Terpadu Satu Pintu",
     "kind": "opd", "parent": "3510", "opd": "3510.05", "timezone": "Asia/Jakarta",
     "offices": []},
    {"code": "3510.07", "name": "Badan Perencanaan Pembangunan Daerah", "kind": "opd",
     "parent": "3510", "opd": "3510.07", "timezone": "Asia/Jakarta", "offices": []},
    {"code": "3510.08", "name": "Kecamatan Genteng", "kind": "kecamatan", "parent": "3510",
     "opd": "3510.08", "timezone": "Asia/Jakarta", "offices": []},
]


@pytest.fixture
def demo(request, config):
    """The permits service with the demo units in its replica and its SLA timer on (every
    second, on the real today), as ``make run`` has it."""
    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "PERMITS_REFERENCE_CACHE_SECONDS": 0,
                "PERMITS_SLA_INTERVAL_SECONDS": 1, "PERMITS_EXPIRY_INTERVAL_SECONDS": 0}
    container = ServiceContainer(PermitsService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config, units=UNITS + DEMO_UNITS, service="permits")
    return Running(HttpClient(f"http://127.0.0.1:{port}", config), db, settings)


def test_demo_permits_cover_every_state_and_a_second_run_changes_nothing(demo):
    db, today = demo.db, local_today(demo.config)
    first = seed(demo.client.base_url, demo.config)
    assert first["types"] == 4
    assert first["applications"] == {"created": len(FILES), "present": 0}

    types = {t["_id"]: t for t in db.types.find({})}
    assert set(types) == {"PBG", "SIP", "REKLAME", "TDUP"}
    assert {t["opd"] for t in types.values()} == {"3510.05"}
    assert types["PBG"]["recommenders"] == ["3510.07"]  # no Dinas PUPR: Bappeda
    assert types["SIP"]["recommenders"] == ["3510.03"] and types["SIP"]["fee"] == 0
    assert types["PBG"]["site_visit"] and types["PBG"]["fee"] > 0
    assert types["TDUP"]["needs_business"] and types["REKLAME"]["validity_months"] == 12
    assert db.holidays.count_documents({}) == 1

    apps = list(db.applications.find({}))
    assert len(apps) == len(FILES)
    assert {a["state"] for a in apps} == set(domain.STATES)  # every state of the lifecycle
    issued = [a for a in apps if a.get("permit")]
    assert {a["state"] for a in issued} == {"issued", "collected", "expired", "revoked"}
    assert all(a["permit"]["number"] and a["permit"]["code"] for a in issued)
    assert sum(1 for a in apps if a.get("skm")) == 3
    assert all(a["registration_number"] for a in apps if a["state"] not in (
        "draft", "submitted", "returned_incomplete", "resubmitted"))
    assert sum(1 for a in apps if a["owner"] is None) == 4  # entered at the counter

    # the open files were dated back: their clocks ran, some near or over the SLA
    dated = [a for a in apps if a["timeline"][0]["on"] < today.isoformat()]
    assert len(dated) == first["dated"] >= 10
    assert all(a["state"] in domain.OPEN for a in dated)
    officer = demo.client.token(roles=("petugas",), opd="3510.05", sub="officer-1")
    clocks = {}
    for app in dated:
        r = demo.client.request("GET", f"/api/permits/v1/applications/{app['_id']}",
                                token=officer)
        assert r.status_code == 200, r.text
        clocks[app["_id"]] = r.json()["clock"]
    assert all(c["used"] > 0 for c in clocks.values()), clocks
    assert any(0 <= c["left"] <= 2 for c in clocks.values() if c["running"])  # near breach
    assert any(c["left"] < 0 for c in clocks.values())  # breached
    # the service's SLA timer sends their alerts, and the dashboard counts them
    wait_until(lambda: (db.stats.find_one({"_id": "all"}) or {}).get("sla", {}).get(
        "breaches", 0) >= 1 and db.stats.find_one({"_id": "all"})["sla"].get("warnings", 0)
        >= 3, timeout=30, message="the demo's SLA warnings and breaches on the dashboard")

    # a second run: nothing new, nothing changed
    versions = {a["_id"]: a["version"] for a in apps}
    count = db.applications.count_documents({})
    again = seed(demo.client.base_url, demo.config)
    assert again["applications"] == {"created": 0, "present": len(FILES)}
    assert again["dated"] == 0
    assert db.applications.count_documents({}) == count
    assert {a["_id"]: a["version"] for a in db.applications.find({})} == versions
    assert db.types.find_one({"_id": "PBG"})["version"] == types["PBG"]["version"]


def test_a_run_stopped_half_way_is_completed_by_the_next(demo):
    """The first run is cut after three files and the first step of a fourth (as a stop in
    the middle leaves it); the next one completes that file, dates it back again, and
    creates the rest."""
    full = demo_seed.FILES
    key, code, person, counter, steps, age = full[3]
    assert key == "returned-pbg" and [s[0] for s in steps] == ["submit", "return"]
    demo_seed.FILES = [*full[:3], (key, code, person, counter, steps[:1], age)]
    try:
        seed(demo.client.base_url, demo.config)
    finally:
        demo_seed.FILES = full
    second = seed(demo.client.base_url, demo.config)
    assert second["applications"] == {"created": len(full) - 4, "present": 4}
    apps = list(demo.db.applications.find({}))
    assert {a["state"] for a in apps} == set(domain.STATES)
    returned = [a for a in apps if a["state"] == "returned_incomplete"]
    assert len(returned) == 1
    days = [e["on"] for e in returned[0]["timeline"] if e.get("action") in domain.ACTIONS]
    today = local_today(demo.config)
    assert len(days) == 2 and days[0] < days[1] < today.isoformat()
