"""Assignments (dinas luar) over HTTP and from a signed surat tugas, against the real broker and
database: who may assign, idempotent and concurrent creation, a letter event delivered twice
(and duplicated, and concurrently), and check-in at the assignment's place only on its dates."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pamong.events.contracts import dump_data
from pamong.events.envelope import new_event
from pamong.testing import done_marks, publish_raw, race, wait_until
from tests.integration.attendance_support import (
    API,
    FAR,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    checkin,
    token,
)

pytestmark = pytest.mark.integration

PLACE = {"name": "Hotel Santika, rapat koordinasi", "latitude": FAR[0], "longitude": FAR[1],
         "radius_m": 150}


def today():
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Jakarta")).date()


def body(employees=(NIP_STAFF,), start=None, end=None, **changes):
    start = start or today()
    return {"employees": list(employees), "start": start.isoformat(),
            "end": (end or start).isoformat(), "place": PLACE, "purpose": "rapat koordinasi",
            **changes}


def opd_admin(client, opd="3510.03"):
    return token(client, roles=("opd_admin",), opd=opd)


def create(client, t=None, key=None, **kwargs):
    headers = {"Idempotency-Key": key} if key else {}
    return client.request("POST", f"{API}/assignments", token=t or opd_admin(client),
                          headers=headers, json=body(**kwargs))


def assignments_of(db, nip=NIP_STAFF):
    return (db.people.find_one({"_id": nip}) or {}).get("assignments", [])


def test_check_in_at_the_assignment_place_only_on_its_dates(attendance):
    client, db = attendance.client, attendance.db
    # an assignment that ended yesterday does not open the place today
    old = create(client, employees=[NIP_STAFF2], start=today() - timedelta(days=3),
                 end=today() - timedelta(days=1))
    assert old.status_code == 201, old.text
    refused = checkin(client, NIP_STAFF2, position=FAR)
    assert refused.status_code == 422 and refused.json()["reason"] == "outside"
    r = create(client)
    assert r.status_code == 201, r.text
    assert r.json()["created"] == [NIP_STAFF] and r.json()["existing"] == []
    item = r.json()["items"][0]
    assert item["source"] == "manual" and item["status"] == "active" and item["letter"] is None
    ok = checkin(client, NIP_STAFF, position=FAR)
    assert ok.status_code == 201, ok.text
    assert ok.json()["place_kind"] == "assignment" and ok.json()["place"] == PLACE["name"]
    # cancelled: the place no longer counts
    cancel = client.request("POST", f"{API}/assignments/{NIP_STAFF}/{item['id']}/cancel",
                            token=opd_admin(client), json={"note": "acara ditunda"})
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    assert checkin(client, NIP_STAFF, position=FAR).status_code == 422
    again = client.request("POST", f"{API}/assignments/{NIP_STAFF}/{item['id']}/cancel",
                           token=opd_admin(client), json={})
    assert again.status_code == 409
    assert assignments_of(db)[0]["cancelled_by"] == "admin-1"


def test_bad_input_changes_nothing(attendance):
    client = attendance.client
    cases = [({"end": today() - timedelta(days=1)}, "end"),
             ({"employees": []}, "employees"),
             ({"employees": ["123"]}, "employees.0"),
             ({"place": {**PLACE, "radius_m": 0}}, "place.radius_m"),
             ({"place": {**PLACE, "latitude": 120}}, "place.latitude"),
             ({"purpose": ""}, "purpose"),
             ({"end": today() + timedelta(days=400)}, "end")]
    for change, field in cases:
        r = create(client, **change)
        assert r.status_code == 422, (change, r.text)
        assert field in r.json()["errors"], (change, r.json())
    assert create(client, key="bad key!").status_code == 400
    assert attendance.db.people.count_documents({"assignments": {"$exists": True}}) == 0


def test_a_repeat_with_the_same_key_creates_nothing_new(attendance):
    client, db = attendance.client, attendance.db
    first = create(client, key="assign-key-0001", employees=[NIP_STAFF, NIP_STAFF2])
    assert first.status_code == 201 and sorted(first.json()["created"]) == sorted(
        [NIP_STAFF, NIP_STAFF2])
    again = create(client, key="assign-key-0001", employees=[NIP_STAFF, NIP_STAFF2])
    assert again.status_code == 201 and again.json()["created"] == []
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    raced = race(range(6), lambda _: create(client, key="assign-key-0002",
                                            employees=[NIP_STAFF, NIP_STAFF2]))
    assert {r.status_code for r in raced} == {201}
    assert sum(len(r.json()["created"]) for r in raced) == 2
    for nip in (NIP_STAFF, NIP_STAFF2):
        assert len(assignments_of(db, nip)) == 2
    # without a key, each request is a new assignment
    assert create(client).status_code == create(client).status_code == 201
    assert len(assignments_of(db)) == 4


def test_who_may_assign(attendance):
    client = attendance.client
    allowed = {
        "the OPD admin": opd_admin(client),
        "the head of the bidang": token(client, NIP_KABID, roles=("pimpinan",),
                                        opd="3510.03.01"),
        # whose supervisor chain reaches them, whatever the unit in the token
        "the head up the chain": token(client, NIP_HEAD, roles=("pimpinan",), opd="3510.04"),
    }
    for who, t in allowed.items():
        r = create(client, t=t)
        assert r.status_code == 201, (who, r.text)
    refused = {
        "another OPD's admin": (opd_admin(client, "3510.04"), 404),
        "another OPD's head": (token(client, NIP_OTHER, roles=("pimpinan",), opd="3510.04"),
                               404),
        "the employee": (token(client, NIP_STAFF), 403),
        "the Pemda admin": (token(client, roles=("admin",), opd="3510"), 403),
        "a verifikator": (token(client, roles=("verifikator",), opd="3510.03"), 403),
    }
    for who, (t, status) in refused.items():
        r = create(client, t=t)
        assert r.status_code == status, (who, r.text)
    # a bidang head cannot send their own head; one unknown NIP refuses the whole request
    up = create(client, t=token(client, NIP_KABID, roles=("pimpinan",), opd="3510.03.01"),
                employees=[NIP_HEAD])
    assert up.status_code == 404
    mixed = create(client, employees=[NIP_STAFF, "199912312020121999"])
    assert mixed.status_code == 404 and mixed.json()["employees"] == ["199912312020121999"]
    assert len(assignments_of(attendance.db)) == 3
    # reading and cancelling
    path = f"{API}/assignments/{NIP_STAFF}"
    for t in (token(client, NIP_STAFF), token(client, NIP_KABID), opd_admin(client),
              token(client, roles=("admin",), opd="3510")):
        assert client.request("GET", path, token=t).status_code == 200
    for t in (token(client, NIP_STAFF2), opd_admin(client, "3510.04")):
        assert client.request("GET", path, token=t).status_code == 404
    assert client.request("GET", path).status_code == 401
    item = client.request("GET", path, token=token(client, NIP_STAFF)).json()["items"][0]
    cancel = f"{API}/assignments/{NIP_STAFF}/{item['id']}/cancel"
    assert client.request("POST", cancel, token=opd_admin(client, "3510.04"),
                          json={}).status_code == 404
    assert client.request("POST", cancel, token=token(client, NIP_STAFF),
                          json={}).status_code == 403
    assert client.request("POST", f"{API}/assignments/{NIP_STAFF}/nope/cancel",
                          token=opd_admin(client), json={}).status_code == 404
    responses = race(range(4), lambda _: client.request("POST", cancel,
                                                        token=opd_admin(client), json={}))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]


# -- surat tugas -------------------------------------------------------------------------------

def letter(kind="surat_tugas", employees=(NIP_STAFF, NIP_STAFF2), letter_id=None, **changes):
    start = today()
    return {"id": letter_id or uuid.uuid4().hex, "number": "800.1.11.1/15/429.110/2026",
            "kind": kind, "unit": "3510.03", "opd": "3510.03",
            "subject": "Surat tugas rapat koordinasi", "signed_at": datetime.now(UTC),
            "signer": NIP_HEAD,
            "assignment": {"employees": list(employees), "start": start,
                           "end": start + timedelta(days=2), "place": PLACE,
                           "purpose": "rapat koordinasi"}, **changes}


def letter_event(data):
    return new_event("letters", "letter.signed", dump_data("letter.signed", 1, data),
                     opd=data["opd"])


def handled(db, before, count):
    wait_until(lambda: done_marks(db) >= before + count, timeout=30,
               message=f"{count} letter events handled")


def test_a_surat_tugas_delivered_twice_creates_one_assignment(attendance, config, caplog):
    client, db = attendance.client, attendance.db
    data = letter(employees=(NIP_STAFF, NIP_STAFF2, "199912312020121999"))
    event = letter_event(data)
    before = done_marks(db)
    publish_raw(config, "letters", "letter.signed", event)
    wait_until(lambda: assignments_of(db, NIP_STAFF2), timeout=30)
    publish_raw(config, "letters", "letter.signed", event)  # redelivered
    duplicate = letter_event(data)  # published twice by the letters module: another id
    publish_raw(config, "letters", "letter.signed", duplicate)
    handled(db, before, 2)
    for nip in (NIP_STAFF, NIP_STAFF2):
        found = assignments_of(db, nip)
        assert len(found) == 1, found
        assert found[0]["source"] == "letter" and found[0]["letter"] == data["id"]
        assert found[0]["id"] == f"letter-{data['id']}" and found[0]["created_by"] == NIP_HEAD
    assert db.people.find_one({"_id": "199912312020121999"}) is None
    assert "199912312020121999" not in caplog.text
    ok = checkin(client, NIP_STAFF2, position=FAR)
    assert ok.status_code == 201 and ok.json()["place_kind"] == "assignment"


def test_the_same_letter_twice_at_once_creates_one_assignment(attendance, config):
    db = attendance.db
    data = letter()
    before = done_marks(db)
    first, second = letter_event(data), letter_event(data)  # a duplicate: another event id
    events = [first, second, first, second]
    race(events, lambda e: publish_raw(config, "letters", "letter.signed", e))
    handled(db, before, 2)
    for nip in (NIP_STAFF, NIP_STAFF2):
        assert len(assignments_of(db, nip)) == 1


def test_other_letters_are_ignored(attendance, config):
    db = attendance.db
    before = done_marks(db)
    publish_raw(config, "letters", "letter.signed", letter_event(letter(kind="surat_dinas")))
    publish_raw(config, "letters", "letter.signed", letter_event(letter(assignment=None)))
    handled(db, before, 2)
    assert db.people.count_documents({"assignments": {"$exists": True}}) == 0
