"""Files of a letter: a draft's attachments and an incoming letter's scan.

A file's type is what its first bytes say (PDF, PNG or JPEG), never its name or the declared
Content-Type: anything else is refused with 415 naming what it is; a file over
``LETTERS_ATTACHMENT_MAX_BYTES`` (default 10 MiB) with 413 before it is read. A file is
stored in ``files`` as chunks ``<file id>:<n>`` of at most ``CHUNK_BYTES`` (far below the
16 MB document limit) plus its head ``<file id>`` (name, type, size, SHA-256, chunk count),
written after its chunks: a head names a complete file. The file id comes from the letter and
the content, so uploading the same file to the same letter again stores and lists it once.
A download (``GET /files/<id>``) is for whoever may see the letter.
"""

import hashlib
import uuid
from urllib.parse import quote

import pymongo
from bson import Binary
from werkzeug.wrappers import Response

from pamong.events.outbox import OUTBOX
from pamong.storage import by_ids, db_now
from pamong.web import Problem, conflict, forbidden, not_found, route
from pamong.web.route import read_body
from services.letters import domain
from services.letters.access import API, CLERKS, DRAFTERS
from services.letters.schemas import AttachmentOut, AttachmentQuery
from services.letters.store import FILES, LETTERS

TAGS = ["attachments"]
CHUNK_BYTES = 512 * 1024
MAX_BYTES = 10 * 1024 * 1024  # LETTERS_ATTACHMENT_MAX_BYTES default
UPLOAD_CEILING = 64 * 1024 * 1024  # the kernel's limit; the setting applies below it
MAX_FILES = 20  # per letter: the letter lists them
FILE_IDS = uuid.UUID("0c7e3b52-9a41-4d6f-8e2b-51a7c3d9e604")
ALLOWED = ("application/pdf", "image/png", "image/jpeg")
SIGNATURES = [  # leading bytes -> type; the allowed ones first
    (b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"), (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"), (b"PK\x03\x04", "application/zip"),
    (b"GIF8", "image/gif"), (b"{\\rtf", "application/rtf"),
    (b"\xd0\xcf\x11\xe0", "application/x-ole-storage"),
]


def detect_type(data):
    """The content type the bytes show (``application/octet-stream``: none known)."""
    return next((kind for magic, kind in SIGNATURES if data.startswith(magic)),
                "application/octet-stream")


def file_id(letter_id, sha256):
    return uuid.uuid5(FILE_IDS, f"{letter_id}:{sha256}").hex


def chunk_ids(head):
    return [f"{head['_id']}:{n}" for n in range(head["chunks"])]


def store_file(db, letter_id, name, data, by, at):
    """Store ``data`` as a file of the letter; its head (the stored one if it exists)."""
    sha256 = hashlib.sha256(data).hexdigest()
    head = {"_id": file_id(letter_id, sha256), "letter": letter_id, "name": name,
            "type": detect_type(data), "size": len(data), "sha256": sha256,
            "chunks": max(1, -(-len(data) // CHUNK_BYTES)), "uploaded_by": by,
            "uploaded_at": at}
    chunks = [{"_id": cid, "data": Binary(data[n * CHUNK_BYTES:(n + 1) * CHUNK_BYTES])}
              for n, cid in enumerate(chunk_ids(head))]
    try:
        db[FILES].insert_many(chunks, ordered=False)
    except pymongo.errors.BulkWriteError as exc:  # a repeat: the same bytes under those ids
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
    try:
        db[FILES].insert_one(head)
    except pymongo.errors.DuplicateKeyError:
        return db[FILES].find_one({"_id": head["_id"]})
    return head


def entry_of(head):
    """What the letter lists of a file."""
    return {"id": head["_id"], **{k: head[k] for k in ("name", "type", "size", "sha256",
                                                       "uploaded_by", "uploaded_at")}}


class AttachmentEndpoints:
    """Mixed into the letters service (through MailEndpoints)."""

    def _may_attach(self, principal, letter):
        """A draft's files are its drafter's while it can be edited; an incoming letter's
        scan is its receiving unit's clerks' while it is received (not yet archived)."""
        if letter.get("direction") == "incoming":
            if not (principal.has_any(CLERKS) and principal.can_write(letter["unit"])):
                raise forbidden("The clerks of the receiving unit attach its scan.")
            if letter["state"] != domain.RECEIVED:
                raise conflict(f"A {letter['state']} letter takes no more files.")
        else:
            if principal.nip != letter["drafter"]["nip"]:
                raise forbidden("Only the letter's drafter attaches files to it.")
            if letter["state"] not in domain.EDITABLE:
                raise conflict(f"A {letter['state']} letter takes no more files: only a "
                               "draft or a returned letter does.")

    @route("POST", f"{API}/letters/<letter_id>/attachments", roles=DRAFTERS + CLERKS,
           query=AttachmentQuery(), response=AttachmentOut(), status=201,
           max_body=UPLOAD_CEILING, tags=TAGS,
           summary="Attach a file (the raw body; PDF, PNG or JPEG by content) to a draft "
                   "(its drafter) or an incoming letter's scan (its unit's clerks)",
           description="415 names the detected type of a refused file; 413 above "
                       "LETTERS_ATTACHMENT_MAX_BYTES. The same file again answers it (200).")
    def add_attachment(self, request, principal, letter_id, query):
        letter = self._letter(principal, letter_id)
        self._may_attach(principal, letter)
        limit = int(self.config.get("LETTERS_ATTACHMENT_MAX_BYTES", MAX_BYTES))
        data = read_body(request, limit)
        kind = detect_type(data)
        if kind not in ALLOWED:
            raise Problem(415, f"The file is {kind} by its content; allowed: "
                               f"{', '.join(ALLOWED)}.", extensions={"detected": kind})
        listed = {a["id"]: a for a in letter.get("attachments", ())}
        if len(listed) >= MAX_FILES:
            raise conflict(f"A letter holds at most {MAX_FILES} files.")
        by = principal.nip or principal.sub
        head = store_file(self.db, letter_id, query["name"], data, by, db_now())
        if head["_id"] in listed:
            return 200, listed[head["_id"]]
        entry = entry_of(head)
        written = self.db[LETTERS].update_one(
            {"_id": letter_id, "state": letter["state"], "attachments.id": {"$ne": entry["id"]}},
            {"$push": {"attachments": entry}, "$inc": {"version": 1},
             "$set": {"updated_at": entry["uploaded_at"]}})
        if not written.matched_count:
            again = self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})
            listed = {a["id"]: a for a in again.get("attachments", ())}
            if head["_id"] in listed:  # a concurrent repeat listed it
                return 200, listed[head["_id"]]
            raise conflict(f"The letter became {again['state']} meanwhile: read it again.")
        return entry

    @route("GET", f"{API}/files/<file_id>", roles=DRAFTERS + CLERKS + ("admin", "service"),
           tags=TAGS, summary="Download a letter's file (whoever may see the letter)")
    def get_file(self, request, principal, file_id):
        head = self.db[FILES].find_one({"_id": file_id})
        if head is None or "letter" not in head:  # a chunk id is not a file
            raise not_found()
        self._letter(principal, head["letter"])
        chunks = by_ids(self.db[FILES], chunk_ids(head))
        data = b"".join(bytes(chunks[cid]["data"]) for cid in chunk_ids(head))
        return Response(data, content_type=head["type"], headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(head['name'], safe='')}",
            "ETag": f'"{head["sha256"]}"', "X-Content-Type-Options": "nosniff"})



