"""The signed letter's document against the real broker and database: sealed and sent once
(redelivered, duplicated, raced), its PAdES seal checked with pyHanko against the development
CA, one changed byte failing hash and signature, the public verification showing nothing
confidential, revocation, and a seal that cannot be made (the letter stays signed, the event
is parked, a replay after the fix sends it)."""

import hashlib
import shutil
import time
import uuid

import pytest
from nameko.containers import ServiceContainer

from pamong.events import dlq
from pamong.events.consumer import INBOX_BUCKET
from pamong.events.outbox import OUTBOX
from pamong.testing import EventRecorder, HttpClient, free_port, publish_raw, wait_until
from services.letters import sealing
from tests.integration.attendance_support import Running, seed_directory
from tests.integration.letters_support import (
    API,
    NIP_HEAD,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    call,
    configure_numbering,
    create,
    draft,
    step,
)
from tests.unit.test_letters_document import shown_text

pytestmark = pytest.mark.integration
HEAD = ("pimpinan",)
QUEUE = "letters.seal_signed_letter"


@pytest.fixture
def events(config):
    recorder = EventRecorder(config, "letters")
    yield recorder
    recorder.close()


def signed(client, **changes):
    configure_numbering(client)
    letter = create(client, body=draft(verifiers=(), **changes))
    step(client, letter["id"], "submit", NIP_STAFF)
    r = step(client, letter["id"], "sign", NIP_HEAD, roles=HEAD)
    assert r.status_code == 200, r.text
    return r.json()


def sent(db, letter_id):
    def check():
        letter = db.letters.find_one({"_id": letter_id})
        return letter if letter["state"] == "sent" else None
    return wait_until(check, timeout=20, message=f"letter {letter_id} sent")


def document(client, letter_id, nip=NIP_STAFF, **kwargs):
    return call(client, "GET", f"/letters/{letter_id}/document", nip, **kwargs)


def verify(client, code):
    return client.request("GET", f"{API}/verify/{code}")


def upload(client, pdf, **kwargs):
    kwargs = kwargs or {"data": pdf, "headers": {"Content-Type": "application/pdf"}}
    return client.request("POST", f"{API}/verify", **kwargs)


def handled(db, event_id):
    """Whether the sealing handler marked event ``event_id`` done."""
    key = f"{QUEUE}:{event_id}"
    return any(db[name].find_one({"_id": key, "at": {"$exists": True}})
               for name in db.list_collection_names() if name.startswith(INBOX_BUCKET))


def again(config, envelope):
    """The same ``letter.signed`` once more, as another event (a new id)."""
    copy = {**envelope, "id": str(uuid.uuid4())}
    publish_raw(config, "letters", "letter.signed", copy)
    return copy["id"]


def test_a_signed_letter_is_sealed_stored_and_sent_once(letters, events, config):
    client, db = letters.client, letters.db
    letter = signed(client)
    r = document(client, letter["id"])
    assert r.status_code in (200, 404)  # 404 while it is being sealed
    if r.status_code == 404:
        assert r.json()["sealing"] is True and r.headers["Retry-After"]

    stored = sent(db, letter["id"])
    assert stored["document"]["size"] > 1000 and stored["sent_at"] >= stored["signed_at"]
    assert stored["timeline"][-1] | {"at": None} == {
        "at": None, "nip": NIP_HEAD, "name": "dr. Hadi Santoso", "step": "send",
        "from": "signed", "to": "sent", "note": None}
    r = document(client, letter["id"])
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/pdf"
    pdf = r.content
    sha = hashlib.sha256(pdf).hexdigest()
    assert sha == stored["document"]["sha256"] and r.headers["ETag"] == f'"{sha}"'
    assert letter["number"].replace("/", "_") in r.headers["Content-Disposition"]
    assert document(client, letter["id"], headers={"If-None-Match": f'"{sha}"'}
                    ).status_code == 304
    assert db.hashes.find_one({"_id": sha})["letter"] == letter["id"]
    assert db.codes.find_one({"_id": stored["verify_code"]})["letter"] == letter["id"]
    shown = call(client, "GET", f"/letters/{letter['id']}", NIP_STAFF).json()
    assert shown["document"]["sha256"] == sha and shown["verify_code"] == stored["verify_code"]

    # pyHanko's validator against the development CA's root: intact, trusted, whole file
    root = sealing.development_trust_root(letters.config["LETTERS_KEYS_DIR"])
    check = sealing.check_signature(pdf, [root])
    assert check["valid"] and check["covers_whole_file"] and check["problem"] is None
    assert check["signer"] == "dr. Hadi Santoso" and check["serial"] == NIP_HEAD
    [page] = shown_text(pdf)  # the QR's URL is in the footer too
    assert f"http://localhost:8003/verifikasi/surat/{stored['verify_code']}" in page

    wait_until(lambda: events.of("letter.sent"), timeout=15, message="letter.sent")
    [sent_event] = events.of("letter.sent")
    assert sent_event["data"] | {"signed_at": None} == {
        "id": letter["id"], "number": letter["number"], "kind": "nota_dinas",
        "unit": "3510.03.01", "opd": "3510.03", "security": "B", "urgency": "segera",
        "subject": "Undangan rapat koordinasi SPBE", "signed_at": None,
        "internal": ["3510.04"], "external": [], "sha256": sha}

    # redelivered as another event: nothing changes, nothing is published
    [signed_event] = events.of("letter.signed")
    event_id = again(config, signed_event)
    wait_until(lambda: handled(db, event_id), timeout=15, message="the duplicate handled")
    after = db.letters.find_one({"_id": letter["id"]})
    assert after["version"] == stored["version"] and after["timeline"] == stored["timeline"]
    assert db.documents.count_documents({}) == 1 and db.hashes.count_documents({}) == 1
    # letter.sent only ever travels in the letter's own write, and there was none: the one
    # received is all there is (its outbox is drained, nothing waits to be published)
    wait_until(lambda: not db.letters.find_one({"_id": letter["id"]}).get(OUTBOX),
               message="the published events pulled")
    assert len(events.of("letter.sent")) == 1


def test_duplicates_racing_the_first_seal_leave_one_document_and_one_send(letters, events,
                                                                          config):
    client, db = letters.client, letters.db
    letter = signed(client)
    [signed_event] = wait_until(lambda: events.of("letter.signed"), timeout=15,
                                message="letter.signed")
    ids = [again(config, signed_event) for _ in range(3)]  # while the first one seals
    stored = sent(db, letter["id"])
    wait_until(lambda: all(handled(db, i) for i in ids), timeout=20, message="all handled")
    assert db.documents.count_documents({}) == 1
    assert [h["_id"] for h in db.hashes.find()] == [stored["document"]["sha256"]]
    assert [e["step"] for e in stored["timeline"]].count("send") == 1  # one write, one event
    wait_until(lambda: not db.letters.find_one({"_id": letter["id"]}).get(OUTBOX),
               timeout=15, message="the letter's outbox drained")
    assert len(wait_until(lambda: events.of("letter.sent"), timeout=15,
                          message="letter.sent")) == 1


def test_one_changed_byte_fails_the_hash_and_the_signature(letters):
    client, db = letters.client, letters.db
    letter = signed(client)
    sent(db, letter["id"])
    pdf = document(client, letter["id"]).content

    r = upload(client, pdf)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["hash_match"] and body["signature_valid"] and body["status"] == "valid"
    assert body["number"] == letter["number"] and body["signature"]["signer"] == \
        "dr. Hadi Santoso"
    multipart = upload(client, pdf, files={"file": ("surat.pdf", pdf, "application/pdf")})
    assert multipart.json()["hash_match"] and multipart.json()["signature_valid"]

    changed = bytearray(pdf)
    changed[len(pdf) // 3] ^= 0x01
    body = upload(client, bytes(changed)).json()
    assert body["hash_match"] is False and body["signature_valid"] is False
    assert body["status"] == "unknown" and body["number"] is None
    assert body["signature"]["problem"]

    garbage = upload(client, b"not a pdf at all").json()
    assert garbage["hash_match"] is False and garbage["signature"]["signed"] is False
    assert upload(client, b"").status_code == 422


def test_verification_by_code_shows_nothing_confidential(letters):
    client, db = letters.client, letters.db
    biasa = signed(client, subject="Rahasia dapur rapat anggaran")
    secret = signed(client, security="SR", subject="Pemeriksaan khusus pegawai")
    for letter in (biasa, secret):
        sent(db, letter["id"])
    codes = {d["_id"]: d["verify_code"] for d in db.letters.find()}

    r = verify(client, codes[biasa["id"]])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert r.json() | {"date": None, "sha256": None} == {
        "status": "valid", "number": biasa["number"], "date": None, "security": "Biasa",
        "revoked_at": None, "kind": "nota_dinas", "sha256": None,
        "signer": {"name": "dr. Hadi Santoso", "title": "Kepala Dinas"},
        "unit": {"code": "3510.03.01", "name": "Bidang Pelayanan Kesehatan"}}
    assert "anggaran" not in r.text and "Kepala Dinas Pendidikan" not in r.text

    r = verify(client, codes[secret["id"]])
    assert r.status_code == 200
    assert set(r.json()) == {"status", "number", "date", "security", "revoked_at", "note"}
    assert r.json()["security"] == "Sangat Rahasia" and "Pemeriksaan" not in r.text
    assert "Hadi" not in r.text

    for code in ("UnknownCode12345", "not a code!", "x" * 200):
        r = verify(client, code)
        assert r.status_code == 404 and r.json()["verification"] == "unknown"
        assert r.headers["Cache-Control"] == "no-store"


def test_revocation_by_the_signer_once_and_not_by_others(letters, events):
    client, db = letters.client, letters.db
    letter = signed(client)
    code = sent(db, letter["id"])["verify_code"]
    pdf = document(client, letter["id"]).content
    path = f"/letters/{letter['id']}/revoke"
    reason = {"reason": "Salah alamat tujuan"}

    assert call(client, "POST", path, NIP_OTHER, opd="3510.04", json=reason).status_code == 404
    r = call(client, "POST", path, NIP_STAFF, json=reason)  # its drafter sees it, may not
    assert r.status_code == 403
    r = call(client, "POST", path, NIP_STAFF2, roles=("opd_admin",), opd="3510.04",
             json=reason)  # an opd_admin of another OPD: the letter is theirs to see (an
    assert r.status_code == 403  # addressee's), not to revoke
    assert call(client, "POST", path, NIP_HEAD, roles=HEAD, json={}).status_code == 422

    r = call(client, "POST", path, NIP_HEAD, roles=HEAD, json=reason)
    assert r.status_code == 200, r.text
    revoked = r.json()
    assert revoked["state"] == "sent" and revoked["revoked"]["by"] == NIP_HEAD
    assert revoked["revoked"]["reason"] == "Salah alamat tujuan"
    assert revoked["timeline"][-1]["step"] == "revoke"

    r = verify(client, code)
    assert r.json()["status"] == "revoked" and r.json()["revoked_at"]
    assert "alamat" not in r.text  # the reason stays inside
    assert upload(client, pdf).json()["status"] == "revoked"

    r = call(client, "POST", path, NIP_HEAD, roles=HEAD, json=reason)
    assert r.status_code == 409 and "already revoked" in r.json()["detail"]
    assert r.json()["revoked"] is True
    wait_until(lambda: events.of("letter.revoked"), timeout=15, message="letter.revoked")
    [event] = events.of("letter.revoked")
    assert event["data"]["id"] == letter["id"] and event["data"]["by"] == NIP_HEAD


def test_an_opd_admin_of_the_unit_revokes_and_a_draft_cannot_be_revoked(letters):
    client, db = letters.client, letters.db
    letter = signed(client)
    sent(db, letter["id"])
    stale = call(client, "POST", f"/letters/{letter['id']}/revoke", NIP_STAFF2,
                 roles=("opd_admin",), opd="3510.03", json={"reason": "Dibatalkan", "version": 1})
    assert stale.status_code == 409 and stale.json()["version"] > 1
    r = call(client, "POST", f"/letters/{letter['id']}/revoke", NIP_STAFF2,
             roles=("opd_admin",), opd="3510.03", json={"reason": "Dibatalkan"})
    assert r.status_code == 200 and r.json()["revoked"]["by"] == NIP_STAFF2

    draft_letter = create(client)
    r = call(client, "POST", f"/letters/{draft_letter['id']}/revoke", NIP_STAFF2,
             roles=("opd_admin",), opd="3510.03", json={"reason": "Dibatalkan"})
    assert r.status_code == 409
    assert r.json()["state"] == "draft" and r.json()["allowed"] == ["submit", "withdraw"]
    r = document(client, draft_letter["id"])
    assert r.status_code == 404 and r.json()["sealing"] is False


@pytest.fixture
def without_keys(request, config, tmp_path):
    """A letters service whose PKCS#12 sealer finds no key (its directory is empty)."""
    from services.letters.service import LettersService

    keys = tmp_path / "keys"
    keys.mkdir()
    ca = tmp_path / "ca"
    port = free_port()
    settings = {**config, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
                "DIRECTORY_SNAPSHOT_ON_EMPTY": False, "LETTERS_REFERENCE_CACHE_SECONDS": 0,
                "LETTERS_SETTLE_INTERVAL_SECONDS": 0, "LETTERS_SEALER": "pkcs12",
                "LETTERS_KEYS_DIR": str(keys),
                "LETTERS_TRUST_ROOTS": str(sealing.ensure_development_ca(ca))}
    container = ServiceContainer(LettersService, settings)
    container.start()
    request.addfinalizer(container.stop)
    db = seed_directory(config, service="letters")
    return Running(HttpClient(f"http://127.0.0.1:{port}", config), db, settings), keys, ca


def test_a_seal_without_a_key_leaves_the_letter_signed_and_parks_the_event(without_keys,
                                                                           config, events):
    running, keys, ca = without_keys
    client, db = running.client, running.db
    letter = signed(client)

    def parked():
        return dlq.list_dlqs(config["AMQP_URI"], [QUEUE])[0][1] == 1
    wait_until(parked, timeout=30, message="the letter.signed event parked")
    [entry] = dlq.show(config["AMQP_URI"], QUEUE)
    assert entry["reason"] == "exhausted" and "no signing key" in entry["error"]
    stored = db.letters.find_one({"_id": letter["id"]})
    assert stored["state"] == "signed" and "document" not in stored
    assert db.documents.count_documents({}) == 0
    assert document(client, letter["id"]).json()["sealing"] is True

    # the operator installs the Pemda's seal and replays the parked event: it is sent
    pemda = sealing.DevelopmentSealer(ca).key_file("Pemerintah Kabupaten Banyuwangi", "0" * 18)
    shutil.copy(pemda, keys / sealing.PEMDA_FILE)
    replayed, refused = dlq.replay(config["AMQP_URI"], QUEUE)
    assert len(replayed) == 1 and refused == []
    sent(db, letter["id"])
    pdf = document(client, letter["id"]).content
    body = upload(client, pdf).json()
    assert body["hash_match"] and body["signature_valid"]
    assert body["signature"]["signer"] == "Pemerintah Kabupaten Banyuwangi"



def _held_request(client, letter_id):
    """A request this service is answering until the socket closes: a sign whose declared
    body never comes."""
    import socket
    from urllib.parse import urlsplit

    address = urlsplit(client.base_url)
    tok = client.token(roles=HEAD, opd="3510.03.01", sub=f"u-{NIP_HEAD}", nip=NIP_HEAD)
    sock = socket.create_connection((address.hostname, address.port))
    sock.sendall((f"POST {API}/letters/{letter_id}/sign HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {tok}\r\nContent-Type: application/json\r\n"
                  "Content-Length: 10\r\n\r\n").encode())
    return sock


def test_a_seal_waits_while_a_burst_of_requests_is_answered(letters, config):
    """With LETTERS_SEAL_YIELD_REQUESTS=1, a request in flight holds the seal back; once it
    ends the letter is sealed and sent. A request that never ends holds it back at most
    LETTERS_SEAL_YIELD_SECONDS."""
    from pamong.web.route import requests_in_flight

    client, db = letters.client, letters.db
    letters.config.update(LETTERS_SEAL_YIELD_REQUESTS=1, LETTERS_SEAL_YIELD_SECONDS=30)
    held = _held_request(client, "nothing")
    wait_until(lambda: requests_in_flight() >= 1, message="the request in flight")
    first = signed(client)
    time.sleep(2)  # a seal takes well under a second once it may run
    assert db.letters.find_one({"_id": first["id"]})["state"] == "signed"
    held.close()
    wait_until(lambda: requests_in_flight() == 0, message="the request ended")
    sent(db, first["id"])

    letters.config.update(LETTERS_SEAL_YIELD_SECONDS=3)
    held = _held_request(client, "nothing")
    try:
        wait_until(lambda: requests_in_flight() >= 1, message="the request in flight")
        started = time.monotonic()
        second = signed(client)
        sent(db, second["id"])
        assert time.monotonic() - started >= 2.5  # held back, but not for ever
    finally:
        held.close()
