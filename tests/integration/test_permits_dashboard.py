"""The dashboard's aggregates against a from-scratch recomputation after a random sequence of
transitions through the API (also after every event is delivered again, and after
``pamong permits rebuild-stats``); the Server-Sent Events stream; open data without personal
data; the SKM survey once."""

import json
import os
import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
from nameko.containers import ServiceContainer
from nameko.testing.services import entrypoint_hook

from pamong.cache import TimedCache
from pamong.events import contracts
from pamong.events.consumer import INBOX_BUCKET
from pamong.events.envelope import Event, load_envelope
from pamong.testing import (
    HttpClient,
    free_port,
    publish_raw,
    race,
    wait_until,
)
from services.permits import dashboard, domain
from services.permits.store import holidays_of, local_date, local_today
from tests.integration.attendance_support import seed_directory
from tests.integration.permits_support import (
    API,
    NIK,
    OPD,
    OTHER_OPD,
    PHONE_E164,
    act,
    admin,
    citizen,
    head,
    officer,
    ok,
    publish_type,
    read,
    reviewer,
    step,
    submitted,
)

pytestmark = pytest.mark.integration

PERSONAL = (NIK, "Siti", "Aminah", PHONE_E164, "81234567890", "siti.aminah", "Ahmad Yani")
PAID = {"name": "Izin Reklame Insidentil", "fee": 250_000, "validity_months": 1}
ALL_SCORES = dict.fromkeys(domain.SKM_ELEMENTS, 3)


@pytest.fixture
def service(request, config):
    """A permits service in this process with its container (a test runs the SLA and expiry
    rounds itself with a later day), stream settings a test waits less for."""
    from services.permits.service import PermitsService

    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "PERMITS_REFERENCE_CACHE_SECONDS": 0,
                "PERMITS_SLA_INTERVAL_SECONDS": 0, "PERMITS_EXPIRY_INTERVAL_SECONDS": 0,
                "PERMITS_STREAM_HEARTBEAT_SECONDS": 2, "PERMITS_STREAM_MAX_SECONDS": 60}
    container = ServiceContainer(PermitsService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config, service="permits")
    return SimpleNamespace(client=HttpClient(f"http://127.0.0.1:{port}", config), db=db,
                           container=container, config=settings)


def round_of(service, timer, day):
    with entrypoint_hook(service.container, timer) as hook:
        return hook(today=day)


def collected(client, owner):
    app = submitted(client, owner)
    for action, token in (("register", officer(client)), ("start_review", officer(client)),
                          ("recommend", reviewer(client)), ("sign", head(client)),
                          ("issue", officer(client)), ("collect", officer(client))):
        app = step(client, app, action, token)
    return app


# -- the figures equal a recomputation --------------------------------------------------------

def actor(client, action, owner):
    """The token and body an action needs."""
    if action in ("submit", "resubmit"):
        return owner, {}
    if action == "return":
        return officer(client), {"missing_items": ["STR yang masih berlaku"]}
    if action == "recommend":
        return reviewer(client), {}
    if action in ("reject", "revoke"):
        return head(client), {"reason": "Tidak memenuhi ketentuan"}
    if action == "sign":
        return head(client), {}
    if action == "pay":
        return officer(client), {"payment_reference": "BANK-0001"}
    return officer(client), {}


def maintained(db):
    return {doc["_id"]: c for doc in db.stats.find() if (c := dashboard.comparable(doc))}


def recomputed(db, settings):
    apps = list(dashboard.read_all_applications(db))
    years = {local_date(settings, e["at"]).year for a in apps for e in a["timeline"]}
    docs = dashboard.recompute(apps, lambda at: local_date(settings, at),
                               holidays_of(db, TimedCache(0), years))
    return {key: c for key, doc in docs.items() if (c := dashboard.comparable(doc))}


def handled(db, events):
    """How many of ``events`` the service's handlers have marked done (every handler of
    each: the inbox key is ``<queue>:<event id>``)."""
    ids = {e["id"] for e in events}
    return sum(1 for name in db.list_collection_names() if name.startswith(INBOX_BUCKET)
               for mark in db[name].find({"at": {"$exists": True}}, {"_id": 1})
               if mark["_id"].rsplit(":", 1)[-1] in ids)


def settled(db, settings):
    """Wait until the kept aggregates equal the recomputation (every event counted)."""
    last = {}

    def same():
        last["kept"], last["fresh"] = maintained(db), recomputed(db, settings)
        return last["kept"] == last["fresh"]

    try:
        wait_until(same, timeout=60, interval=0.2, message="stats equal to a recomputation")
    except AssertionError:
        kept, fresh = last["kept"], last["fresh"]
        diff = {k: (kept.get(k), fresh.get(k)) for k in set(kept) | set(fresh)
                if kept.get(k) != fresh.get(k)}
        raise AssertionError(f"kept != recomputed: {json.dumps(diff, default=str)[:3000]}"
                             ) from None
    return last["kept"]


def test_figures_equal_a_recomputation_after_random_transitions(service, permit_events, config):
    client, db, settings = service.client, service.db, service.config
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    print(f"random seed {seed}")
    publish_type(client)  # SIP, free
    publish_type(client, code="REKLAME", **PAID)
    owners, apps = {}, []
    for n in range(6):
        owner = citizen(client, sub=f"citizen-{n}")
        app = submitted(client, owner, code=rng.choice(("SIP", "REKLAME")))
        owners[app["id"]] = owner
        apps.append(app)
    taken = Counter()
    for _ in range(60):
        app = rng.choice(apps)
        choices = [a for a in domain.allowed_actions(app["state"]) if a != "expire"]
        if not choices:
            continue
        # forward more often than back or out, so that files get decided and collected
        action = rng.choices(choices, [0.3 if a in ("return", "reject", "revoke") else 1
                                       for a in choices])[0]
        token, body = actor(client, action, owners[app["id"]])
        r = act(client, app["id"], action, token, version=app["version"], **body)
        assert r.status_code in (200, 409), r.text  # 409: a guard (a free permit's bill...)
        if r.status_code == 200:
            taken[action] += 1
        apps[apps.index(app)] = read(client, app["id"], officer(client))
    for app in apps:
        if app["state"] == "collected" and rng.random() < 0.7:
            r = client.request("POST", f"{API}/applications/{app['id']}/survey",
                               token=owners[app["id"]], json={"scores": {
                                   e: rng.randint(1, 4) for e in domain.SKM_ELEMENTS}})
            assert r.status_code == 201, r.text
    print(f"actions taken: {dict(taken)}")
    # the timers on later days: SLA warnings and breaches of the open files, expiries
    today = local_today(settings)
    alerts = round_of(service, "sla_timer", today + timedelta(days=60))
    expiries = round_of(service, "expiry_timer", today + timedelta(days=2000))
    print(f"SLA alerts {alerts}, expiry steps {expiries}")
    apps = [read(client, app["id"], officer(client)) for app in apps]
    kept = settled(db, settings)

    states = Counter(app["state"] for app in apps)
    figures = ok(client.request("GET", f"{API}/dashboard", token=admin(client)))
    assert figures["by_status"] == dict(states)
    assert figures["sla"]["warnings"] + figures["sla"]["breaches"] > 0 or alerts == 0
    assert figures["today"]["submitted"] == 6
    assert sum(t["states"].get("draft", 0) for t in figures["by_type"]) == 0
    assert figures["processing"]["decided"] == states["issued"] + states["rejected"] + \
        states["collected"] + states["revoked"] + states["expired"]
    assert [o["opd"] for o in figures["by_opd"]] == [OPD]

    # every event delivered again after the inbox forgot them (a crash after the effect,
    # before the done mark): the counts do not move
    events = permit_events.events()
    marks = handled(db, events)
    for name in db.list_collection_names():
        if name.startswith(INBOX_BUCKET):
            db.drop_collection(name)
    for envelope in events:
        publish_raw(config, "permits", envelope["type"], envelope)
    wait_until(lambda: handled(db, events) >= marks, timeout=60,
               message="every event handled again")
    assert settled(db, settings) == kept

    # `pamong permits rebuild-stats` writes what the handlers keep
    env = {**os.environ, **{k: str(config[k]) for k in ("AMQP_URI", "MONGO_URI",
                                                        "MONGO_DB_PREFIX", "JWT_SECRET")}}
    result = subprocess.run([sys.executable, "-m", "pamong.cli.main", "permits",
                             "rebuild-stats"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "recomputed" in result.stdout
    assert maintained(db) == kept
    rebuilt = ok(client.request("GET", f"{API}/dashboard", token=admin(client)))
    assert {**rebuilt, "version": 0} == {**figures, "version": 0}
    assert rebuilt["version"] > figures["version"]


def test_a_redelivered_event_is_counted_once_per_document(permits, permit_events):
    """``apply_once`` on the stats: the same event applied twice (a handler that ran again
    after a crash) changes nothing the second time."""
    client, db = permits.client, permits.db
    publish_type(client)
    submitted(client)
    settled(db, permits.config)
    envelope = next(e for e in permit_events.events() if e["type"] == "permit.status_changed"
                    and e["data"]["to_state"] == "submitted")
    loaded = load_envelope(envelope)
    loaded["data"] = contracts.load_data(loaded["type"], loaded["version"], loaded["data"])
    event = Event(**loaded)
    before = maintained(db)
    incs = dashboard.transition_increments(event.data, local_date(permits.config,
                                                                  event.data["at"]))
    dashboard.apply_increments(db.stats, incs, event)
    assert maintained(db) == before


# -- access ------------------------------------------------------------------------------------

def test_who_sees_which_dashboard(permits):
    client = permits.client
    publish_type(client)
    submitted(client)
    wait_until(lambda: (permits.db.stats.find_one({"_id": f"all@{OPD}"}) or {}).get(
        "states", {}).get("submitted"), message="the OPD's stats")
    own = ok(client.request("GET", f"{API}/dashboard", token=officer(client)))
    assert own["scope"]["opd"] == OPD and own["by_opd"] == []
    assert own["by_status"] == {"submitted": 1}
    other = ok(client.request("GET", f"{API}/dashboard", token=officer(client,
                                                                         opd=OTHER_OPD)))
    assert other["by_status"] == {} and other["scope"]["opd"] == OTHER_OPD
    assert client.request("GET", f"{API}/dashboard", params={"opd": OTHER_OPD},
                          token=officer(client)).status_code == 404
    assert client.request("GET", f"{API}/dashboard",
                          token=citizen(client)).status_code == 403
    assert client.request("GET", f"{API}/dashboard").status_code == 401
    narrowed = ok(client.request("GET", f"{API}/dashboard", params={"opd": OPD},
                                 token=admin(client)))
    assert narrowed["scope"]["opd"] == OPD and narrowed["by_status"] == {"submitted": 1}
    assert client.request("GET", f"{API}/dashboard", params={"opd": "x"},
                          token=admin(client)).status_code == 422


# -- the stream -------------------------------------------------------------------------------

def sse(response):
    """``(event, data)`` of a text/event-stream, as they arrive."""
    event, data = None, []
    for raw in response.iter_lines(chunk_size=1):
        line = raw.decode()
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def test_the_stream_pushes_a_change(service):
    client = service.client
    publish_type(client)
    response = client.request("GET", f"{API}/dashboard/stream", token=admin(client),
                              stream=True, timeout=30)
    try:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = sse(response)
        kind, first = next(events)
        assert kind == "dashboard" and first["by_status"] == {}
        submitted(client)
        for _kind, payload in events:
            if payload["by_status"].get("submitted"):
                break
        assert payload["today"]["submitted"] == 1
        assert payload["version"] > first["version"]
        # the stream says what the endpoint says
        assert ok(client.request("GET", f"{API}/dashboard", token=admin(client))) == payload
    finally:
        response.close()


def test_the_stream_needs_a_dashboard_role(permits):
    client = permits.client
    r = client.request("GET", f"{API}/dashboard/stream", token=citizen(client))
    assert r.status_code == 403


# -- open data --------------------------------------------------------------------------------

def test_open_data_has_aggregates_and_metadata_and_no_personal_data(permits):
    client = permits.client
    publish_type(client)
    app = collected(client, citizen(client))

    def counted():
        r = client.request("GET", f"{API}/open-data/permits.json")
        return r if any(row["collected"] for row in r.json()["data"]) else None

    r = wait_until(counted, message="the month's figures counted the collection")
    assert r.status_code == 200, r.text
    body = r.json()
    meta = body["metadata"]
    assert meta["licence"] == "CC BY 4.0" and meta["title"] and meta["source"]
    assert meta["unit"]["median_days"] == "hari kerja"
    assert meta["period"]["to"] == app["timeline"][-1]["on"][:7]
    rows = [row for row in body["data"] if row["type"] == "SIP"]
    assert len(rows) == 1
    assert rows[0] | {"submitted": 1, "registered": 1, "issued": 1, "collected": 1,
                      "decided": 1, "opd": OPD} == rows[0]
    assert rows[0]["opd_name"] and rows[0]["type_name"]
    csv_r = client.request("GET", f"{API}/open-data/permits.csv")
    assert csv_r.status_code == 200
    assert csv_r.headers["Content-Type"].startswith("text/csv")
    assert 'rel="describedby"' in csv_r.headers["Link"]
    lines = csv_r.text.splitlines()
    assert lines[0] == ",".join(dashboard.OPEN_COLUMNS) and len(lines) == 2
    for text in (r.text, csv_r.text):
        for secret in PERSONAL:
            assert secret not in text
    assert client.request("GET", f"{API}/open-data/permits.json",
                          params={"from": "2026-05", "to": "2026-01"}).status_code == 422
    assert client.request("GET", f"{API}/open-data/permits.json",
                          params={"from": "2026-13"}).status_code == 422


# -- SKM ---------------------------------------------------------------------------------------

def survey(client, app_id, token, scores=None):
    return client.request("POST", f"{API}/applications/{app_id}/survey", token=token,
                          json={"scores": scores or ALL_SCORES})


def test_the_survey_is_answered_once_after_collection(permits, permit_events):
    client = permits.client
    publish_type(client)
    owner = citizen(client)
    early = submitted(client, citizen(client, sub="citizen-early"))
    assert survey(client, early["id"], citizen(client, sub="citizen-early")).status_code == 409
    app = collected(client, owner)
    assert survey(client, app["id"], citizen(client, sub="someone-else")).status_code == 404
    assert survey(client, app["id"], reviewer(client)).status_code == 403
    for bad in ({**ALL_SCORES, "waktu": 5}, {"waktu": 4},
                {**ALL_SCORES, "rasa": 4}, {**ALL_SCORES, "waktu": "4"}):
        assert survey(client, app["id"], owner, bad).status_code == 422
    first = survey(client, app["id"], owner)
    assert first.status_code == 201, first.text
    assert first.json()["scores"] == ALL_SCORES
    again = survey(client, app["id"], owner)  # a retried click, or a second opinion
    assert again.status_code == 409 and again.json()["answered"] is True
    # two answers at once (the applicant online, an officer at the counter): one lands
    other_owner = citizen(client, sub="citizen-2")
    second = collected(client, other_owner)
    answers = race([other_owner, officer(client)],
                   lambda token: survey(client, second["id"], token).status_code)
    assert sorted(answers) == [201, 409]
    wait_until(lambda: len(permit_events.of("permit.rated")) >= 2, message="permit.rated twice")
    rated = permit_events.of("permit.rated")
    assert len(rated) == 2 and {e["data"]["id"] for e in rated} == {app["id"], second["id"]}
    assert "contact" not in rated[0]["data"]

    def counted():  # every stats document of both answers written
        figures = ok(client.request("GET", f"{API}/dashboard", token=admin(client)))
        return figures if figures["skm"]["month"]["responses"] == 2 and \
            figures["by_opd"][0]["skm"]["responses"] == 2 else None

    figures = wait_until(counted, message="both answers counted")
    assert figures["skm"]["all_time"] == {"responses": 2, "index": 75.0, "grade": "C",
                                          "quality": "Kurang Baik"}
    assert figures["skm"]["month"]["responses"] == 2
    period = ok(client.request("GET", f"{API}/skm", params={"period": figures["month"][
        "period"]}, token=head(client)))
    assert period["opd"] == OPD and period["overall"]["index"] == 75.0
    assert period["by_type"][0]["type"] == "SIP"
    assert ok(client.request("GET", f"{API}/survey"))["scale"]["4"] == "Sangat baik"
