"""The replica kit (``pamong.replica``) in a second service, fed by the real directory over
the real broker: creates, updates, transfers, deactivations; duplicates and out-of-order
delivery; an empty replica catching up from a snapshot."""

import pymongo
import pytest

from pamong.events.contracts import dump_data
from pamong.events.envelope import new_event
from pamong.replica import REPLICA_INDEXES, DirectoryReplica
from pamong.storage import Mongo, database_name
from pamong.testing import HttpClient, done_marks, free_port, publish_raw, running, wait_until
from services.directory.service import DirectoryService
from tests.integration.test_directory_api import (
    API,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    admin,
    seed,
)

pytestmark = pytest.mark.integration


class ReplicaProbe(DirectoryReplica):
    """A module that keeps a directory replica and nothing else."""

    name = "replicaprobe"
    db = Mongo(indexes=REPLICA_INDEXES)


@pytest.fixture
def web(config):
    port = free_port()
    config = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}
    return config, HttpClient(f"http://127.0.0.1:{port}", config)


def replica_db(config):
    return pymongo.MongoClient(config["MONGO_URI"])[database_name(config, "replicaprobe")]


def replica_employee(config, nip):
    return replica_db(config).employees.find_one({"_id": nip})


def test_replica_follows_create_update_transfer_and_deactivate(web):
    config, client = web
    with running(config, DirectoryService, ReplicaProbe):
        seed(client)
        db = replica_db(config)
        wait_until(lambda: db.employees.count_documents({}) == 4, timeout=20,
                   message="four employees in the replica")
        assert db.units.count_documents({}) == 4
        staff = replica_employee(config, NIP_STAFF)
        assert staff["unit"] == "3510.03.01" and staff["supervisor"] == NIP_KABID
        assert staff["position"]["title"] == "Perawat" and staff["version"] == 1

        admin(client, "PUT", f"{API}/employees/{NIP_STAFF}", json={
            "name": "Agus Santoso", "title_back": "S.Kep., Ners", "unit": "3510.03.01",
            "position": "dinkes-perawat"})
        wait_until(lambda: replica_employee(config, NIP_STAFF)["version"] == 2, timeout=15)
        assert replica_employee(config, NIP_STAFF)["display_name"] == "Agus Santoso, S.Kep., Ners"

        admin(client, "POST", f"{API}/employees/{NIP_OTHER}/transfer",
              json={"unit": "3510.03.01", "position": "dinkes-perawat"})
        wait_until(lambda: replica_employee(config, NIP_OTHER)["unit"] == "3510.03.01",
                   timeout=15)
        assert replica_employee(config, NIP_OTHER)["opd"] == "3510.03"

        admin(client, "POST", f"{API}/employees/{NIP_KABID}/deactivate",
              json={"status": "retired"})
        wait_until(lambda: replica_employee(config, NIP_KABID)["status"] == "retired",
                   timeout=15)
        # the staff's derived supervisor moved up, and the replica heard of it
        wait_until(lambda: replica_employee(config, NIP_STAFF)["supervisor"] != NIP_KABID,
                   timeout=15)


def _employee_event(nip, version, name):
    data = {"nip": nip, "kind": "pns", "name": name, "display_name": name, "gender": "L",
            "unit": "3510.03", "opd": "3510.03", "position": None, "supervisor": None,
            "phone": None, "email": None, "status": "active", "nik_masked": None,
            "version": version}
    return new_event("directory", "employee.upserted", dump_data("employee.upserted", 1, data))


def test_duplicates_and_out_of_order_events_do_not_corrupt_the_replica(config):
    nip = "199003032015031003"
    v1, v2, v3 = (_employee_event(nip, v, f"Name v{v}") for v in (1, 2, 3))
    # a distinct event (its own id, so the inbox lets it through) carrying a version the
    # replica already holds: only the version compare keeps it out (the content differs here
    # only to see which one won; the directory never publishes two contents for one version)
    v3_again = _employee_event(nip, 3, "Name v3, published twice")
    with running(config, ReplicaProbe):
        # a redelivery, a late v1, a late v2, a second event of version 3
        for event in (v2, v2, v3, v1, v2, v3, v3_again):
            publish_raw(config, "directory", "employee.upserted", event)
        wait_until(lambda: (replica_employee(config, nip) or {}).get("version") == 3,
                   timeout=15)
        # every distinct event (v1 late included) has been handled; repeats of an id cannot
        # run again (inbox), so nothing can still change the record
        wait_until(lambda: done_marks(replica_db(config)) == 4,
                   timeout=15)
        stored = replica_employee(config, nip)
        assert stored["name"] == "Name v3" and stored["version"] == 3


def test_an_empty_replica_catches_up_from_a_snapshot(web):
    config, client = web
    with running(config, DirectoryService):
        seed(client)
        acting = admin(client, "POST", f"{API}/acting", json={
            "kind": "plh", "position": "dinkes-kadis", "nip": NIP_KABID,
            "start": "2026-12-01", "end": "2026-12-31"})
    # the replica module is installed later: nothing of the above was queued for it
    with running(config, DirectoryService, ReplicaProbe):
        db = replica_db(config)
        wait_until(lambda: db.employees.count_documents({}) == 4, timeout=30,
                   message="the replica filled from the snapshot")
        wait_until(lambda: db.units.count_documents({}) == 4 and db.acting.count_documents({}),
                   timeout=15)
        assert replica_employee(config, NIP_STAFF)["supervisor"] == NIP_KABID
        stored = db.acting.find_one({"_id": acting["id"]})
        assert stored["nip"] == NIP_KABID and stored["start"] == "2026-12-01"
        assert stored["ended_on"] is None
