"""The permit lifecycle through the HTTP API: the whole path from submission to collection with
the roles each step needs, return and resubmit, rejection, the free permit, 409 naming the
state and the allowed actions, one winner of two officers on two service processes, a retried
action, and who may act at all."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import eventlet
import pytest

from pamong.localtime import local_today
from pamong.testing import HttpClient, free_port, race, serve_process, wait_until
from services.permits import domain
from tests.integration.attendance_support import seed_directory
from tests.integration.permits_support import (
    API,
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
    ready,
    reviewer,
    step,
    submitted,
)

pytestmark = pytest.mark.integration

PAID = {"code": "PBG", "name": "Persetujuan Bangunan Gedung (PBG)", "fee": 1_250_000,
        "site_visit": True, "recommenders": [OTHER_OPD], "validity_months": 0}


def recommend_as(client, app, opd, token, recommendation="positive", note="Sesuai tata ruang"):
    return client.request("POST", f"{API}/applications/{app['id']}/recommendations/{opd}",
                          token=token, json={"recommendation": recommendation, "note": note})


def site_visit(client, app, token, **body):
    return client.request("POST", f"{API}/applications/{app['id']}/site-visit", token=token,
                          json=body)


def drained(db, app_id):
    """Every event written with the application has left its outbox (it is on the bus)."""
    wait_until(lambda: not db.applications.find_one({"_id": app_id}).get("_outbox"),
               message="the application's outbox relayed")


def events_of(permit_events, app_id):
    return [e for e in permit_events.events() if e["data"]["id"] == app_id]


def test_a_paid_permit_from_submission_to_collection(permits, permit_events):
    client, db = permits.client, permits.db
    publish_type(client, code=PAID["code"], **{k: v for k, v in PAID.items() if k != "code"})
    pemohon, petugas, verifikator, pimpinan = (citizen(client), officer(client),
                                              reviewer(client), head(client))
    other = reviewer(client, opd=OTHER_OPD, sub="pupr-1")
    app = ready(client, pemohon, PAID["code"])
    app = step(client, app, "submit", pemohon)
    assert app["state"] == "submitted" and app["clock"]["running"]
    # the front office's step is not the citizen's
    r = act(client, app["id"], "register", pemohon, version=app["version"])
    assert r.status_code == 403 and "petugas" in r.json()["detail"]
    app = step(client, app, "register", petugas)
    number = app["registration_number"]
    assert domain.REGISTRATION.match(number)
    assert app["receipt"]["registration_number"] == number
    assert app["receipt"]["sla_days"] == 5 and app["receipt"]["documents"]
    assert db.registrations.find_one({"_id": number})["application"] == app["id"]

    app = step(client, app, "start_review", verifikator)
    assert [(r["opd"], r["status"]) for r in app["recommendations"]] == [(OTHER_OPD,
                                                                          "requested")]
    r = act(client, app["id"], "recommend", verifikator, version=app["version"])
    assert r.status_code == 409
    assert r.json()["reasons"] == [f"recommendations still awaited from: {OTHER_OPD}",
                                   "the site visit is not recorded yet"]
    # the recommending OPD sees the file and gives its recommendation; the responsible
    # OPD's reviewer cannot give it for them, and they cannot take the file's actions
    assert recommend_as(client, app, OTHER_OPD, verifikator).status_code == 403
    assert act(client, app["id"], "recommend", other, version=app["version"]).status_code \
        == 403
    ok(recommend_as(client, app, OTHER_OPD, other))
    assert ok(recommend_as(client, app, OTHER_OPD, other))["recommendations"][0]["status"] \
        == "positive"  # given again: the same answer
    assert recommend_as(client, app, OTHER_OPD, other, "negative", "x").status_code == 409
    today = local_today()
    ok(site_visit(client, app, petugas, scheduled_on=(today + timedelta(days=3)).isoformat()))
    assert site_visit(client, app, petugas, done_on=(today + timedelta(days=1)).isoformat(),
                      findings="x").status_code == 422  # not yet happened
    app = ok(site_visit(client, app, verifikator, done_on=today.isoformat(),
                        findings="Bangunan sesuai gambar rencana"))
    assert app["site_visit"]["done_on"] == today.isoformat()
    assert app["site_visit"]["scheduled_on"] == (today + timedelta(days=3)).isoformat()

    app = step(client, app, "recommend", verifikator)
    assert app["state"] == "recommended"
    r = act(client, app["id"], "sign", pimpinan, version=app["version"])
    assert r.status_code == 409 and "billed and paid" in r.json()["detail"]
    assert act(client, app["id"], "bill", pimpinan, version=app["version"]).status_code == 403
    app = step(client, app, "bill", petugas)
    assert app["bill"]["amount"] == 1_250_000 and app["bill"]["number"].startswith("SKRD-")
    assert not app["clock"]["running"]  # paused while the fee is unpaid
    r = act(client, app["id"], "pay", petugas, version=app["version"])
    assert r.status_code == 422 and "payment_reference" in r.json()["errors"]
    app = step(client, app, "pay", petugas, payment_reference="BJB-20261206-0001")
    assert app["bill"]["payment_reference"] == "BJB-20261206-0001"
    assert act(client, app["id"], "sign", petugas, version=app["version"]).status_code == 403
    app = step(client, app, "sign", pimpinan)
    app = step(client, app, "issue", petugas)
    permit = app["permit"]
    assert permit["number"] == f"00001/PBG/{OPD}/{today.year}"
    assert permit["valid_from"] == today.isoformat() and permit["valid_until"] is None
    assert db.codes.find_one({"_id": permit["code"]})["application"] == app["id"]
    assert permit["verification_url"].endswith(f"/verifikasi/izin/{permit['code']}")
    app = step(client, app, "collect", pemohon)
    assert app["state"] == "collected" and app["actions"] == []
    # the citizen reads the steps and the roles, not the staff's names
    assert {e["by"]["sub"] for e in app["timeline"]} == {"citizen-1", None}

    timeline = read(client, app["id"], petugas)["timeline"]
    states = [(e["from"], e["to"], e["by"]["sub"], e["by"]["role"]) for e in timeline]
    assert states[1:] == [
        ("draft", "submitted", "citizen-1", "pemohon"),
        ("submitted", "registered", "officer-1", "petugas"),
        ("registered", "technical_review", "reviewer-1", "verifikator"),
        ("technical_review", "recommended", "reviewer-1", "verifikator"),
        ("recommended", "billed", "officer-1", "petugas"),
        ("billed", "paid", "officer-1", "petugas"),
        ("paid", "signed", "head-1", "pimpinan"),
        ("signed", "issued", "officer-1", "petugas"),
        ("issued", "collected", "citizen-1", "pemohon")]
    assert all(e["at"] and e["on"] for e in timeline)

    drained(db, app["id"])
    seen = events_of(permit_events, app["id"])
    kinds = Counter(e["type"] for e in seen)
    assert kinds == Counter({"permit.status_changed": 10, "permit.submitted": 1,
                             "permit.registered": 1, "permit.recommendation_requested": 1,
                             "permit.recommendation_given": 1, "permit.decided": 1,
                             "permit.billed": 1, "permit.paid": 1, "permit.issued": 1})
    changes = [(e["data"]["from_state"], e["data"]["to_state"]) for e in seen
               if e["type"] == "permit.status_changed"]
    assert changes == [(s[0], s[1]) for s in states]  # from the creation on
    issued = next(e for e in seen if e["type"] == "permit.issued")["data"]
    assert issued["contact"] == {"phone": PHONE_E164, "email": "siti.aminah@example.id",
                                 "channel": "whatsapp", "sub": "citizen-1"}  # the owner
    assert issued["registration_number"] == number
    assert "nik" not in str(issued) and "Siti" not in str(issued)
    decided = next(e for e in seen if e["type"] == "permit.decided")
    assert decided["data"]["decision"] == "approved"
    assert decided["actor"] == {"sub": "officer-1", "role": "petugas"}


def test_return_with_missing_items_and_resubmit(permits, permit_events):
    client, db = permits.client, permits.db
    publish_type(client)
    pemohon, petugas = citizen(client), officer(client)
    app = submitted(client, pemohon)
    r = act(client, app["id"], "return", petugas, version=app["version"])
    assert r.status_code == 422 and "missing_items" in r.json()["errors"]
    r = act(client, app["id"], "return", petugas, version=app["version"], missing_items=[])
    assert r.status_code == 422
    app = step(client, app, "return", petugas,
               missing_items=["STR sudah kedaluwarsa", "KTP tidak terbaca"],
               note="Mohon unggah ulang")
    assert app["state"] == "returned_incomplete" and not app["clock"]["running"]
    assert app["missing_items"] == ["STR sudah kedaluwarsa", "KTP tidak terbaca"]
    assert app["actions"] == ["resubmit"]  # at the counter, for the applicant
    assert read(client, app["id"], pemohon)["actions"] == ["resubmit"]
    r = act(client, app["id"], "register", petugas, version=app["version"])
    assert r.status_code == 409
    assert r.json()["state"] == "returned_incomplete" and r.json()["allowed"] == ["resubmit"]
    app = step(client, app, "resubmit", pemohon)
    assert app["state"] == "resubmitted" and app["missing_items"] is None
    # returned again, then registered from the resubmission
    app = step(client, app, "return", petugas, missing_items=["Pas foto"])
    app = step(client, app, "resubmit", pemohon)
    app = step(client, app, "register", petugas)
    assert app["state"] == "registered"

    drained(db, app["id"])
    seen = events_of(permit_events, app["id"])
    returned = [e["data"] for e in seen if e["type"] == "permit.returned"]
    assert [r["missing_items"] for r in returned] == [
        ["STR sudah kedaluwarsa", "KTP tidak terbaca"], ["Pas foto"]]
    assert returned[0]["note"] == "Mohon unggah ulang" and returned[0]["contact"]["phone"]
    assert [e["data"]["resubmission"] for e in seen if e["type"] == "permit.submitted"] == [
        False, True, True]
    assert sum(e["type"] == "permit.status_changed" for e in seen) == 7  # with the creation


def test_a_file_entered_at_the_counter_names_no_account_in_its_contact(permits,
                                                                       permit_events):
    client, db = permits.client, permits.db
    publish_type(client)
    app = submitted(client, officer(client))  # a petugas enters it for a citizen
    drained(db, app["id"])
    (event,) = [e for e in events_of(permit_events, app["id"])
                if e["type"] == "permit.submitted"]
    assert event["data"]["contact"] == {"phone": PHONE_E164, "email": "siti.aminah@example.id",
                                        "channel": "whatsapp", "sub": None}


def test_rejection_needs_the_head_and_a_reason(permits, permit_events):
    client, db = permits.client, permits.db
    publish_type(client)
    petugas, pimpinan = officer(client), head(client)
    app = step(client, submitted(client), "register", petugas)
    app = step(client, app, "start_review", petugas)
    assert act(client, app["id"], "reject", petugas, version=app["version"],
               reason="x").status_code == 403
    r = act(client, app["id"], "reject", pimpinan, version=app["version"], reason="   ")
    assert r.status_code == 422 and "reason" in r.json()["errors"]
    app = step(client, app, "reject", pimpinan,
               reason="STR tidak sesuai dengan tempat praktik yang dimohon")
    assert app["state"] == "rejected" and app["reason"].startswith("STR tidak sesuai")
    assert not app["clock"]["running"]
    r = act(client, app["id"], "recommend", petugas, version=app["version"])
    assert r.status_code == 409 and r.json()["allowed"] == []
    assert "closed" in r.json()["detail"]
    drained(db, app["id"])
    decided = [e for e in events_of(permit_events, app["id"]) if e["type"] == "permit.decided"]
    assert [(d["data"]["decision"], d["data"]["reason"]) for d in decided] == [
        ("rejected", "STR tidak sesuai dengan tempat praktik yang dimohon")]
    assert decided[0]["actor"]["role"] == "pimpinan"


def test_a_free_permit_is_signed_without_a_bill_and_can_be_revoked(permits, permit_events):
    client, db = permits.client, permits.db
    publish_type(client, validity_months=12)  # SIP: free
    petugas, pimpinan = officer(client), head(client)
    app = step(client, submitted(client), "register", petugas)
    app = step(client, app, "start_review", petugas)
    assert app["recommendations"] == []
    app = step(client, app, "recommend", reviewer(client))
    assert app["actions"] == []  # the petugas' bill is not offered for a free permit
    r = act(client, app["id"], "bill", petugas, version=app["version"])
    assert r.status_code == 409 and "free" in r.json()["reasons"][0]
    app = step(client, app, "sign", pimpinan)
    app = step(client, app, "issue", petugas)
    today = local_today()
    assert app["permit"]["valid_until"] == domain.validity(today, 12)[1].isoformat()
    assert app["bill"] is None
    r = act(client, app["id"], "revoke", pimpinan, version=app["version"])
    assert r.status_code == 422
    app = step(client, app, "revoke", pimpinan, reason="Praktik dipindahkan tanpa izin baru")
    assert app["state"] == "revoked" and app["revoked"]["by"] == "head-1"

    drained(db, app["id"])
    kinds = Counter(e["type"] for e in events_of(permit_events, app["id"]))
    assert kinds["permit.billed"] == 0 and kinds["permit.paid"] == 0
    assert kinds["permit.decided"] == 1 and kinds["permit.revoked"] == 1
    assert kinds["permit.status_changed"] == 8  # the creation and 7 steps


def test_illegal_and_unknown_actions_and_stale_versions(permits):
    client = permits.client
    publish_type(client)
    pemohon, petugas = citizen(client), officer(client)
    app = ready(client, pemohon)
    r = act(client, app["id"], "register", petugas, version=app["version"])
    assert r.status_code == 409
    body = r.json()
    assert body["state"] == "draft" and body["allowed"] == ["submit"]
    assert body["version"] == app["version"] and "'draft'" in body["detail"]
    assert "status" not in body or body["status"] == 409  # RFC 9457 owns status
    r = act(client, app["id"], "approve", pemohon, version=app["version"])
    assert r.status_code == 404 and "submit" in r.json()["detail"]
    r = act(client, app["id"], "submit", pemohon, version=app["version"] - 1)
    assert r.status_code == 409 and r.json()["version"] == app["version"]
    r = client.request("POST", f"{API}/applications/{app['id']}/actions/submit",
                       token=pemohon, json={})
    assert r.status_code == 422 and "version" in r.json()["errors"]
    r = client.request("POST", f"{API}/applications/{app['id']}/actions/submit",
                       token=pemohon, json={"version": app["version"], "colour": "red"})
    assert r.status_code == 422
    r = act(client, app["id"], "expire", petugas, version=app["version"])
    assert r.status_code == 409  # not from a draft, and never by a person
    assert read(client, app["id"], pemohon)["version"] == app["version"]  # nothing changed


def test_a_retried_action_answers_the_application_as_it_is(permits, permit_events):
    client, db = permits.client, permits.db
    publish_type(client)
    pemohon, petugas = citizen(client), officer(client)
    app = submitted(client, pemohon)
    first = step(client, app, "register", petugas)
    again = step(client, app, "register", petugas)  # the same request, the answer was lost
    assert again["version"] == first["version"]
    assert again["registration_number"] == first["registration_number"]
    # someone else repeating it has not seen the change: 409
    r = act(client, app["id"], "register", officer(client, sub="officer-2"),
            version=app["version"])
    assert r.status_code == 409 and r.json()["state"] == "registered"
    assert r.json()["version"] == first["version"]
    # two identical requests at once (a double click): one lands, both answer 200
    answers = race([0, 1], lambda _: act(client, app["id"], "start_review", petugas,
                                         version=first["version"]))
    assert [a.status_code for a in answers] == [200, 200]
    assert {a.json()["version"] for a in answers} == {first["version"] + 1}
    stored = db.applications.find_one({"_id": app["id"]})
    assert [e["action"] for e in stored["timeline"]].count("register") == 1
    assert [e["action"] for e in stored["timeline"]].count("start_review") == 1
    assert db.counters.find_one({"_id": f"registration:{datetime.now(UTC).year}"})["next"] \
        == 1
    drained(db, app["id"])
    kinds = Counter(e["type"] for e in events_of(permit_events, app["id"]))
    assert kinds["permit.registered"] == 1 and kinds["permit.status_changed"] == 4


def test_who_may_act(permits):
    client = permits.client
    publish_type(client, recommenders=[OTHER_OPD])
    pemohon = citizen(client)
    app = submitted(client, pemohon)
    version = app["version"]
    # another citizen and an officer of another OPD do not learn that it exists
    assert act(client, app["id"], "return", citizen(client, sub="citizen-2",
                                                    nik="3510031708850002"),
               version=version, missing_items=["x"]).status_code == 404
    assert act(client, app["id"], "register", officer(client, opd="3510.09"),
               version=version).status_code == 404
    # admin sees it but takes no step of an OPD; a pimpinan does not register
    assert act(client, app["id"], "register", admin(client), version=version).status_code \
        == 403
    assert act(client, app["id"], "register", head(client), version=version).status_code \
        == 403
    # the applicant does not return their own file
    assert act(client, app["id"], "return", pemohon, version=version,
               missing_items=["x"]).status_code == 403
    # a petugas of a unit inside the responsible OPD acts for it
    app = step(client, app, "register", officer(client, opd=f"{OPD}.01", sub="counter-2"))
    app = step(client, app, "start_review", officer(client))
    # the recommending OPD now sees it, but no other OPD gives a recommendation
    assert recommend_as(client, app, "3510.09", reviewer(client, opd="3510.09")).status_code \
        == 404
    assert recommend_as(client, app, OPD, reviewer(client)).status_code == 404  # not asked
    assert site_visit(client, app, head(client),
                      scheduled_on=local_today().isoformat()).status_code == 403
    assert site_visit(client, app, reviewer(client, opd=OTHER_OPD),
                      scheduled_on=local_today().isoformat()).status_code == 403


def test_recommendations_and_the_site_visit_at_once(permits, permit_events):
    client, db = permits.client, permits.db
    publish_type(client, recommenders=[OTHER_OPD, "3510.09"], site_visit=True)
    petugas = officer(client)
    app = step(client, step(client, submitted(client), "register", petugas), "start_review",
               petugas)
    pupr, uptd = reviewer(client, opd=OTHER_OPD, sub="pupr-1"), head(client, opd="3510.09",
                                                                     sub="uptd-1")
    r = recommend_as(client, app, OTHER_OPD, pupr, "negative", " ")
    assert r.status_code == 422 and "note" in r.json()["errors"]
    r = recommend_as(client, app, OTHER_OPD, pupr, "maybe")
    assert r.status_code == 422
    # two OPDs answer at the same moment: both land (neither has to read the file again)
    answers = race([(OTHER_OPD, pupr, "positive"), ("3510.09", uptd, "negative")],
                   lambda a: recommend_as(client, app, a[0], a[1], a[2], "Catatan"))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    given = {r["opd"]: (r["status"], r["by"]) for r in read(client, app["id"], petugas)[
        "recommendations"]}
    assert given == {OTHER_OPD: ("positive", "pupr-1"), "3510.09": ("negative", "uptd-1")}
    # two officers record the visit at once with different findings: one record stands
    today = local_today().isoformat()
    answers = race([("officer-1", "Sesuai"), ("officer-2", "Tidak sesuai")],
                   lambda a: site_visit(client, app, officer(client, sub=a[0]),
                                        done_on=today, findings=a[1]))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    kept = next(a for a in answers if a.status_code == 200).json()["site_visit"]
    assert db.applications.find_one({"_id": app["id"]})["site_visit"]["findings"] == \
        kept["findings"]
    drained(db, app["id"])
    given = [e["data"] for e in events_of(permit_events, app["id"])
             if e["type"] == "permit.recommendation_given"]
    assert sorted((g["recommender"], g["recommendation"], g["given_by"]) for g in given) == [
        (OTHER_OPD, "positive", "pupr-1"), ("3510.09", "negative", "uptd-1")]


# -- two service processes ------------------------------------------------------------------

APPLICATIONS_RACED = 30


def test_two_officers_on_two_processes_one_wins(config, request, permit_events):
    ports = [free_port(), free_port()]
    processes = [serve_process(config, "permits", port, DIRECTORY_SNAPSHOT_ON_EMPTY="false",
                               PERMITS_SLA_INTERVAL_SECONDS="0",
                               PERMITS_EXPIRY_INTERVAL_SECONDS="0") for port in ports]
    for process in processes:
        request.addfinalizer(process.wait)
        request.addfinalizer(process.terminate)
    db = seed_directory(config, service="permits")
    clients = [HttpClient(f"http://127.0.0.1:{port}", config) for port in ports]
    publish_type(clients[0])
    apps = list(eventlet.GreenPool(10).imap(lambda i: submitted(clients[i % 2]),
                                            range(APPLICATIONS_RACED)))

    def both(app):  # two officers register the same file, one on each process, at once
        tokens = [officer(clients[0], sub="officer-a"), officer(clients[1], sub="officer-b")]
        return race([0, 1], lambda i: act(clients[i], app["id"], "register", tokens[i],
                                          version=app["version"]))

    answers = list(eventlet.GreenPool(APPLICATIONS_RACED).imap(both, apps))
    for app, pair in zip(apps, answers, strict=True):
        assert sorted(a.status_code for a in pair) == [200, 409], [a.text for a in pair]
        lost = next(a for a in pair if a.status_code == 409).json()
        assert lost["state"] == "registered" and lost["allowed"] == [
            "start_review", "reject"] and lost["version"] == app["version"] + 1
    numbers = [next(a for a in pair if a.status_code == 200).json()["registration_number"]
               for pair in answers]
    assert len(set(numbers)) == APPLICATIONS_RACED
    counter = db.counters.find_one({"_id": f"registration:{datetime.now(UTC).year}"})
    void = [v["n"] for v in counter.get("void", ())]
    used = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
    # every number handed out is on a file or on record as void, none twice
    assert sorted(used + void) == list(range(1, counter["next"] + 1))
    for app, number in zip(apps, numbers, strict=True):
        stored = db.applications.find_one({"_id": app["id"]})
        assert [e["action"] for e in stored["timeline"]].count("register") == 1
        assert stored["registration_number"] == number
    assert db.registrations.count_documents({}) == APPLICATIONS_RACED
    ids = {a["id"] for a in apps}

    def registered_events():
        found = [e for e in permit_events.events() if e["type"] == "permit.registered"
                 and e["data"]["id"] in ids]
        return found if len(found) >= APPLICATIONS_RACED else None

    wait_until(registered_events, timeout=30, message="every registration published")
    for app in apps:
        drained(db, app["id"])
    assert len(registered_events()) == APPLICATIONS_RACED
    print(f"\n{APPLICATIONS_RACED} files registered by two officers at once on two "
          f"processes: {APPLICATIONS_RACED} winners, {APPLICATIONS_RACED} 409s, "
          f"{len(void)} numbers void on record")
