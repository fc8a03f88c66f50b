"""Applications through the HTTP API of a running permits service: creation (a citizen for
themselves, a counter officer for a citizen) with an Idempotency-Key, the NIK/phone/NIB
checks, corrections, documents checked by content and size, reading with the SLA clock, the
lists kept by the service's own ``permit.status_changed`` handler, and who sees what."""

import hashlib

import pytest

from pamong.storage import by_ids
from pamong.testing import EventRecorder, publish_raw, race, wait_until
from services.permits import chunks
from tests.integration.permits_support import (
    API,
    EXE,
    JPEG,
    NIK,
    NIK_OTHER,
    OTHER_OPD,
    PDF,
    PHONE_E164,
    PNG,
    act,
    admin,
    application_body,
    apply,
    citizen,
    create,
    get,
    head,
    officer,
    publish_type,
    read,
    ready,
    requirement,
    reviewer,
    type_body,
    upload,
)

pytestmark = pytest.mark.integration


def patch(client, app_id, token, **body):
    return client.request("PATCH", f"{API}/applications/{app_id}", token=token, json=body)


def listing(client, token, **params):
    r = client.request("GET", f"{API}/applications", token=token, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def listed_ids(client, token, **params):
    return [i["id"] for i in listing(client, token, **params)["items"]]


# -- create -------------------------------------------------------------------------------------

def test_citizen_applies_idempotently(permits):
    client, db = permits.client, permits.db
    publish_type(client)
    recorder = EventRecorder(permits.config, "permits")
    me = citizen(client)
    body = application_body(phone="0812-3456-7890", name="Nama Lain Di Form")
    first = create(client, me, body, key="apply-00000001")
    assert first.status_code == 201, first.text
    app = first.json()
    assert first.headers["Location"].endswith(f"/applications/{app['id']}")
    assert app["state"] == "draft" and app["version"] == 1 and app["owner"] == "citizen-1"
    assert app["entered_by"] == {"sub": "citizen-1", "role": "pemohon"}
    # the NIK and name are the token's, the phone E.164, the standard embedded with its version
    assert app["applicant"]["nik"] == NIK and app["applicant"]["name"] == "Siti Aminah"
    assert app["applicant"]["phone"] == PHONE_E164 and app["nik_warnings"] == []
    assert app["standard"]["version"] == 1 and app["standard"]["sla_days"] == 5
    assert app["clock"] == {"sla_days": 5, "used": 0, "left": 5, "stages": {},
                            "running": False, "due_on": None}
    assert app["missing_documents"] == ["ktp", "str", "rekomendasi_ppni"]
    assert app["actions"] == []  # submit waits for the mandatory documents
    assert [t["action"] for t in app["timeline"]] == ["create"]

    # the retry (a lost response): the same application, nothing new
    again = create(client, me, body, key="apply-00000001")
    assert again.status_code == 200 and again.json()["id"] == app["id"]
    assert again.json()["version"] == 1
    # the same key with another body is refused, not silently answered
    other = create(client, me, application_body(email="lain@example.id"), key="apply-00000001")
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["errors"]
    # another citizen's same key is another application
    theirs = create(client, citizen(client, "citizen-2", NIK_OTHER, "Budi"), key="apply-00000001",
                    body=application_body(nik=NIK_OTHER))
    assert theirs.status_code == 201 and theirs.json()["id"] != app["id"]
    assert db.applications.count_documents({}) == 2

    changed = wait_until(lambda: [e for e in recorder.events()
                                  if e["type"] == "permit.status_changed"
                                  and e["data"]["id"] == app["id"]], message="status event")
    assert len(changed) == 1
    assert changed[0]["data"]["from_state"] is None and changed[0]["data"]["to_state"] == "draft"
    assert changed[0]["data"]["action"] == "create" and changed[0]["opd"] == "3510.03"

    # a standard published later does not move this application's
    publish_type(client, fee=250_000)
    assert read(client, app["id"], me)["standard"]["version"] == 1
    assert read(client, app["id"], me)["standard"]["fee"] == 0


def test_birth_date_disagreeing_with_the_nik_is_a_warning(permits):
    client = permits.client
    publish_type(client)
    token = citizen(client, nik=None, name=None)  # an account without NIK and name
    app = apply(client, token, birth_date="1990-12-06")
    assert app["applicant"]["nik"] == NIK and app["applicant"]["birth_date"] == "1990-12-06"
    assert len(app["nik_warnings"]) == 1 and "day" in app["nik_warnings"][0]
    assert NIK not in app["nik_warnings"][0]  # masked


def test_counter_officer_applies_for_a_citizen(permits):
    client = permits.client
    publish_type(client)
    desk = officer(client)
    app = apply(client, desk, nik=NIK_OTHER, name="Budi Santoso", birth_date="1985-08-17")
    assert app["owner"] is None and app["entered_by"] == {"sub": "officer-1",
                                                          "role": "petugas"}
    assert app["applicant"]["nik"] == NIK_OTHER and app["nik_warnings"] == []
    # the counter officer acts for the applicant: uploads and submits
    r = upload(client, app["id"], "ktp", desk, JPEG)
    assert r.status_code == 201, r.text
    # an officer of another OPD does not enter this OPD's applications
    r = create(client, officer(client, OTHER_OPD, "officer-9"),
               application_body(nik=NIK_OTHER, name="Budi Santoso"))
    assert r.status_code == 403, r.text
    # a counter application is nobody's account's: a citizen does not see it
    assert get(client, app["id"], citizen(client)).status_code == 404


@pytest.mark.parametrize("changes, field", [
    ({"nik": "3510034512900000"}, "applicant.nik"),  # sequence 0000
    ({"nik": "9910034512900001"}, "applicant.nik"),  # no province 99
    ({"nik": "35100345129"}, "applicant.nik"),
    ({"phone": "021-555-1234"}, "applicant.phone"),  # a landline
    ({"phone": None}, "applicant.phone"),  # WhatsApp needs a phone
    ({"channel": "email", "email": None}, "applicant.email"),
    ({"address": {"street": "Jl. X"}}, "applicant.address.village"),
    ({"birth_date": "2990-01-01"}, "applicant.birth_date"),
])
def test_bad_applicant_is_422_and_writes_nothing(permits, changes, field):
    client = permits.client
    publish_type(client)
    r = create(client, officer(client), application_body(**changes))
    assert r.status_code == 422, r.text
    assert field in r.json()["errors"], r.json()
    assert r.headers["Content-Type"] == "application/problem+json"
    assert permits.db.applications.count_documents({}) == 0


def test_bad_application_body(permits):
    client, db = permits.client, permits.db
    publish_type(client)
    publish_type(client, "TDUP", name="Tanda Daftar Usaha Pariwisata", needs_business=True)
    publish_type(client, "OLD", name="Izin lama", active=False)
    me = citizen(client)
    cases = [
        (application_body("NOPE"), 422, "type"),
        (application_body("OLD"), 422, "type"),
        (application_body("TDUP"), 422, "business"),
        (application_body("TDUP", business={"name": "Homestay Osing", "nib": "123456789012"}),
         422, "business.nib"),
        ({**application_body(), "extra": 1}, 422, "extra"),
        (application_body(nik=NIK_OTHER), 422, "applicant.nik"),  # not the token's NIK
    ]
    for body, status, field in cases:
        r = create(client, me, body)
        assert r.status_code == status and field in r.json().get("errors", {}), (body, r.text)
    r = client.request("POST", f"{API}/applications", token=me, data="{",
                       headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = client.request("POST", f"{API}/applications", token=me, data=b"x",
                       headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = create(client, me, key="short")
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["errors"]
    assert db.applications.count_documents({}) == 0
    # with the business, it goes in
    good = apply(client, me, body=application_body(
        "TDUP", business={"name": "Homestay Osing", "nib": "1234567890123"}))
    assert good["business"]["nib"] == "1234567890123"


def test_concurrent_creates_with_the_same_key_make_one_application(permits):
    client, db = permits.client, permits.db
    publish_type(client)
    recorder = EventRecorder(permits.config, "permits")
    me = citizen(client)
    results = race(range(8), lambda _: create(client, me, key="double-tap-0001"))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 7 + [201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert db.applications.count_documents({}) == 1
    app_id = results[0].json()["id"]
    wait_until(lambda: listed_ids(client, me) == [app_id], message="listed once")
    wait_until(lambda: db.applications.find_one({"_id": app_id})["_outbox"] == [],
               message="outbox drained")
    assert len([e for e in recorder.events() if e["type"] == "permit.status_changed"]) == 1


# -- edit -----------------------------------------------------------------------------------

def test_patch_a_draft(permits):
    client = permits.client
    publish_type(client)
    me = citizen(client)
    app = apply(client, me)
    r = patch(client, app["id"], me, version=1,
              applicant={"phone": "+62 813-1111-2222", "channel": "sms"})
    assert r.status_code == 200, r.text
    assert r.json()["applicant"]["phone"] == "+6281311112222"
    assert r.json()["applicant"]["channel"] == "sms" and r.json()["version"] == 2
    # a stale version: 409 with what to do next (never an extension called status)
    stale = patch(client, app["id"], me, version=1, applicant={"channel": "whatsapp"})
    assert stale.status_code == 409, stale.text
    problem = stale.json()
    assert problem["status"] == 409 and problem["state"] == "draft"
    assert problem["version"] == 2 and "submit" in problem["allowed"]
    # bad input
    assert patch(client, app["id"], me, version=2,
                 applicant={"phone": "12"}).status_code == 422
    assert patch(client, app["id"], me, version=2,
                 applicant={"nik": NIK_OTHER}).status_code == 422
    assert patch(client, app["id"], me, version=2, colour="red").status_code == 422
    assert read(client, app["id"], me)["version"] == 2
    # two corrections at once on one version: one lands
    results = race([{"email": "a@example.id"}, {"email": "b@example.id"}],
                   lambda a: patch(client, app["id"], me, version=2, applicant=a))
    assert sorted(r.status_code for r in results) == [200, 409]
    assert read(client, app["id"], me)["version"] == 3


# -- documents ------------------------------------------------------------------------------

def test_documents_checked_stored_and_downloaded(permits):
    client, db = permits.client, permits.db
    publish_type(client, requirements=type_body()["requirements"] + [
        requirement("denah", "Denah lokasi praktik", mandatory=False, max_bytes=2_000_000)])
    me = citizen(client)
    app = apply(client, me)
    big = PDF + bytes(600_000)  # three chunks of 255 KiB
    r = upload(client, app["id"], "denah", me, big, name="denah praktik.pdf")
    assert r.status_code == 201, r.text
    doc = next(d for d in r.json()["documents"] if d["requirement"] == "denah")
    assert doc["size"] == len(big) and doc["content_type"] == "application/pdf"
    assert doc["sha256"] == hashlib.sha256(big).hexdigest() and doc["name"] == "denah praktik.pdf"
    head = db["fs.files"].find_one({"_id": doc["file_id"]})
    assert head["length"] == len(big) and head["chunks"] == 3
    assert db["fs.chunks"].find_one({"_id": f"{doc['file_id']}:2"})["n"] == 2
    # the same file again: the same application, nothing new
    again = upload(client, app["id"], "denah", me, big)
    assert again.status_code == 200 and again.json()["version"] == r.json()["version"]
    # download: the same bytes, for whoever sees the application
    got = client.request("GET", f"{API}/applications/{app['id']}/documents/denah",
                         token=officer(client))
    assert got.status_code == 200 and got.content == big
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "denah%20praktik.pdf" in got.headers["Content-Disposition"]
    assert got.headers["ETag"] == f'"{doc["sha256"]}"'
    assert client.request("GET", f"{API}/applications/{app['id']}/documents/str",
                          token=me).status_code == 404  # nothing uploaded for it yet

    # refused by content (whatever the declared type), by size, by requirement
    r = upload(client, app["id"], "ktp", me, EXE, content_type="application/pdf")
    assert r.status_code == 415 and r.json()["detected"] == "application/x-msdownload"
    r = upload(client, app["id"], "pas_foto", me, PDF)  # a photo: images only
    assert r.status_code == 415 and r.json()["allowed"] == ["image/jpeg", "image/png"]
    r = upload(client, app["id"], "pas_foto", me, JPEG + bytes(1_000_001))
    assert r.status_code == 413, r.text
    r = upload(client, app["id"], "akta", me, PDF)
    assert r.status_code == 404 and "ktp" in r.json()["detail"]
    r = upload(client, app["id"], "ktp", me, b"")
    assert r.status_code == 400
    assert read(client, app["id"], me)["version"] == again.json()["version"]

    # a new file for a requirement replaces the earlier one
    r1 = upload(client, app["id"], "pas_foto", me, PNG)
    r2 = upload(client, app["id"], "pas_foto", me, JPEG)
    assert r1.status_code == r2.status_code == 201
    photos = [d for d in r2.json()["documents"] if d["requirement"] == "pas_foto"]
    assert len(photos) == 1 and photos[0]["content_type"] == "image/jpeg"
    now = client.request("GET", f"{API}/applications/{app['id']}/documents/pas_foto",
                         token=me)
    assert now.status_code == 200 and now.content == JPEG  # the one listed now


def test_concurrent_uploads_of_different_requirements_all_land(permits):
    client = permits.client
    publish_type(client)
    me = citizen(client)
    app = apply(client, me)
    parts = [("ktp", JPEG), ("str", PDF), ("rekomendasi_ppni", PDF), ("pas_foto", PNG)]
    results = race(parts, lambda p: upload(client, app["id"], p[0], me, p[1]))
    assert [r.status_code for r in results] == [201] * 4, [r.text for r in results]
    final = read(client, app["id"], me)
    assert sorted(d["requirement"] for d in final["documents"]) == sorted(k for k, _ in parts)
    assert final["version"] == 5 and final["missing_documents"] == []
    assert final["actions"] == ["submit"]


def test_double_tapped_upload_lists_one_file(permits):
    client, db = permits.client, permits.db
    publish_type(client)
    me = citizen(client)
    app = apply(client, me)
    results = race(range(4), lambda _: upload(client, app["id"], "str", me, PDF))
    assert sorted(r.status_code for r in results) == [200, 200, 200, 201], \
        [r.text for r in results]
    final = read(client, app["id"], me)
    assert [d["requirement"] for d in final["documents"]] == ["str"] and final["version"] == 2
    assert db["fs.files"].count_documents({}) == 1


def test_upload_stopped_midway_completes_on_repeat(permits):
    """A crash after some chunks (no head), or after the head (not listed on the
    application): the repeat of the upload stores the file once and lists it."""
    from datetime import UTC, datetime

    from bson import Binary

    from pamong import files
    from services.permits.applications import FILE_IDS

    client, db = permits.client, permits.db
    publish_type(client)
    me = citizen(client)
    app = apply(client, me)
    scan = PDF + bytes(300_000)  # two chunks
    file_id = files.content_id(FILE_IDS, f"{app['id']}:str", files.sha256_of(scan))
    db["fs.chunks"].insert_one({"_id": f"{file_id}:0", "files_id": file_id, "n": 0,
                                "data": Binary(scan[:files.CHUNK_BYTES])})
    r = upload(client, app["id"], "str", me, scan)
    assert r.status_code == 201, r.text
    got = client.request("GET", f"{API}/applications/{app['id']}/documents/str", token=me)
    assert got.content == scan
    # the head written, the listing not: the repeat lists it
    other = PDF + b"rekomendasi"
    other_id = files.content_id(FILE_IDS, f"{app['id']}:rekomendasi_ppni",
                                files.sha256_of(other))
    files.FileStore(db).put(other_id, other, filename="r.pdf", at=datetime.now(UTC))
    r = upload(client, app["id"], "rekomendasi_ppni", me, other)
    assert r.status_code == 201, r.text
    assert {d["requirement"]: d["file_id"] for d in r.json()["documents"]} == {
        "str": file_id, "rekomendasi_ppni": other_id}
    assert db["fs.chunks"].count_documents({}) == 3


def test_documents_only_while_draft_or_returned(permits):
    client = permits.client
    publish_type(client)
    me = citizen(client)
    app = ready(client, me)
    r = act(client, app["id"], "submit", me)
    assert r.status_code == 200, r.text
    r = upload(client, app["id"], "pas_foto", me, PNG)
    assert r.status_code == 409 and r.json()["state"] == "submitted"
    r = patch(client, app["id"], me, version=r.json()["version"],
              applicant={"channel": "sms"})
    assert r.status_code == 409 and r.json()["state"] == "submitted"
    # returned to the applicant: documents and corrections again
    r = act(client, app["id"], "return", officer(client), missing_items=["pas foto"])
    assert r.status_code == 200, r.text
    assert upload(client, app["id"], "pas_foto", me, PNG).status_code == 201


# -- reading and lists ----------------------------------------------------------------------

def test_clock_and_actions_as_the_file_moves(permits):
    client = permits.client
    publish_type(client)
    me, desk = citizen(client), officer(client)
    app = ready(client, me)
    assert read(client, app["id"], me)["actions"] == ["submit"]
    assert act(client, app["id"], "submit", me).status_code == 200
    seen = read(client, app["id"], desk)
    assert seen["clock"]["running"] is True and seen["clock"]["sla_days"] == 5
    assert seen["clock"]["used"] == 0 and seen["clock"]["left"] == 5
    assert seen["clock"]["due_on"] is not None
    assert set(seen["actions"]) == {"return", "register"}
    mine = read(client, app["id"], me)
    assert mine["actions"] == [] and mine["label"] == "Diajukan"
    # a reviewer sees it too but has nothing to do yet; a head neither
    assert read(client, app["id"], reviewer(client))["actions"] == []
    assert read(client, app["id"], head(client))["actions"] == []


def test_lists_kept_by_status_events(permits):
    client, db = permits.client, permits.db
    publish_type(client)
    me, other, desk = citizen(client), citizen(client, "citizen-2", NIK_OTHER, "Budi"), \
        officer(client)
    a = ready(client, me)
    b = apply(client, me)
    c = apply(client, other, nik=NIK_OTHER)
    wait_until(lambda: listed_ids(client, me) == [b["id"], a["id"]], message="own, newest first")
    wait_until(lambda: listed_ids(client, other) == [c["id"]], message="the other's own")
    assert listing(client, me)["items"][0]["applicant_name"] == "Siti Aminah"
    # pages
    first = listing(client, me, limit=1)
    assert [i["id"] for i in first["items"]] == [b["id"]] and first["next_cursor"]
    second = listing(client, me, limit=1, cursor=first["next_cursor"])
    assert [i["id"] for i in second["items"]] == [a["id"]] and second["next_cursor"] is None

    # the work list: submitted, then registered
    assert act(client, a["id"], "submit", me).status_code == 200
    wait_until(lambda: listed_ids(client, desk, state="submitted") == [a["id"]],
               message="in the submitted queue")
    assert listed_ids(client, desk) == [a["id"]]  # every open state
    assert listed_ids(client, officer(client, OTHER_OPD, "officer-9")) == []
    r = act(client, a["id"], "register", desk)
    assert r.status_code == 200, r.text
    wait_until(lambda: listed_ids(client, desk, state="registered") == [a["id"]],
               message="in the registered queue")
    wait_until(lambda: queued(db, "3510.03", "submitted") == [],
               message="out of the submitted queue")
    # filed by the local day it entered the state: the month names the day, the day's
    # first chunk holds it, its claim says where
    timeline = db.applications.find_one({"_id": a["id"]})["timeline"]
    day = timeline[-1]["on"]
    assert db.queues.find_one({"_id": "3510.03:registered"})["months"] == [day[:7]]
    filed = db.queues.find_one({"_id": f"3510.03:registered:{day[:7]}"})
    assert filed["days"][f"d{day[8:]}"] - filed.get("gone", {}).get(f"d{day[8:]}", 0) == 1
    assert db.queues.find_one({"_id": f"3510.03:registered:{day}:0"})["ids"] == [a["id"]]
    assert db.queues.find_one({"_id": f"3510.03:registered@{a['id']}:{len(timeline) - 1}"})[
        "chunk"] == f"3510.03:registered:{day}:0"
    wait_until(lambda: (m := db.queues.find_one({"_id": f"3510.03:submitted:{day[:7]}"}))
               and m.get("gone") == m["days"], message="the submitted day drained")
    assert listed_ids(client, desk, state="submitted") == []
    assert listed_ids(client, admin(client), opd="3510.03") == [a["id"]]
    r = client.request("GET", f"{API}/applications", token=admin(client))
    assert r.status_code == 422  # admin names the OPD
    r = client.request("GET", f"{API}/applications", token=desk, params={"state": "draft"})
    assert r.status_code == 422
    r = client.request("GET", f"{API}/applications", token=desk, params={"opd": OTHER_OPD})
    assert r.status_code == 404


def test_list_keeper_is_idempotent_and_converges(permits):
    """The same status event again (a redelivery, or published twice under two ids) and an
    old event arriving after a newer one leave each list as it is."""
    client, db = permits.client, permits.db
    publish_type(client)
    recorder = EventRecorder(permits.config, "permits")
    me, desk = citizen(client), officer(client)
    app = ready(client, me)
    assert act(client, app["id"], "submit", me).status_code == 200
    assert act(client, app["id"], "register", desk).status_code == 200
    wait_until(lambda: listed_ids(client, desk, state="registered") == [app["id"]],
               message="registered")
    events = wait_until(lambda: (found := [e for e in recorder.events()
                                           if e["type"] == "permit.status_changed"])
                        and len(found) == 3 and found, message="three status events")
    for event in events:  # every one again, under a new id (the inbox cannot drop them)
        publish_raw(permits.config, "permits", event["type"],
                    {**event, "id": event["id"][:-4] + "beef"})
    wait_until(lambda: len([e for e in recorder.events()
                            if e["type"] == "permit.status_changed"]) == 6, message="replayed")
    wait_until(lambda: _handled(db) >= 6, message="the replays handled")
    assert chunks.owned_ids(db.owners, by_ids, "citizen-1") == [app["id"]]
    assert queued(db, "3510.03", "registered") == [app["id"]]
    assert queued(db, "3510.03", "submitted") == []
    assert db.queues.count_documents({"_id": {"$regex": "@"}}) == 1  # one claim: registered


def queued(db, opd, state):
    """The ids of an OPD's work list in ``state``, over its chunks (in list order)."""
    keys, known = chunks.queue_chunks(db.queues, by_ids, opd, [state])
    docs = {**by_ids(db.queues, keys), **known}
    return [i for key in keys for i in docs.get(key, {}).get("ids", [])]


def _handled(db):
    """Status events the list keeper has marked handled."""
    return sum(db[name].count_documents({"_id": {"$regex": "keep_application_lists"},
                                         "at": {"$exists": True}})
               for name in db.list_collection_names() if name.startswith("_inbox_"))


# -- who sees what --------------------------------------------------------------------------

def test_authorization_matrix(permits):
    client = permits.client
    publish_type(client)
    mine = citizen(client)
    app = ready(client, mine)
    doc = app["documents"][0]["requirement"]
    outsiders = {
        "another citizen": citizen(client, "citizen-2", NIK_OTHER, "Budi"),
        "petugas of another OPD": officer(client, OTHER_OPD, "officer-9"),
        "pimpinan of another OPD": head(client, OTHER_OPD, "head-9"),
    }
    paths = [("GET", f"/applications/{app['id']}", None),
             ("GET", f"/applications/{app['id']}/documents/{doc}", None),
             ("PATCH", f"/applications/{app['id']}", {"version": app["version"]})]
    for who, token in outsiders.items():
        for method, path, body in paths:
            r = client.request(method, f"{API}{path}", token=token, json=body)
            # 404 as for no application; 403 only where the role never may (a pimpinan
            # corrects no application of anyone's), which tells nothing about this one
            expected = 403 if method == "PATCH" and who.startswith("pimpinan") else 404
            assert r.status_code == expected, (who, method, path, r.status_code)
        assert upload(client, app["id"], "pas_foto", token, PNG).status_code in (403, 404)
        assert app["id"] not in str(client.request("GET", f"{API}/applications",
                                                   token=token).text)
    # the responsible OPD's staff and the Pemda's admin see it
    for token in (officer(client), reviewer(client), head(client), admin(client)):
        assert get(client, app["id"], token).status_code == 200
    # seeing is not changing: a reviewer corrects nothing
    r = patch(client, app["id"], reviewer(client), version=app["version"])
    assert r.status_code == 403
    # no token: 401; an employee role without permits: 403
    assert client.request("GET", f"{API}/applications/{app['id']}").status_code == 401
    r = client.request("GET", f"{API}/applications/{app['id']}",
                       token=client.token(roles=("pegawai",), opd="3510.03", sub="p-1"))
    assert r.status_code == 403
    # a citizen reads no officer's identity on their own file
    assert act(client, app["id"], "submit", mine).status_code == 200
    assert act(client, app["id"], "register", officer(client)).status_code == 200
    seen = read(client, app["id"], mine)
    assert seen["timeline"][-1]["by"] == {"sub": None, "role": "petugas"}
    assert seen["officer"] is None
    assert read(client, app["id"], officer(client))["timeline"][-1]["by"]["sub"] == "officer-1"
