"""Public tracking (registration number + 4 digits, rate-limited), public verification of an
issued permit, and the WhatsApp status RPC, through the running service."""

import time
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook

from pamong.localtime import local_today
from pamong.testing import HttpClient, free_port, race, rpc_proxy, wait_until
from tests.integration.attendance_support import seed_directory
from tests.integration.permits_support import (
    API,
    NIK,
    PHONE_E164,
    citizen,
    head,
    officer,
    publish_type,
    reviewer,
    step,
    submitted,
)

pytestmark = pytest.mark.integration

LIMIT = 5
PERSONAL = (NIK, "Siti", "Aminah", PHONE_E164, "81234567890", "siti.aminah", "Ahmad Yani",
            "1990-12-05")


@pytest.fixture
def service(request, config):
    """A permits service whose tracking limit is small and whose client address is the
    ``X-Real-IP`` header (so a test plays several clients); its container for the timers."""
    from services.permits.service import PermitsService

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "PERMITS_REFERENCE_CACHE_SECONDS": 0,
                "PERMITS_SLA_INTERVAL_SECONDS": 0, "PERMITS_EXPIRY_INTERVAL_SECONDS": 0,
                "PERMITS_TRACK_PER_MINUTE": LIMIT, "PERMITS_CLIENT_IP_HEADER": "X-Real-IP"}
    container = ServiceContainer(PermitsService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config, service="permits")
    return SimpleNamespace(client=HttpClient(f"http://127.0.0.1:{port}", config), db=db,
                           container=container, config=settings)


def registered(client):
    publish_type(client)
    app = submitted(client)
    return step(client, app, "register", officer(client))


def issued(client):
    app = registered(client)
    for action, token in (("start_review", officer(client)), ("recommend", reviewer(client)),
                          ("sign", head(client)), ("issue", officer(client))):
        app = step(client, app, action, token)
    return app


def track(client, number, last4, ip="10.0.0.1"):
    return client.request("GET", f"{API}/track", params={"number": number, "last4": last4},
                          headers={"X-Real-IP": ip})


def code_of(db, app_id):
    return db.applications.find_one({"_id": app_id})["permit"]["code"]


def verify(client, code):
    return client.request("GET", f"{API}/verify/{code}")


# -- tracking ----------------------------------------------------------------------------------

def test_tracking_with_the_nik_or_phone_digits_shows_the_timeline_and_no_personal_data(
        service):
    client = service.client
    app = registered(client)
    number = app["registration_number"]
    by_nik = track(client, number, NIK[-4:])
    assert by_nik.status_code == 200, by_nik.text
    body = by_nik.json()
    assert body["registration_number"] == number and body["state"] == "registered"
    assert body["label"] == "Terdaftar" and body["stage"] == "teknis"
    assert [s["state"] for s in body["timeline"]] == ["draft", "submitted", "registered"]
    assert body["days_used"] == 0 and body["days_left"] == body["sla_days"] == 5
    assert body["running"] is True and body["expected_by"] > local_today().isoformat()
    assert by_nik.headers["Cache-Control"] == "no-store"
    for secret in PERSONAL:
        assert secret not in by_nik.text
    by_phone = track(client, number.lower(), PHONE_E164[-4:])  # typed in lower case
    assert by_phone.status_code == 200 and by_phone.json() == body


def test_a_wrong_number_and_wrong_digits_answer_the_same(service):
    client = service.client
    app = registered(client)
    wrong_digits = track(client, app["registration_number"], "0002")
    unknown = track(client, "REG-2026-999999", NIK[-4:])
    assert wrong_digits.status_code == unknown.status_code == 404
    assert wrong_digits.content == unknown.content
    same = ("Content-Type", "Content-Length", "Cache-Control")
    assert [wrong_digits.headers.get(h) for h in same] == [unknown.headers.get(h) for h in same]
    assert "registration number" in unknown.json()["detail"]


def test_a_wrong_guess_does_not_take_longer_or_shorter_than_an_unknown_number(service):
    """The same reads either way: the medians of many tries are close (a loose bound, this
    machine is shared)."""
    client = service.client
    app = registered(client)
    times = {"wrong": [], "unknown": []}
    for n in range(20):
        for kind, number in (("wrong", app["registration_number"]),
                             ("unknown", "REG-2026-999999")):
            started = time.perf_counter()
            r = track(client, number, "0002", ip=f"10.1.{n}.{kind == 'wrong'}")
            times[kind].append(time.perf_counter() - started)
            assert r.status_code == 404
    medians = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    assert abs(medians["wrong"] - medians["unknown"]) < 0.02 + 0.25 * min(medians.values()), \
        medians


def test_malformed_input_is_a_422_that_changes_nothing(service):
    client = service.client
    for params in ({"number": "12345", "last4": "0001"}, {"number": "REG-2026-000001",
                                                          "last4": "01"},
                   {"number": "REG-2026-000001"}, {"number": "REG-2026-000001",
                                                   "last4": "abcd"}):
        r = client.request("GET", f"{API}/track", params=params,
                           headers={"X-Real-IP": "10.9.9.9"})
        assert r.status_code == 422, r.text
    assert service.db.limits.count_documents({}) == 0


def test_tracking_is_limited_per_client_per_minute(service):
    client = service.client
    # the counters are per clock minute: start where the whole burst fits in one
    wait_until(lambda: 60 - time.time() % 60 >= 5, timeout=10, message="room in the minute")
    answers = [track(client, "REG-2026-000001", "0001", ip="10.2.0.1").status_code
               for _ in range(LIMIT + 2)]
    assert answers == [404] * LIMIT + [429, 429]
    refused = track(client, "REG-2026-000001", "0001", ip="10.2.0.1")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["detail"].startswith("Too many tracking requests")
    assert "wait" in refused.json()["detail"]
    # another client is not held up by this one
    assert track(client, "REG-2026-000001", "0001", ip="10.2.0.2").status_code == 404


def test_concurrent_requests_of_one_client_are_counted_exactly(service):
    client = service.client
    wait_until(lambda: 60 - time.time() % 60 >= 10, timeout=15, message="room in the minute")
    answers = race(range(3 * LIMIT), lambda _: track(client, "REG-2026-000001", "0001",
                                                     ip="10.3.0.1").status_code)
    assert sorted(answers) == [404] * LIMIT + [429] * (2 * LIMIT)


# -- verification ------------------------------------------------------------------------------

def test_verification_of_an_issued_then_revoked_permit(service):
    client, db = service.client, service.db
    app = issued(client)
    code = code_of(db, app["id"])
    r = verify(client, code)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["verification"] == "valid"
    assert body["permit_number"] == app["permit"]["number"]
    assert body["holder"] == "Si** Am****" and body["type"] == "SIP"
    assert body["issued_by"] == "3510.03" and body["issued_by_name"]
    assert body["valid_until"] == app["permit"]["valid_until"]
    assert verify(client, code.lower()).json() == body  # retyped in lower case
    for secret in PERSONAL:
        assert secret not in r.text
    step(client, app, "revoke", head(client), reason="Praktik tidak sesuai izin")
    revoked = verify(client, code)
    assert revoked.status_code == 200
    assert revoked.json()["verification"] == "revoked"
    assert revoked.json()["revoked_on"] == app["timeline"][-1]["on"]  # revoked today


def test_verification_of_an_expired_permit(service):
    client, db = service.client, service.db
    app = issued(client)
    until = date.fromisoformat(app["permit"]["valid_until"])
    with entrypoint_hook(service.container, "expiry_timer") as expiry:
        expiry(today=until + timedelta(days=1))
    assert db.applications.find_one({"_id": app["id"]})["state"] == "expired"
    r = verify(client, code_of(db, app["id"]))
    assert r.status_code == 200
    assert r.json()["verification"] == "expired"
    assert r.json()["expired_on"] == (until + timedelta(days=1)).isoformat()


def test_an_unknown_code_is_unknown(service):
    for code in ("ABCDEFGHJKLM", "x", "not a code at all!"):
        r = verify(service.client, code)
        assert r.status_code == 404
        assert r.json()["verification"] == "unknown"
        assert r.headers["Cache-Control"] == "no-store"


# -- the WhatsApp status RPC -------------------------------------------------------------------

def test_public_status_answers_only_the_applicants_phone(service, config):
    client = service.client
    app = registered(client)
    number = app["registration_number"]
    with rpc_proxy(config) as proxy:
        found = proxy.permits.public_status(number, "0812-3456-7890")
        other_phone = proxy.permits.public_status(number, "+6281234567891")
        unknown = proxy.permits.public_status("REG-2026-999999", PHONE_E164)
        garbage = proxy.permits.public_status("hello", "not a phone")
        whatsapp_form = proxy.permits.public_status(number.lower(), PHONE_E164[1:])
    assert found["found"] is True
    assert found["registration_number"] == number and found["state"] == "registered"
    assert found["label"] == "Terdaftar" and found["days_left"] == 5
    assert [s["state"] for s in found["timeline"]] == ["draft", "submitted", "registered"]
    assert other_phone == unknown == garbage == {"found": False}
    assert whatsapp_form == found
    for secret in PERSONAL:
        assert secret not in repr(found)


def test_an_undecodable_rpc_request_is_dropped_and_the_service_answers_on(service, config):
    """The RPC entrypoint shares our queue consumer, whose decode-error path parks events:
    a request that is not JSON is dropped (logged), and the next one is answered."""
    from kombu import Connection

    app = registered(service.client)
    with Connection(config["AMQP_URI"]) as conn:
        conn.Producer().publish(b"{not json", exchange="nameko-rpc",
                                routing_key="permits.public_status",
                                content_type="application/json", content_encoding="utf-8")
    with rpc_proxy(config) as proxy:
        found = proxy.permits.public_status(app["registration_number"], PHONE_E164)
    assert found["found"] is True
    assert not service.container._died.ready()


def test_an_unregistered_application_is_not_tracked(service):
    client = service.client
    publish_type(client)
    app = submitted(client, citizen(client))
    assert app.get("registration_number") is None
    assert service.db.registrations.count_documents({}) == 0
