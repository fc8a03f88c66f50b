"""The HTTP API while the database is down or hung: 503 problem+json with ``Retry-After``
within the configured server-selection timeout, and back to normal without a restart.

The database is a private FerretDB (stopped and started here) or the shared one behind a TCP
proxy this test freezes, so the rest of the suite is not disturbed."""

import time

import eventlet
import pymongo.errors
import pytest
from nameko.containers import ServiceContainer

from pamong.storage import client_for
from pamong.testing import HttpClient, free_port, wait_until
from pamong.testing.proxy import TcpProxy
from tests.integration.httpkernel_service import HttpKernelService
from tests.reliability.test_readiness import FERRETDB, PrivateFerretDB

pytestmark = pytest.mark.reliability

THINGS = "/api/things/v1/things"
SELECTION_TIMEOUT = 2  # MONGO_SERVER_SELECTION_TIMEOUT_SECONDS's default


def start_service(request, config, mongo_uri, **overrides):
    port = free_port()
    config = {**config, "MONGO_URI": mongo_uri, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
              **overrides}
    container = ServiceContainer(HttpKernelService, config)
    container.start()
    request.addfinalizer(container.stop)
    return HttpClient(f"http://127.0.0.1:{port}", config)


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def assert_unavailable(response):
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["status"] == 503


@pytest.mark.skipif(not FERRETDB.exists(), reason="needs the FerretDB binary that `make` builds")
def test_stopped_database_answers_503_at_once_and_recovers_without_restart(request, config,
                                                                           tmp_path):
    database = PrivateFerretDB(tmp_path)
    database.start()
    request.addfinalizer(lambda: database.process.poll() is None and database.stop())
    client = start_service(request, config, f"mongodb://127.0.0.1:{database.port}/")
    created = client.as_staff("POST", THINGS, json={"name": "meja", "opd": "3510.01"})
    assert created.status_code == 201, created.text
    thing = f"{THINGS}/{created.json()['id']}"

    database.stop()
    for call in (lambda: client.as_staff("GET", thing),
                 lambda: client.as_staff("POST", THINGS, json={"name": "x", "opd": "3510.01"})):
        response, seconds = timed(call)
        assert_unavailable(response)
        assert seconds < SELECTION_TIMEOUT + 1, seconds
    assert client.request("GET", "/health/ready").status_code == 503

    database.start()
    wait_until(lambda: client.as_staff("GET", thing).status_code == 200, timeout=30,
               interval=0.5, message="the API answering again")
    assert client.request("GET", "/health/ready").status_code == 200


def test_hung_database_ends_an_operation_after_the_socket_timeout(request, config):
    proxy = TcpProxy("127.0.0.1", pymongo.uri_parser.parse_uri(config["MONGO_URI"])
                     ["nodelist"][0][1])
    request.addfinalizer(proxy.close)
    uri = f"mongodb://127.0.0.1:{proxy.port}/"
    settings = {"MONGO_SOCKET_TIMEOUT_SECONDS": 0.5, "MONGO_SERVER_SELECTION_TIMEOUT_SECONDS": 1}
    things = client_for(uri, settings)[config["MONGO_DB_PREFIX"] + "hung"].things
    things.insert_one({"_id": "a"})

    proxy.freeze()  # the server accepted the request and never answers
    started = time.monotonic()
    with eventlet.Timeout(10, AssertionError("the operation hung on the frozen database")), \
            pytest.raises(pymongo.errors.ConnectionFailure):
        things.find_one({"_id": "a"})
    assert time.monotonic() - started < 3

    # and over HTTP: a 503 rather than a request that never ends
    client = start_service(request, config, uri, **settings)
    response, seconds = timed(lambda: client.as_staff("GET", f"{THINGS}/a"))
    assert_unavailable(response)
    assert seconds < 5, seconds

    proxy.restore()
    wait_until(lambda: client.as_staff("GET", f"{THINGS}/a").status_code == 404, timeout=30,
               interval=0.5, message="the API answering again")
