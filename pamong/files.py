"""Uploaded files: their type by content, and a chunked store read and written by ``_id``.

**Type by content.** A file's type is what its first bytes say (``detect_type``), never its
name or the Content-Type a client declares: an endpoint refuses a type it does not accept
with 415 naming what the bytes are (``refuse_type``).

**The store** keeps a file in the GridFS layout (what ``mongofiles`` and every GridFS driver
read): a head in ``<files>`` (``fs.files`` by default) with ``length``, ``chunkSize``,
``uploadDate``, ``filename``, ``contentType`` plus our ``sha256``, ``chunks`` (their count)
and the caller's ``metadata``; the bytes in ``<chunks>`` (``fs.chunks``) as ``{files_id, n,
data}`` of at most ``chunk_bytes`` each. Unlike a GridFS driver we give each chunk the
``_id`` ``"<file id>:<n>"``: a download reads its chunks by ``_id`` (the only filter the local
database looks up by index) instead of filtering on ``files_id``. The chunks are written
first and the head last, so a head always names a complete file; a crash between leaves
orphan chunks that a repeat of the upload writes over. The caller chooses the file id; derived
from the owner and the content's hash (``content_id``), the same upload twice stores and lists
one file. A module may keep heads and chunks in one collection (letters does: ``files``).
"""

import hashlib
import uuid
from urllib.parse import quote

import pymongo
from bson import Binary
from werkzeug.wrappers import Response

from pamong.storage import by_ids
from pamong.web.problem import Problem

FILES, CHUNKS = "fs.files", "fs.chunks"
CHUNK_BYTES = 255 * 1024  # GridFS's default chunk size; far below the 16 MB document limit
OCTET_STREAM = "application/octet-stream"
SIGNATURES = [  # leading bytes -> type
    (b"%PDF-", "application/pdf"), (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"), (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"), (b"PK\x03\x04", "application/zip"),
    (b"GIF8", "image/gif"), (b"{\\rtf", "application/rtf"),
    (b"\xd0\xcf\x11\xe0", "application/x-ole-storage"),
]
_IDS = uuid.UUID("6f1d2c9e-0b7a-4e55-9d0c-3a8b2f41e7c1")


def detect_type(data):
    """The content type the bytes show (``application/octet-stream``: none known)."""
    return next((kind for magic, kind in SIGNATURES if data.startswith(magic)), OCTET_STREAM)


def refuse_type(data, allowed):
    """The detected type when it is one of ``allowed``; else a 415 problem naming it."""
    kind = detect_type(data)
    if kind not in allowed:
        raise Problem(415, f"The file is {kind} by its content; allowed: "
                           f"{', '.join(allowed)}.",
                      extensions={"detected": kind, "allowed": list(allowed)})
    return kind


def sha256_of(data):
    return hashlib.sha256(data).hexdigest()


def content_id(namespace, owner, sha256):
    """A file id from its owner (any string, e.g. ``"<letter>"`` or ``"<app>:<requirement>"``)
    and its hash: the same bytes for the same owner get the same id."""
    space = namespace if isinstance(namespace, uuid.UUID) else uuid.uuid5(_IDS, namespace)
    return uuid.uuid5(space, f"{owner}:{sha256}").hex


def chunk_count(head):
    if "chunks" in head:
        return head["chunks"]
    return max(1, -(-head["length"] // head["chunkSize"]))


def chunk_ids(head):
    return [f"{head['_id']}:{n}" for n in range(chunk_count(head))]


def describe(head):
    """``{name, type, size, sha256}`` of a head (also of a head written before this module
    by the letters service, with those field names)."""
    return {"name": head.get("filename", head.get("name")),
            "type": head.get("contentType", head.get("type")),
            "size": head.get("length", head.get("size")), "sha256": head["sha256"]}


class FileStore:
    """Files in ``db[files]`` (heads) and ``db[chunks]`` (their bytes)."""

    def __init__(self, db, files=FILES, chunks=CHUNKS, chunk_bytes=CHUNK_BYTES):
        self.db = db
        self.files = db[files]
        self.chunks = db[chunks]
        self.chunk_bytes = chunk_bytes

    def put(self, file_id, data, *, filename, at, content_type=None, metadata=None,
            **fields):
        """Store ``data`` under ``file_id``; the head (the one stored before when the id
        exists: a repeat). ``fields`` are extra top-level head fields (a module's own)."""
        sha256 = sha256_of(data)
        head = {"_id": file_id, "filename": filename,
                "contentType": content_type or detect_type(data), "length": len(data),
                "chunkSize": self.chunk_bytes, "uploadDate": at, "sha256": sha256,
                "chunks": max(1, -(-len(data) // self.chunk_bytes)),
                "metadata": dict(metadata or {}), **fields}
        chunks = [{"_id": cid, "files_id": file_id, "n": n,
                   "data": Binary(data[n * self.chunk_bytes:(n + 1) * self.chunk_bytes])}
                  for n, cid in enumerate(chunk_ids(head))]
        try:
            self.chunks.insert_many(chunks, ordered=False)
        except pymongo.errors.BulkWriteError as exc:  # a repeat: the same bytes, same ids
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
        try:
            self.files.insert_one(head)
        except pymongo.errors.DuplicateKeyError:
            return self.files.find_one({"_id": file_id})
        return head

    def head(self, file_id):
        """The head of ``file_id`` (None when there is none: a chunk's id is not a file)."""
        head = self.files.find_one({"_id": file_id})
        return head if head is not None and "sha256" in head else None

    def read(self, head):
        """The bytes of the file ``head`` names."""
        ids = chunk_ids(head)
        found = by_ids(self.chunks, ids)
        return b"".join(bytes(found[cid]["data"]) for cid in ids)


def download(head, data):
    """The download response of a stored file: its type, an attachment disposition with the
    file's name, its hash as the ETag, and no sniffing by the browser."""
    described = describe(head)
    return Response(data, content_type=described["type"], headers={
        "Content-Disposition": "attachment; filename*=UTF-8''"
                               f"{quote(described['name'] or head['_id'], safe='')}",
        "ETag": f'"{described["sha256"]}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store"})
