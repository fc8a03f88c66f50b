"""Delivery and incoming mail against the real broker and database: a sent letter reaches each
internal unit's inbox once (also when ``letter.sent`` is redelivered or repeated), external
parties are recorded as sent once, incoming letters are registered with their scan (checked
by content and size, stored in chunks) and a repeated registration is one letter."""

import hashlib
from datetime import datetime

import pytest

from pamong.events.consumer import inbox_key
from pamong.testing import EventRecorder, race, wait_until
from tests.integration.letters_support import (
    CLERK,
    EXE,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    PDF,
    PNG,
    call,
    clerk,
    configure_numbering,
    create,
    draft,
    incoming,
    publish_sent,
    register,
    step,
    upload,
)

pytestmark = pytest.mark.integration
HEAD = ("pimpinan",)
PARTIES = {"addressees": [{"type": "internal", "unit": "3510.04", "name": "Kepala Dinas "
                           "Pendidikan"},
                          {"type": "external", "unit": None, "name": "PT Sehat Sentosa"}],
           "copies": [{"type": "internal", "unit": "3510.09", "name": "Kepala UPTD Pulau"},
                      {"type": "internal", "unit": "3510.04", "name": "Sekretaris Dinas "
                       "Pendidikan"}]}


@pytest.fixture
def events(config):
    recorder = EventRecorder(config, "letters")
    yield recorder
    recorder.close()


def signed(client, **changes):
    configure_numbering(client)
    letter = create(client, body=draft(verifiers=(), **{**PARTIES, **changes}))
    assert step(client, letter["id"], "submit", NIP_STAFF).status_code == 200
    r = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert r.status_code == 200, r.text
    return r.json()


def receipts_of(db, letter_id):
    return {d["unit"]: d for d in db.receipts.find({"letter": letter_id})}


def handled(db, event):
    """Whether the delivery handler marked ``event`` done."""
    key = inbox_key("letters.deliver_sent", event["id"],
                    datetime.fromisoformat(event["occurred_at"]))
    return db[key.bucket].find_one({"_id": key.id, "at": {"$exists": True}})


def test_a_sent_letter_reaches_each_internal_unit_once(letters, events):
    client, db = letters.client, letters.db
    letter = signed(client)
    # the sealing step sends it by itself; deduplicated units: 3510.04 and 3510.09
    wait_until(lambda: len(receipts_of(db, letter["id"])) == 2, timeout=30,
               message="two receipts")
    receipts = receipts_of(db, letter["id"])
    assert receipts["3510.04"]["sender"] == "Bidang Pelayanan Kesehatan"
    assert receipts["3510.04"]["number"] == letter["number"] and \
        receipts["3510.04"]["opd"] == "3510.04"
    received = wait_until(lambda: len(events.of("letter.received")) >= 2 and
                          events.of("letter.received"), timeout=15, message="two events")
    assert sorted(e["data"]["unit"] for e in received) == ["3510.04", "3510.09"]
    assert {e["data"]["source"] for e in received} == {"internal"}
    assert sorted(db.letters.find_one({"_id": letter["id"]})["receivers"]) == [
        "3510.04", "3510.09"]

    # the receiving unit's reader sees the letter and its receipt; reading marks it read
    education = {"roles": ("opd_admin",), "opd": "3510.04"}
    r = call(client, "GET", f"/receipts/{letter['id']}:3510.04", NIP_OTHER, **education)
    assert r.status_code == 200, r.text
    assert r.json()["read_by"] == NIP_OTHER and r.json()["letter"]["number"] == letter["number"]
    assert call(client, "GET", f"/letters/{letter['id']}", NIP_OTHER,
                **education).status_code == 200
    # not another unit's receipt, and the sending OPD sees its letter, not their inbox
    assert call(client, "GET", f"/receipts/{letter['id']}:3510.09", NIP_OTHER,
                **education).status_code == 404
    assert call(client, "GET", f"/receipts/{letter['id']}:3510.04", NIP_KABID,
                roles=("verifikator",)).status_code == 404


def test_letter_sent_redelivered_or_repeated_delivers_nothing_more(letters, events):
    client, db, config = letters.client, letters.db, letters.config
    letter = signed(client, copies=[])
    first = publish_sent(config, letter, ["3510.04"])
    wait_until(lambda: handled(db, first), timeout=30, message="the first letter.sent handled")
    # a crash after the receipt but before the done mark: the handler runs again
    key = inbox_key("letters.deliver_sent", first["id"],
                    datetime.fromisoformat(first["occurred_at"]))
    db[key.bucket].delete_one({"_id": key.id})
    publish_sent(config, letter, (), event=first)
    wait_until(lambda: handled(db, first), timeout=30, message="the redelivery handled")
    repeat = publish_sent(config, letter, ["3510.04"])  # another envelope, the same letter
    wait_until(lambda: handled(db, repeat), timeout=30, message="the repeat handled")
    assert list(receipts_of(db, letter["id"])) == ["3510.04"]
    wait_until(lambda: events.of("letter.received"), timeout=15, message="letter.received")
    assert [e["data"]["id"] for e in events.of("letter.received")] == [
        f"{letter['id']}:3510.04"]


def test_external_parties_are_recorded_as_sent_once(letters):
    client, db = letters.client, letters.db
    letter = signed(client)
    wait_until(lambda: db.letters.find_one({"_id": letter["id"]})["state"] == "sent",
               timeout=30, message="the letter sealed and sent")
    path = f"/letters/{letter['id']}/dispatch"
    body = {"index": 1, "channel": "pos", "reference": "RR123456789ID"}
    r = call(client, "POST", path, NIP_STAFF, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "PT Sehat Sentosa" and r.json()["by"] == NIP_STAFF
    again = clerk(client, "POST", path, json={**body, "channel": "kurir"})
    assert again.status_code == 200 and again.json()["channel"] == "pos"
    assert call(client, "POST", path, NIP_STAFF, json={"index": 0, "channel": "pos"}
                ).status_code == 422  # an internal addressee is delivered, not dispatched
    assert call(client, "POST", path, NIP_STAFF2, json=body).status_code == 404  # not named
    assert call(client, "POST", path, NIP_STAFF, json={**body, "via": "x"}).status_code == 422
    stored = call(client, "GET", f"/letters/{letter['id']}", NIP_STAFF).json()
    assert stored["dispatched"]["addressees-1"]["reference"] == "RR123456789ID"
    assert stored["timeline"][-1]["step"] == "dispatch"


def test_dispatch_waits_for_sending(letters):
    client = letters.client
    letter = create(letters.client, body=draft(**PARTIES))
    r = call(client, "POST", f"/letters/{letter['id']}/dispatch", NIP_STAFF,
             json={"index": 1, "channel": "email"})
    assert r.status_code == 409


def test_an_incoming_letter_with_its_scan(letters, events):
    client, db = letters.client, letters.db
    letter = register(client, key="incoming-0001")
    assert letter["direction"] == "incoming" and letter["state"] == "received"
    assert letter["sender_number"] == "440/1234/101.5/2025" and letter["receivers"] == [
        "3510.03"]
    scan = PDF + bytes(1_200_000)  # three chunks
    r = upload(client, letter["id"], scan, name="surat masuk.pdf")
    assert r.status_code == 201, r.text
    file = r.json()
    assert file["type"] == "application/pdf" and file["size"] == len(scan)
    assert file["sha256"] == hashlib.sha256(scan).hexdigest()
    head = db.files.find_one({"_id": file["id"]})
    assert head["chunks"] == 3 and db.files.find_one({"_id": f"{file['id']}:2"})
    again = upload(client, letter["id"], scan, name="surat masuk.pdf")
    assert again.status_code == 200 and again.json()["id"] == file["id"]

    got = clerk(client, "GET", f"/files/{file['id']}")
    assert got.status_code == 200 and got.content == scan
    assert got.headers["Content-Type"] == "application/pdf"
    receipt = clerk(client, "GET", f"/receipts/{letter['id']}:3510.03").json()
    assert receipt["source"] == "external" and receipt["number"] == "440/1234/101.5/2025"
    assert receipt["sender"] == "Dinas Kesehatan Provinsi Jawa Timur"
    assert [a["id"] for a in receipt["letter"]["attachments"]] == [file["id"]]
    received = wait_until(lambda: events.of("letter.received"), timeout=15,
                          message="letter.received")
    assert received[0]["data"]["source"] == "external"
    # the unit's readers see it; another OPD's do not, nor its file
    assert call(client, "GET", f"/files/{file['id']}", roles=("opd_admin",),
                opd="3510.03").status_code == 200
    assert call(client, "GET", f"/files/{file['id']}", NIP_OTHER, roles=("opd_admin",),
                opd="3510.04").status_code == 404


def test_files_are_checked_by_content_and_size(letters):
    client = letters.client
    letter = register(client)
    r = upload(client, letter["id"], PNG, name="scan.pdf")  # a PNG named .pdf
    assert r.status_code == 201 and r.json()["type"] == "image/png"
    r = upload(client, letter["id"], EXE, name="scan.pdf")  # a program named .pdf
    assert r.status_code == 415, r.text
    assert r.json()["detected"] == "application/x-msdownload"
    assert "application/x-msdownload" in r.json()["detail"]
    r = upload(client, letter["id"], PDF + bytes(10 * 1024 * 1024), name="big.pdf")
    assert r.status_code == 413
    r = upload(client, letter["id"], b"", name="empty.pdf")
    assert r.status_code == 415
    assert call(client, "GET", f"/files/{letter['id']}", CLERK,
                roles=("sekretariat",), opd="3510.03").status_code == 404  # not a file id


def test_a_repeated_registration_is_one_letter(letters, events):
    client, db = letters.client, letters.db
    first, second = race([0, 1], lambda _: clerk(client, "POST", "/incoming", json=incoming(),
                                                 headers={"Idempotency-Key": "incoming-0002"}))
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    letter_id = first.json()["id"]
    again = register(client, key="incoming-0002")
    assert again["id"] == letter_id
    assert db.letters.count_documents({"direction": "incoming"}) == 1
    assert list(receipts_of(db, letter_id)) == ["3510.03"]
    # a first try that died before its receipt: the repeat adds it
    db.receipts.delete_one({"_id": f"{letter_id}:3510.03"})
    register(client, key="incoming-0002")
    assert list(receipts_of(db, letter_id)) == ["3510.03"]
    other = register(client, key="incoming-0003")
    assert other["id"] != letter_id


def test_registration_is_refused_outside_the_clerks_scope(letters):
    client = letters.client
    assert clerk(client, "POST", "/incoming", json=incoming(unit="3510.04")).status_code == 403
    assert clerk(client, "POST", "/incoming", opd="3510",
                 json=incoming(unit="3510.77")).status_code == 422
    assert clerk(client, "POST", "/incoming",
                 json={**incoming(), "agenda": "1"}).status_code == 422
    assert clerk(client, "POST", "/incoming",
                 json=incoming(classification="999.9")).status_code == 422
    assert call(client, "POST", "/incoming", NIP_STAFF, json=incoming()).status_code == 403


def test_draft_attachments_belong_to_the_drafter_while_editable(letters):
    client = letters.client
    letter = create(client)
    r = upload(client, letter["id"], PDF, name="lampiran.pdf", nip=NIP_STAFF,
               roles=("pegawai",), opd="3510.03.01")
    assert r.status_code == 201, r.text
    file = r.json()
    assert upload(client, letter["id"], PDF, nip=NIP_KABID, roles=("verifikator",),
                  opd="3510.03.01").status_code == 403  # a verifier sees it, does not add
    # the verifier may download it; another OPD may not
    assert call(client, "GET", f"/files/{file['id']}", NIP_KABID,
                roles=("verifikator",)).content == PDF
    assert call(client, "GET", f"/files/{file['id']}", NIP_OTHER,
                opd="3510.04").status_code == 404
    assert step(client, letter["id"], "submit", NIP_STAFF).status_code == 200
    r = upload(client, letter["id"], PNG, nip=NIP_STAFF, roles=("pegawai",), opd="3510.03.01")
    assert r.status_code == 409
    stored = call(client, "GET", f"/letters/{letter['id']}", NIP_STAFF).json()
    assert [a["name"] for a in stored["attachments"]] == ["lampiran.pdf"]
