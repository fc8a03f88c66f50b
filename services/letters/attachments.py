"""Files of a letter: a draft's attachments and an incoming letter's scan.

A file's type is what its first bytes say (PDF, PNG or JPEG), never its name or the declared
Content-Type: anything else is refused with 415 naming what it is; a file over
``LETTERS_ATTACHMENT_MAX_BYTES`` (default 10 MiB) with 413 before it is read. A file is
stored by ``pamong.files`` (the GridFS layout) in the one collection ``files``: chunks
``<file id>:<n>`` plus its head ``<file id>`` (name, type, size, SHA-256, chunk count, the
letter), written after its chunks: a head names a complete file. The file id comes from the
letter and the content, so uploading the same file to the same letter again stores and lists
it once. A download (``GET /files/<id>``) is for whoever may see the letter.
"""

import uuid

from pamong import files
from pamong.events.outbox import OUTBOX
from pamong.files import FileStore
from pamong.storage import db_now
from pamong.web import conflict, forbidden, not_found, route
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


def file_store(db):
    """A letter's files: heads and chunks in the one ``files`` collection."""
    return FileStore(db, files=FILES, chunks=FILES, chunk_bytes=CHUNK_BYTES)


def store_file(db, letter_id, name, data, by, at):
    """Store ``data`` as a file of the letter; its head (the stored one if it exists)."""
    file_id = files.content_id(FILE_IDS, letter_id, files.sha256_of(data))
    return file_store(db).put(file_id, data, filename=name, at=at, letter=letter_id,
                              uploaded_by=by, uploaded_at=at)


def entry_of(head):
    """What the letter lists of a file."""
    return {"id": head["_id"], **files.describe(head),
            "uploaded_by": head["uploaded_by"], "uploaded_at": head["uploaded_at"]}


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
        files.refuse_type(data, ALLOWED)
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
        store = file_store(self.db)
        head = store.head(file_id)
        if head is None or "letter" not in head:  # a chunk id is not a file
            raise not_found()
        self._letter(principal, head["letter"])
        return files.download(head, store.read(head))



