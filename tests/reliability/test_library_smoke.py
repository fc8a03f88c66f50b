"""The pinned versions of nameko, eventlet, kombu, werkzeug and pymongo, proven together under
our launcher: concurrent HTTP requests that each write to the database, an RPC round trip,
an event, and the broker dropping every connection (the service must reconnect)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from pamong.storage import client_for, database_name
from pamong.testing import broker, free_port, rpc_proxy, serve_process, wait_until

pytestmark = pytest.mark.reliability

EVENT_QUEUE = "evt-smoke-smoke.stored--smoke.on_stored"
REQUESTS = 300
CONCURRENCY = 25


@pytest.fixture
def smoke_service(config, vhost):
    port = free_port()
    process = serve_process(config, "tests.smoke_service:SmokeService", port,
                            ready_path="/smoke/ping")
    base = f"http://127.0.0.1:{port}"
    try:
        # nameko declares its event queue only once its consumer runs, which can be after HTTP
        # answers; events dispatched before that are dropped (the reason for `bus declare`)
        wait_until(lambda: broker.queue_depth(vhost, EVENT_QUEUE) is not None, timeout=30,
                   interval=0.2, message="event queue declared")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_pinned_libraries_under_concurrency_and_broker_reconnect(config, vhost, smoke_service):
    db = client_for(config["MONGO_URI"])[database_name(config, "smoke")]

    def put(i):
        return requests.post(f"{smoke_service}/smoke/items/k{i}", data=f"v{i}",
                             timeout=30).status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses = list(pool.map(put, range(REQUESTS)))
    assert statuses == [201] * REQUESTS
    assert db.items.count_documents({}) == REQUESTS
    # generous: the machine is shared and slow at times; a lost event still fails the test
    wait_until(lambda: db.seen.count_documents({}) == REQUESTS, timeout=120, interval=0.2,
               message="every event handled")

    with rpc_proxy(config) as rpc:
        assert rpc.smoke.echo("halo") == {"echo": "halo", "items": REQUESTS}

    assert broker.drop_all_connections(vhost) >= 1

    def rpc_works_again():
        try:
            with rpc_proxy(config) as rpc:
                return rpc.smoke.echo("lagi")["echo"] == "lagi"
        except Exception:  # noqa: BLE001 - reconnecting
            return False

    wait_until(rpc_works_again, timeout=60, interval=0.5, message="RPC after reconnect")
    wait_until(lambda: put("after") == 201, timeout=30, message="HTTP + dispatch after reconnect")
    wait_until(lambda: db.seen.find_one({"_id": "kafter"}), timeout=30,
               message="event handled after reconnect")
    assert db.seen.find_one({"_id": "k0"})["n"] == 1
