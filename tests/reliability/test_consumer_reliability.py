"""The event consumer when things break for real: a consumer process killed between its
handler's effect and the inbox's done mark, and the database stopping under a failing handler
(a private FerretDB, so the rest of the suite is not disturbed)."""

import logging
import signal
import threading

import pytest
import requests

from pamong.events import dlq
from pamong.events.consumer import handles
from pamong.events.envelope import new_event
from pamong.health import HealthEndpoints
from pamong.storage import Mongo, client_for, database_name
from pamong.testing import done_marks, free_port, publish_raw, running, serve_process, wait_until
from tests.kernel_services import ProbeRecorded  # noqa: F401 - registers probe.recorded
from tests.reliability.test_readiness import FERRETDB, PrivateFerretDB

pytestmark = pytest.mark.reliability


def db_of(config, service):
    return client_for(config["MONGO_URI"])[database_name(config, service)]


def envelope(key, amount=1):
    return new_event("probe", "probe.recorded", {"key": key, "amount": amount})


def test_a_kill_between_the_effect_and_the_done_mark_does_not_apply_the_event_twice(config):
    db = db_of(config, "probeonce")
    db.stalls.insert_one({"_id": "k"})  # the first run stops after its effect
    service = "tests.kernel_services:OnceConsumer"
    first = serve_process(config, service, free_port(), INBOX_LEASE_SECONDS=1)
    try:
        publish_raw(config, "probe", "probe.recorded", envelope("k", 5))
        wait_until(lambda: db.totals.find_one({"_id": "k"}) and not db.stalls.find_one(),
                   message="effect written, handler stalled")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert done_marks(db) == 0  # the broker redelivers it: the handler runs again
    second = serve_process(config, service, free_port(), INBOX_LEASE_SECONDS=1)
    try:
        wait_until(lambda: done_marks(db) == 1, timeout=20, message="redelivery handled")
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert db.totals.find_one({"_id": "k"})["times"] == 1


HANDLER_RUNNING = threading.Event()
DATABASE_STOPPED = threading.Event()


class OutageSink(HealthEndpoints):
    name = "outagesink"
    db = Mongo()

    @handles("probe", "probe.recorded")
    def on_recorded(self, event):
        if not HANDLER_RUNNING.is_set():  # the first run fails once the database is gone
            HANDLER_RUNNING.set()
            DATABASE_STOPPED.wait()
            raise RuntimeError("failed while the database is down")
        self.db.totals.update_one({"_id": event.data["key"]}, {"$inc": {"times": 1}},
                                  upsert=True)


@pytest.mark.skipif(not FERRETDB.exists(), reason="needs the FerretDB binary that `make` builds")
def test_a_handler_failing_while_the_database_is_down_leaves_the_service_up(config, tmp_path,
                                                                           caplog):
    caplog.set_level(logging.WARNING, logger="pamong.events.consumer")
    database = PrivateFerretDB(tmp_path)
    database.start()
    port = free_port()
    config = {**config, "MONGO_URI": f"mongodb://127.0.0.1:{database.port}/",
              "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", "INBOX_LEASE_SECONDS": 2}
    base = f"http://127.0.0.1:{port}/health"

    def requeued():
        return [r for r in caplog.records if "message requeued" in r.getMessage()]

    def alive():
        try:
            return requests.get(f"{base}/live", timeout=10).ok
        except requests.ConnectionError:
            return False

    try:
        with running(config, OutageSink):
            publish_raw(config, "probe", "probe.recorded", envelope("k"))
            wait_until(HANDLER_RUNNING.is_set, message="handler running")
            database.stop()
            DATABASE_STOPPED.set()
            # the failure path cannot release the claim: the message waits, the service lives
            wait_until(lambda: requeued() or not alive(), timeout=15,
                       message="failure path run")
            assert alive(), "the service died of the outage"
            assert requeued()
            assert requests.get(f"{base}/ready", timeout=10).status_code == 503
            assert dlq.list_dlqs(config["AMQP_URI"], ["outagesink.on_recorded"])[0][1] == 0

            database.start()
            totals = db_of(config, "outagesink").totals
            wait_until(lambda: totals.find_one({"_id": "k"}), timeout=30, interval=0.2,
                       message="handled once the database is back")
            assert requests.get(f"{base}/ready", timeout=10).ok
        assert totals.find_one({"_id": "k"})["times"] == 1
        assert dlq.list_dlqs(config["AMQP_URI"], ["outagesink.on_recorded"])[0][1] == 0
    finally:
        if database.process.poll() is None:
            database.stop()

