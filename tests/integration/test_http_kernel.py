"""The HTTP kernel (routes, problems, auth, health, metrics, OpenAPI) in a real nameko
container against the real broker and database."""

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pymongo
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from nameko.containers import ServiceContainer

from pamong.testing import HttpClient, free_port
from pamong.web.openapi import spec_for
from pamong.web.pagination import encode_cursor
from tests.integration.httpkernel_service import HttpKernelService

pytestmark = pytest.mark.integration

THINGS = "/api/things/v1/things"


def start_service(request, config, **overrides):
    port = free_port()
    config = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}", **overrides}
    container = ServiceContainer(HttpKernelService, config)
    container.start()
    request.addfinalizer(container.stop)
    return HttpClient(f"http://127.0.0.1:{port}", config)


@pytest.fixture
def client(request, config):
    return start_service(request, config)


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def create(client, opd="3510.01", name="meja", **kwargs):
    response = client.as_staff("POST", THINGS, opd=opd, json={"name": name, "opd": opd},
                               **kwargs)
    assert response.status_code == 201, response.text
    return response.json()


# authentication and authorisation


def test_missing_token_is_401_with_bearer_challenge(client):
    response = client.request("GET", THINGS)
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_expired_and_forged_tokens_are_401(client):
    expired = client.token(ttl_seconds=-3600)
    forged = jwt.encode({"sub": "u1", "roles": ["admin"], "exp": int(time.time()) + 600},
                        "not-the-configured-secret-but-long-enough", algorithm="HS256")
    for token, detail in ((expired, "expired"), (forged, "invalid"), ("garbage", "malformed")):
        body = assert_problem(client.request("GET", THINGS, token=token), 401)
        assert detail in body["detail"]


def test_wrong_role_is_403(client):
    response = client.as_staff("GET", THINGS, roles=("pegawai",))
    assert_problem(response, 403)


def test_another_opds_record_is_404_like_a_missing_one(client):
    thing = create(client, opd="3510.02")
    other_opd = client.as_staff("GET", f"{THINGS}/{thing['id']}", opd="3510.01")
    missing = client.as_staff("GET", f"{THINGS}/no-such-thing", opd="3510.01")
    assert assert_problem(other_opd, 404) == assert_problem(missing, 404)
    # the subtree and Pemda-wide roles see it
    assert client.as_staff("GET", f"{THINGS}/{thing['id']}", opd="3510.02").status_code == 200
    assert client.as_staff("GET", f"{THINGS}/{thing['id']}", roles=("admin",),
                           opd=None).status_code == 200


def test_any_authenticated_caller_and_three_tuple_results(client):
    response = client.as_staff("GET", "/api/things/v1/whoami", roles=("pegawai",))
    assert response.status_code == 200
    assert response.json() == {"sub": "u1", "roles": ["pegawai"]}
    assert response.headers["X-Whoami"] == "1"


# request bodies


def test_created_thing_is_dumped_with_the_response_schema_and_records_the_actor(client):
    thing = create(client, headers={"X-Request-ID": "req-42"})
    assert thing["name"] == "meja" and thing["count"] == 0
    assert thing["created_at"].endswith("+00:00")
    assert thing["created_by"] == {"sub": "u1", "role": "opd_admin"}
    assert thing["correlation_id"] == "req-42"
    assert "_id" not in thing


def test_invalid_body_is_422_naming_the_fields(client):
    response = client.as_staff("POST", THINGS, json={"opd": "3510.01", "count": -1,
                                                     "colour": "red"})
    body = assert_problem(response, 422)
    assert set(body["errors"]) == {"name", "count", "colour"}
    assert body["errors"]["colour"] == ["Unknown field."]


def test_oversized_body_is_413(client):
    big = json.dumps({"name": "x" * (1024 * 1024), "opd": "3510.01"})
    response = client.as_staff("POST", THINGS, data=big,
                               headers={"Content-Type": "application/json"})
    assert_problem(response, 413)


def test_chunked_bodies_are_read_and_limited(request, config):
    client = start_service(request, config, HTTP_MAX_BODY_BYTES=1000)
    small = (b'{"name": "meja", ', b'"opd": "3510.01"}')
    response = client.as_staff("POST", THINGS, data=iter(small),
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text

    chunks = (b'{"name": "' + b"x" * 600, b"y" * 600 + b'", "opd": "3510.01"}')
    response = client.as_staff("POST", THINGS, data=iter(chunks),
                               headers={"Content-Type": "application/json"})
    assert "Content-Length" not in response.request.headers
    assert_problem(response, 413)


def test_body_that_is_not_json_content_is_415(client):
    response = client.as_staff("POST", THINGS, data="name=meja",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_problem(response, 415)


def test_malformed_json_is_400(client):
    response = client.as_staff("POST", THINGS, data='{"name": ',
                               headers={"Content-Type": "application/json"})
    assert_problem(response, 400)


def test_validation_happens_after_authentication(client):
    response = client.request("POST", THINGS, data="{not json",
                              headers={"Content-Type": "application/json"})
    assert_problem(response, 401)


# pagination


def test_list_pages_with_an_opaque_cursor(client):
    created = {create(client, name=f"t{i}")["id"] for i in range(5)}
    create(client, opd="3510.02")  # another OPD: never listed
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.as_staff("GET", THINGS, params=params).json()
        seen += [thing["id"] for thing in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 5 and set(seen) == created


def test_bad_cursor_is_400_and_bad_limit_is_422(client):
    tampered = encode_cursor({"_id": "x"})[:-4] + "AAAA"
    assert_problem(client.as_staff("GET", THINGS, params={"cursor": tampered}), 400)
    body = assert_problem(client.as_staff("GET", THINGS, params={"limit": 1000}), 422)
    assert "limit" in body["errors"]


# correlation id, errors, routing


def test_request_id_is_echoed_or_created(client):
    assert client.request("GET", THINGS, headers={"X-Request-ID": "abc-123"}) \
        .headers["X-Request-ID"] == "abc-123"
    created = client.request("GET", THINGS).headers["X-Request-ID"]
    assert len(created) == 32 and created != "abc-123"
    forged = client.request("GET", THINGS, headers={"X-Request-ID": "a b\tinjected"})
    assert forged.headers["X-Request-ID"] != "a b\tinjected"


def test_unexpected_error_is_a_generic_500_logged_with_the_correlation_id(client, caplog):
    with caplog.at_level(logging.ERROR, logger="pamong.web.route"):
        response = client.request("GET", "/api/things/v1/boom",
                                  headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500)
    assert "secret" not in response.text and "Traceback" not in response.text
    assert "X-Request-ID" in body["detail"]
    logged = [r for r in caplog.records if getattr(r, "correlation_id", None) == "boom-1"]
    assert logged and logged[0].exc_info and "boom-1" in logged[0].getMessage()


def test_unknown_path_and_wrong_method_are_problems(client):
    assert_problem(client.request("GET", "/api/things/v1/nope"), 404)
    response = client.request("PUT", THINGS)
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_delete_answers_204_without_body(client):
    thing = create(client)
    response = client.as_staff("DELETE", f"{THINGS}/{thing['id']}", roles=("admin",))
    assert response.status_code == 204 and response.content == b""


# health, metrics, OpenAPI


def test_health_live_and_ready(client):
    assert client.request("GET", "/health/live").json() == {"status": "live"}
    started = time.monotonic()
    response = client.request("GET", "/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}
    assert time.monotonic() - started < 2


def test_metrics_count_requests_by_route_template(client):
    thing = create(client)
    client.as_staff("GET", f"{THINGS}/{thing['id']}")
    response = client.request("GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    lines = [line for line in response.text.splitlines()
             if line.startswith("pamong_http_requests_total{")]
    assert any('route="/api/things/v1/things/<thing_id>"' in line and 'status="200"' in line
               and 'service="httpkernel"' in line for line in lines), lines
    assert not any(thing["id"] in line for line in lines)
    assert "pamong_http_request_seconds_bucket" in response.text


def test_openapi_document_describes_routes_schemas_and_security(client):
    spec = spec_for(HttpKernelService, "httpkernel", "1.0.0")
    assert spec["openapi"] == "3.1.0"
    assert spec["info"] == {"title": "httpkernel", "version": "1.0.0"}
    create_op = spec["paths"]["/api/things/v1/things"]["post"]
    body_ref = create_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body_schema = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body_schema["properties"]) == {"name", "opd", "count"}
    assert body_schema["required"] == ["name", "opd"]
    assert body_schema["additionalProperties"] is False
    assert create_op["security"] == [{"bearerAuth": []}]
    assert "`admin`" in create_op["description"] and "`opd_admin`" in create_op["description"]
    assert "201" in create_op["responses"]
    assert create_op["responses"]["422"]["content"]["application/problem+json"]["schema"] \
        == {"$ref": "#/components/schemas/Problem"}
    get_op = spec["paths"]["/api/things/v1/things/{thing_id}"]["get"]
    assert get_op["parameters"][0]["name"] == "thing_id" and "404" in get_op["responses"]
    list_params = {p["name"] for p in spec["paths"]["/api/things/v1/things"]["get"]["parameters"]}
    assert list_params == {"limit", "cursor", "opd"}
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/api/things/v1/boom"]["get"]["security"] == []
    assert "/health/ready" not in spec["paths"] and "/metrics" not in spec["paths"]
    # the service serves the same document
    assert client.request("GET", "/api/things/v1/openapi.json").json() == spec


# RS256 through a JWKS served by a real local HTTP server


class JwksServer:
    def __init__(self):
        self.keys = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/realms/pemda/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def publish(self, kid, private_key):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        self.keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})


@pytest.fixture
def jwks():
    server = JwksServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rs256(private_key, kid, **claims):
    payload = {"sub": "kc-1", "roles": ["pegawai"], "opd": "3510.01", "aud": "pamong",
               "iss": "https://sso.test/realms/pemda", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, private_key, algorithm="RS256", headers={"kid": kid})


def test_rs256_tokens_verified_against_jwks(request, config, jwks):
    signing_key, other_key, rotated_key = rsa_key(), rsa_key(), rsa_key()
    jwks.publish("k1", signing_key)
    client = start_service(request, config, JWT_JWKS_URL=jwks.url, JWT_SECRET=None,
                           JWT_AUDIENCE="pamong", JWT_ISSUER="https://sso.test/realms/pemda",
                           JWT_JWKS_REFRESH_COOLDOWN_SECONDS=0)
    whoami = "/api/things/v1/whoami"

    ok = client.request("GET", whoami, token=rs256(signing_key, "k1"))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"sub": "kc-1", "roles": ["pegawai"]}

    assert_problem(client.request("GET", whoami, token=rs256(other_key, "k1")), 401)
    assert_problem(client.request("GET", whoami, token=rs256(signing_key, "k1", iss="evil")),
                   401)
    assert_problem(client.request("GET", whoami, token=rs256(signing_key, "k1", aud="other")),
                   401)
    assert_problem(client.request("GET", whoami, token=rs256(rotated_key, "k2")), 401)

    # the provider rotates keys: an unknown kid makes the service fetch the JWKS again
    jwks.publish("k2", rotated_key)
    assert client.request("GET", whoami, token=rs256(rotated_key, "k2")).status_code == 200


def test_unreachable_jwks_is_503_not_401(request, config):
    client = start_service(request, config, JWT_JWKS_URL=f"http://127.0.0.1:{free_port()}/c",
                           JWT_SECRET=None, JWT_AUDIENCE="pamong", JWT_JWKS_TIMEOUT_SECONDS=1)
    response = client.request("GET", "/api/things/v1/whoami", token=rs256(rsa_key(), "k1"))
    assert_problem(response, 503)


# readiness stays fast when a server hangs


def test_readiness_names_hanging_servers_within_two_seconds():
    from types import SimpleNamespace

    from pamong.health import ReadinessChecker
    from pamong.storage import Mongo

    # listening sockets that never accept: the TCP handshake succeeds, then nothing answers
    hanging = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    broker_port, db_port = (sock.getsockname()[1] for sock in hanging)
    mongo = Mongo()
    # the production client's settings: server selection alone would wait 3 s
    mongo.db = pymongo.MongoClient(f"mongodb://127.0.0.1:{db_port}/",
                                   serverSelectionTimeoutMS=3000)["pamong_hang"]
    container = SimpleNamespace(config={"AMQP_URI": f"amqp://guest:guest@127.0.0.1:{broker_port}/"},
                                dependencies=[mongo])
    try:
        started = time.monotonic()
        failing = ReadinessChecker(container).check()
        elapsed = time.monotonic() - started
    finally:
        mongo.db.client.close()
        for sock in hanging:
            sock.close()
    assert set(failing) == {"broker", "database"}
    assert elapsed < 2.5, elapsed
