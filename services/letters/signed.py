"""The signed letter's document, its public verification and its revocation.

- **Sealing** (``seal_signed_letter`` on ``letter.signed``): the letter is rendered to PDF
  (``document.render_letter``) with a QR code of ``<LETTERS_PUBLIC_URL>/verifikasi/surat/<code>``,
  sealed (``sealing``: the process's ``Sealer``, chosen by ``LETTERS_SEALER``) and stored
  (``documents`` by letter id, ``hashes`` by SHA-256, ``codes`` by verification code); then
  one compare-and-set write (``state: signed`` and not revoked) moves it to ``sent`` with its
  ``document``, its timeline entry and ``letter.sent``. Exactly once under redelivery and
  replicas: the stored documents are keyed inserts (the first one stays; a replica that sealed
  too reads it and uses its hash) and a second letter write finds the state changed and
  publishes nothing. A letter revoked before it was sealed is not sent. Rendering and sealing
  are CPU work that holds the GIL: they run in ``sealpool``'s worker processes, started with a
  lower priority, so a signing burst is served first and the seals catch up after it. A seal
  and what follows it (the letter's delivery and its list and search postings, tens of
  writes) is background work: while the process answers ``LETTERS_SEAL_YIELD_REQUESTS``
  requests or more at once (a signing peak), a seal waits for the burst to pass, at most
  ``LETTERS_SEAL_YIELD_SECONDS``.
- **A seal that fails** (no key, a wrong passphrase) raises: the event is retried, then parked
  in the handler's DLQ with the reason; the letter stays ``signed`` until an operator fixes the
  keys and replays it (``pamong dlq replay``). A seal worker that dies mid-seal is replaced
  and its event retried the same way. A sealer that cannot even be set up is logged at start.
- **Verification** (public): ``GET /verify/<code>`` answers from the letter itself, read by
  ``_id`` (``codes`` -> letter), never cached (``no-store``), so a revocation shows at once;
  ``POST /verify`` takes a PDF and says whether it is byte for byte a sealed letter (its
  SHA-256 in ``hashes``) and whether its PAdES signature holds against the trusted roots
  (checked in an OS thread of the service, ``tpool``: a visitor waits for no sealing backlog).
  What either says of a letter is ``domain.public_view``: never the subject or the content.
- **Revocation** (``POST /letters/<id>/revoke``): the signer, or an ``opd_admin`` whose write
  scope covers the letter's unit, revokes a signed, sent or archived letter once, with a
  reason: ``revoked`` on the letter (its state stays), a timeline entry and ``letter.revoked``.
"""

import hashlib
import logging
import re
import time
from datetime import date

import eventlet
import pymongo
from bson import Binary
from eventlet import tpool
from nameko.extensions import DependencyProvider
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from pamong.events.consumer import handles
from pamong.events.outbox import OUTBOX
from pamong.privacy import mask_text
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import by_ids, db_now
from pamong.web import Problem, forbidden, route, unprocessable
from pamong.web.route import requests_in_flight
from services.letters import domain, numbering, sealing
from services.letters.access import API, DRAFTERS
from services.letters.flow import letter_out, secret_subject
from services.letters.schemas import LetterOut, RevokeBody, UploadVerifyOut, VerifyOut
from services.letters.sealpool import SEAL_PROCESSES, SealPool, build_sealer
from services.letters.store import CODES, DOCUMENTS, HASHES, KINDS, LETTERS

log = logging.getLogger(__name__)

TAGS = ["letters"]
VERIFY_TAGS = ["verification"]
DEFAULT_PUBLIC_URL = "http://localhost:8003"
VERIFY_MAX_BYTES = 20 * 1024 * 1024  # a sealed letter is tens of kB; scans are not sealed
CODE = re.compile(r"[A-Za-z0-9_-]{8,64}")  # what secrets.token_urlsafe draws
NO_STORE = {"Cache-Control": "no-store"}  # a verification is never served stale
READ_ROLES = DRAFTERS + ("sekretariat", "admin", "service")
PUBLIC_FIELDS = {k: 1 for k in ("state", "number", "signed_at", "security", "kind", "unit",
                                "signed_by", "revoked", "document")}


class Sealing:
    """The process's sealer (``LETTERS_SEALER``: ``development`` or ``pkcs12``, keys in
    ``LETTERS_KEYS_DIR``) and the roots a verification trusts. The sealer is set up here to
    report a problem at start; the seal workers set up theirs the same way and seal."""

    def __init__(self, config):
        setup = build_sealer(config)  # the workers build theirs with the same function
        self.sealer, self.trust_roots, self.problem = (setup.sealer, setup.trust_roots,
                                                       setup.problem)
        if self.problem:
            log.error("letters cannot be sealed (%s sealer): %s. Signed letters stay signed; "
                      "their letter.signed events are retried, then parked in the DLQ",
                      setup.kind, self.problem)
        self.pool = SealPool(config)  # a worker starts when a seal first needs it

    def seal(self, printable, verify_url):
        """``(sealed PDF, the signing certificate's subject)``, from a seal worker."""
        if self.sealer is None:
            raise sealing.SealingError(self.problem)
        return self.pool.seal(printable, verify_url)

    def check(self, pdf):
        # an OS thread, not the pool: a visitor's upload must not queue behind a backlog of
        # seals in workers that yield the CPU to everything else
        return tpool.execute(sealing.check_signature, pdf, self.trust_roots)

    def close(self):
        self.pool.close()


class SealerProvider(DependencyProvider):
    """One ``Sealing`` per process (its keys read once), shared by its workers; its seal
    workers end with the service."""

    def setup(self):
        self.sealing = Sealing(self.container.config)

    def stop(self):
        if hasattr(self, "sealing"):  # not when its setup failed
            self.sealing.close()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.sealing


class DocumentEndpoints:
    """Mixed into the letters service (needs ``db``, ``outbox``, ``config``, ``cache`` and
    flow's ``_letter``)."""

    sealer = SealerProvider()

    # -- sealing and sending ---------------------------------------------------------------

    # one seal at a time per seal worker: more would only wait for one, holding a nameko
    # worker the HTTP entrypoints need
    @handles("letters", "letter.signed", concurrency=SEAL_PROCESSES)
    def seal_signed_letter(self, event):
        letter = self.db[LETTERS].find_one({"_id": event.data["id"]}, {OUTBOX: 0})
        if letter is None or letter["state"] != domain.SIGNED or letter.get("revoked"):
            return  # sent already (a redelivery, another replica), or revoked first
        document = (self.db[DOCUMENTS].find_one({"_id": letter["_id"]}, {"pdf": 0})
                    or self._store_document(letter))
        for collection, key in ((HASHES, document["sha256"]), (CODES, letter["verify_code"])):
            try:
                self.db[collection].insert_one({"_id": key, "letter": letter["_id"]})
            except pymongo.errors.DuplicateKeyError:
                pass  # written by an earlier run
        self._send(letter, document)

    def _yield_to_requests(self):
        """Wait while this process answers a burst of requests (a signing peak), at most
        ``LETTERS_SEAL_YIELD_SECONDS``: the signers wait for their numbers, the seal can
        wait for them."""
        busy = int(self.config.get("LETTERS_SEAL_YIELD_REQUESTS", 8))
        deadline = time.monotonic() + float(self.config.get("LETTERS_SEAL_YIELD_SECONDS", 10))
        while busy and requests_in_flight() >= busy and time.monotonic() < deadline:
            eventlet.sleep(0.1)

    def _store_document(self, letter):
        self._yield_to_requests()
        public = self.config.get("LETTERS_PUBLIC_URL") or DEFAULT_PUBLIC_URL
        url = f"{public.rstrip('/')}/verifikasi/surat/{letter['verify_code']}"
        try:
            pdf, subject = self.sealer.seal(self._printable(letter), url)
        except sealing.SealingError as error:
            log.error("letter %s (%s) could not be sealed and stays signed: %s", letter["_id"],
                      letter["number"], mask_text(str(error)))
            raise
        document = {"_id": letter["_id"], "sha256": hashlib.sha256(pdf).hexdigest(),
                    "size": len(pdf), "sealed_at": db_now(), "signer_subject": subject}
        try:
            self.db[DOCUMENTS].insert_one({**document, "pdf": Binary(pdf)})
        except pymongo.errors.DuplicateKeyError:  # a replica sealed it first: keep its copy
            return self.db[DOCUMENTS].find_one({"_id": letter["_id"]}, {"pdf": 0})
        return document

    def _printable(self, letter):
        """The letter as ``render_letter`` takes it, with the directory's names."""
        opd = [letter["opd"]] if letter.get("opd") else []
        units = by_ids(self.db[UNITS], numbering.unit_chain(letter["unit"]) + opd)
        kind = self.cache.get(("kind", letter["kind"]), lambda: self.db[KINDS].find_one(
            {"_id": letter["kind"]})) or {}
        assignment = letter.get("assignment")
        if assignment:
            people = by_ids(self.db[EMPLOYEES], assignment["employees"])
            assignment = {**assignment, "start": date.fromisoformat(assignment["start"]),
                          "end": date.fromisoformat(assignment["end"]),
                          "employees": [_assignee(nip, people.get(nip))
                                        for nip in assignment["employees"]]}
        return {**letter, "letterhead": domain.letterhead(units, letter["unit"], letter["opd"]),
                "kind_title": kind.get("heading") or "SURAT",
                "zone": units.get(letter["unit"], {}).get("timezone") or "Asia/Jakarta",
                "attachments": len(letter.get("attachments") or ()),
                "addressees": [p["name"] for p in letter["addressees"]],
                "copies": [p["name"] for p in letter["copies"]],
                "signer": letter["signed_by"], "assignment": assignment}

    def _send(self, letter, document):
        at = db_now()
        internal, external = domain.delivery(letter)
        signer = letter["signed_by"]
        sent = self.outbox.event("letter.sent", {
            "id": letter["_id"], "number": letter["number"], "kind": letter["kind"],
            "unit": letter["unit"], "opd": letter["opd"], "security": letter["security"],
            "urgency": letter["urgency"], "subject": secret_subject(letter),
            "signed_at": letter["signed_at"], "internal": internal, "external": external,
            "sha256": document["sha256"]}, opd=letter["opd"])
        self.outbox.update(
            LETTERS, {"_id": letter["_id"], "state": domain.SIGNED, "revoked": None},
            {"$set": {"state": domain.SENT, "sent_at": at, "updated_at": at,
                      "document": {k: document[k] for k in ("sha256", "size", "sealed_at")}},
             "$inc": {"version": 1},
             "$push": {"timeline": {"at": at, "nip": signer["nip"], "name": signer["name"],
                                    "step": "send", "from": domain.SIGNED, "to": domain.SENT,
                                    "note": None}}},
            [sent])  # no match: sent by another run, or revoked meanwhile: nothing to do

    # -- the document ----------------------------------------------------------------------

    @route("GET", f"{API}/letters/<letter_id>/document", roles=READ_ROLES, tags=TAGS,
           summary="The sealed PDF (ETag: its SHA-256); 404 until it is sealed",
           description="A signed letter is sealed a moment after signing: until then the "
                       "answer is 404 with `sealing: true` and Retry-After. A letter that "
                       "was never signed has no document (404).")
    def get_document(self, request, principal, letter_id):
        letter = self._letter(principal, letter_id)
        stored = self.db[DOCUMENTS].find_one({"_id": letter_id})
        if stored is None:
            if letter["state"] == domain.SIGNED and not letter.get("revoked"):
                raise Problem(404, "The letter is being sealed: its PDF is ready in a few "
                                   "seconds.", headers={"Retry-After": "2"},
                              extensions={"state": letter["state"], "sealing": True})
            raise Problem(404, f"A {letter['state']} letter has no sealed document: only a "
                               "signed letter is sealed.",
                          extensions={"state": letter["state"], "sealing": False})
        headers = {"ETag": f'"{stored["sha256"]}"', "Cache-Control": "private, no-cache"}
        if request.if_none_match.contains(stored["sha256"]):
            return Response(status=304, headers=headers)
        name = re.sub(r"[^A-Za-z0-9.-]+", "_", letter["number"] or letter_id)
        return Response(bytes(stored["pdf"]), content_type="application/pdf", headers={
            **headers, "Content-Disposition": f'inline; filename="{name}.pdf"'})

    # -- public verification ---------------------------------------------------------------

    @route("GET", f"{API}/verify/<code>", public=True, response=VerifyOut(), tags=VERIFY_TAGS,
           summary="Verify a letter by the code its QR carries (no login)",
           description="valid or revoked with the number, the date and (except on Sangat "
                       "Rahasia and Rahasia letters) the signer, unit and kind; never the "
                       "subject. An unknown code is a 404 problem with `verification: unknown`. "
                       "Never cached.")
    def verify_code(self, request, principal, code):
        found = self.db[CODES].find_one({"_id": code}) if CODE.fullmatch(code) else None
        letter = self._verifiable(found["letter"]) if found else None
        if letter is None:
            raise Problem(404, "No letter carries this verification code: the document is "
                               "not one this Pemda signed, or the code was mistyped.",
                          # not "status": in a problem that member is the HTTP status
                          headers=NO_STORE, extensions={"verification": "unknown"})
        return 200, self._public(letter), NO_STORE

    @route("POST", f"{API}/verify", public=True, response=UploadVerifyOut(),
           max_body=VERIFY_MAX_BYTES, tags=VERIFY_TAGS,
           problems={422: "No PDF in the body nor in the multipart field `file`"},
           summary="Verify a PDF file: is it a letter sealed here, unchanged, and does its "
                   "signature hold? (no login)",
           description="The PDF as the body (application/pdf) or as the multipart field "
                       f"`file`, at most {VERIFY_MAX_BYTES // 2**20} MB. `hash_match`: the "
                       "file is byte for byte a sealed letter; `signature_valid`: its PAdES "
                       "signature is intact, covers the whole file and chains to the trusted "
                       "root. Never cached.")
    def verify_upload(self, request, principal):
        letter, check = self._check_pdf(_uploaded(request))
        view = (self._public(letter) if letter else
                {"status": "unknown", "number": None, "date": None, "security": None})
        return 200, {**view, "hash_match": letter is not None,
                     "signature_valid": check["valid"], "signature": check}, NO_STORE

    def _check_pdf(self, pdf):
        """``(letter, signature check)``: the sealed letter ``pdf`` is byte for byte (None
        when it is none, or not verifiable), and whether its PAdES signature holds."""
        known = self.db[HASHES].find_one({"_id": hashlib.sha256(pdf).hexdigest()})
        return (self._verifiable(known["letter"]) if known else None), self.sealer.check(pdf)

    def _verifiable(self, letter_id):
        letter = self.db[LETTERS].find_one({"_id": letter_id}, PUBLIC_FIELDS)
        return letter if letter and letter["state"] in domain.REVOCABLE else None

    def _public(self, letter):
        unit = self.db[UNITS].find_one({"_id": letter["unit"]}, {"name": 1}) or {}
        return domain.public_view(letter, unit.get("name"))

    # -- revocation ------------------------------------------------------------------------

    @route("POST", f"{API}/letters/<letter_id>/revoke", roles=DRAFTERS, body=RevokeBody(),
           response=LetterOut(), tags=TAGS,
           summary="Revoke a signed letter (its signer, or an opd_admin of its unit); once",
           description="The letter keeps its state and gains `revoked`; verification answers "
                       "`revoked` from then on. A letter revoked before it was sealed is not "
                       "sent.")
    def revoke_letter(self, request, principal, letter_id, body):
        letter = self._letter(principal, letter_id)
        signer = (letter.get("signed_by") or {}).get("nip")
        if not principal.nip or not (principal.nip == signer or (
                principal.has_any(("opd_admin",)) and principal.can_write(letter["unit"]))):
            raise forbidden("Only the letter's signer, or an opd_admin of its unit (with a NIP "
                            "in the token), revokes it.")
        for _ in range(3):  # the sealing handler may move it signed -> sent meanwhile
            _check_revocable(letter, body.get("version"))
            at = db_now()
            revoked = {"at": at, "by": principal.nip, "reason": body["reason"]}
            event = self.outbox.event("letter.revoked", {
                "id": letter_id, "number": letter["number"], "unit": letter["unit"],
                "opd": letter["opd"], "revoked_at": at, "by": principal.nip,
                "reason": body["reason"]}, opd=letter["opd"])
            written = self.outbox.update(
                LETTERS, {"_id": letter_id, "version": letter["version"], "revoked": None},
                {"$set": {"revoked": revoked, "updated_at": at}, "$inc": {"version": 1},
                 "$push": {"timeline": {"at": at, "nip": principal.nip, "name": principal.name,
                                        "step": "revoke", "from": letter["state"],
                                        "to": letter["state"], "note": body["reason"]}}},
                [event])
            letter = self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})
            if written.matched_count:
                return letter_out(letter, principal.nip)
        raise Problem(409, "The letter keeps changing: try again.",
                      extensions={"state": letter["state"], "version": letter["version"]})


def _check_revocable(letter, version):
    state = letter["state"]
    if revoked := letter.get("revoked"):
        raise Problem(409, f"The letter is already revoked (since {revoked['at']:%Y-%m-%d}).",
                      extensions={"state": state, "revoked": True})
    if state not in domain.REVOCABLE:
        raise Problem(409, f"A {state} letter cannot be revoked: only a signed, sent or "
                           "archived one can.",
                      extensions={"state": state, "allowed": domain.allowed_steps(state)})
    if version is not None and version != letter["version"]:
        raise Problem(409, "The letter changed since you read it: read it again.",
                      extensions={"state": state, "version": letter["version"]})


def _assignee(nip, employee):
    employee = employee or {}
    return {"nip": nip, "name": employee.get("display_name") or employee.get("name") or nip,
            "title": (employee.get("position") or {}).get("title") or "-"}


def _uploaded(request):
    """The uploaded PDF's bytes: the raw body, or the multipart field ``file``."""
    request.max_content_length = VERIFY_MAX_BYTES  # also for a chunked body
    try:
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("file")
            data = upload.read() if upload else b""
        else:
            data = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise Problem(413, f"The file is larger than {VERIFY_MAX_BYTES} bytes.") from None
    if not data:
        raise unprocessable({"file": ["send the PDF as the body (application/pdf) or as the "
                                      "multipart field file"]})
    return data
