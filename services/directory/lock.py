"""Who may write the directory, across processes: one lock document, shared or exclusive.

- **Exclusive**: a structure change (a unit or position), an import. The structure (the tree
  of units and positions and its superior chains) is what every employee's derived
  supervisor follows, and a structure change re-derives the people below what it moved from
  the structure as a whole; nothing else may write meanwhile, or one of the two would derive
  from a structure the other is replacing.
- **Shared**: a change of one employee, an acting assignment. They read the structure and
  only wait for an exclusive writer, never for each other: two changes of one record are
  ordered by the record's ``version``, two claims of one struktural post by the post's
  ``holder`` claim (``store.claim_post``), and a change files its intent before it derives
  and derives itself again after its write (``changes``), so two of them see each other.

The document (``locks``, ``_id`` ``directory-writes``) holds ``owner``/``until`` (the
exclusive writer and its lease), ``shared`` (``{token: lease end}``), ``epoch`` (raised by
every exclusive writer when it lets go: the structure may have changed, so the per-process
structure cache reloads; with ``generation``, set when the document is made, it is the cache
key), ``import`` (the job being applied: single changes wait until it completed, even when
it failed and its writer let the lock go) and ``filed`` (``store.FILING_VERSION`` once
``store.refile`` built the slots and post claims of a directory stored before them). A
writer that dies leaves its lease to expire; a shared writer that finds a dead exclusive
writer (maybe an import cut midway) waits like behind a live one: the next exclusive writer
(the service's timer every 10 s, or a structure change) finishes that import first
(``on_acquire``), then goes on.

Both kinds rely only on single-document atomicity (``find_one_and_update`` with a filter),
which MongoDB and the local FerretDB build give (``tests/database``).
"""

import time
import uuid

import eventlet
import pymongo
from pymongo import ReturnDocument

from pamong.web import service_unavailable
from services.directory.store import FILING_VERSION, refile

LOCK_ID = "directory-writes"
POLL = 0.02
RETRY_AFTER = 2  # seconds, in a busy 503


class WriteLock:
    def __init__(self, db, lease=30.0, wait=10.0, on_acquire=None, shared=False):
        self.db = db
        self.lease = lease
        self.wait = wait
        self.on_acquire = on_acquire  # (lock) -> None: runs first under an exclusive lock
        self.shared = shared
        self.token = uuid.uuid4().hex
        self.epoch = None
        self.renewed = 0.0  # monotonic time of the last renewal

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def acquire(self):
        deadline = time.monotonic() + self.wait
        if self.shared:
            self._acquire_shared(deadline)
        else:
            self._acquire_exclusive(deadline)
        self.renewed = time.monotonic()
        return self

    # -- shared ------------------------------------------------------------------------------

    def _acquire_shared(self, deadline):
        while True:
            doc = self.db.locks.find_one_and_update(
                {"_id": LOCK_ID, "owner": None, "import": None, "filed": FILING_VERSION},
                {"$set": {f"shared.{self.token}": time.time() + self.lease}},
                return_document=ReturnDocument.AFTER)  # FerretDB: findAndModify has no "fields"
            if doc is not None:
                self.epoch = _epoch_of(doc)
                return
            held = self.db.locks.find_one({"_id": LOCK_ID}, {"shared": 0}) or {}
            if not held or held.get("filed") != FILING_VERSION:
                # no lock yet, or a directory to file: the exclusive lock does that first
                WriteLock(self.db, self.lease, max(deadline - time.monotonic(), 0),
                          self.on_acquire).acquire().release()
                continue
            # an exclusive writer, live or dead, or an import that has not completed: a dead
            # one's work is finished by the next exclusive writer (the service's timer)
            _wait_or_give_up(deadline)

    def flag_import(self, job_id):
        """Under the exclusive lock: an import is being applied; single changes wait until
        it completes (``clear_import``), even if it fails and lets the lock go."""
        self.db.locks.update_one({"_id": LOCK_ID, "owner": self.token},
                                 {"$set": {"import": job_id}})

    def clear_import(self):
        self.db.locks.update_one({"_id": LOCK_ID, "owner": self.token},
                                 {"$set": {"import": None}})

    # -- exclusive ---------------------------------------------------------------------------

    def _acquire_exclusive(self, deadline):
        while True:
            now = time.time()
            if self.db.locks.update_one(
                    {"_id": LOCK_ID, "owner": None},
                    {"$set": {"owner": self.token, "until": now + self.lease}}).modified_count:
                break
            held = self.db.locks.find_one({"_id": LOCK_ID}, {"shared": 0})
            if held is None:
                try:
                    self.db.locks.insert_one({"_id": LOCK_ID, "owner": None, "shared": {},
                                              "epoch": 0, "generation": uuid.uuid4().hex})
                except pymongo.errors.DuplicateKeyError:
                    pass
                continue
            if held.get("until", now) < now and self.db.locks.update_one(
                    {"_id": LOCK_ID, "owner": held["owner"]},
                    {"$set": {"owner": self.token, "until": now + self.lease}}).modified_count:
                break  # the holder died: its lease ran out
            _wait_or_give_up(deadline)
        try:
            if self._drain_shared(deadline).get("filed") != FILING_VERSION:
                refile(self.db)
                self.db.locks.update_one({"_id": LOCK_ID, "owner": self.token},
                                         {"$set": {"filed": FILING_VERSION}})
            if self.on_acquire:
                self.on_acquire(self)
        except BaseException:
            self.release()
            raise

    def _drain_shared(self, deadline):
        """Wait until no shared writer is inside (new ones wait for ``owner``); the leases of
        dead ones are dropped. Returns the lock document."""
        while True:
            doc = self.db.locks.find_one({"_id": LOCK_ID}, {"shared": 1, "filed": 1})
            now = time.time()
            shared = doc.get("shared") or {}
            expired = [token for token, until in shared.items() if until < now]
            if expired:
                self.db.locks.update_one({"_id": LOCK_ID}, {"$unset": {
                    f"shared.{token}": "" for token in expired}})
            if len(shared) == len(expired):
                return doc
            self.renew()
            _wait_or_give_up(deadline)

    # -- both --------------------------------------------------------------------------------

    def keep(self):
        """``renew`` once a third of the lease has passed: long writes call this often."""
        if time.monotonic() - self.renewed > self.lease / 3:
            self.renew()

    def renew(self):
        """Extend the lease (long writes call this between batches). Raises when the lease
        ran out and another writer went ahead: this writer must stop."""
        until = time.time() + self.lease
        if self.shared:
            mine, update = {f"shared.{self.token}": {"$exists": True}}, {
                f"shared.{self.token}": until}
        else:
            mine, update = {"owner": self.token}, {"until": until}
        if not self.db.locks.update_one({"_id": LOCK_ID, **mine}, {"$set": update}).matched_count:
            raise service_unavailable("This change took longer than the directory write lock's "
                                      "lease and was stopped; repeat it (an import resumes).",
                                      retry_after=RETRY_AFTER)
        self.renewed = time.monotonic()

    def release(self):
        if self.shared:
            self.db.locks.update_one({"_id": LOCK_ID},
                                     {"$unset": {f"shared.{self.token}": ""}})
        else:  # the structure may have changed: every process reloads it
            self.db.locks.update_one({"_id": LOCK_ID, "owner": self.token},
                                     {"$set": {"owner": None}, "$inc": {"epoch": 1}})


def _wait_or_give_up(deadline):
    if time.monotonic() >= deadline:
        raise service_unavailable("The directory is busy with another change (an import may "
                                  "be running). Try again shortly.", retry_after=RETRY_AFTER)
    eventlet.sleep(POLL)



def read_epoch(db):
    """The structure's epoch, for a reader (which takes no lock)."""
    return _epoch_of(db.locks.find_one({"_id": LOCK_ID}, {"epoch": 1, "generation": 1}) or {})


def _epoch_of(doc):
    """(generation, epoch): a lock document made anew (deleted by hand, a restored backup)
    starts its epochs again, and a cached structure must not match an old count."""
    return doc.get("generation"), doc.get("epoch", 0)
