"""CSV imports: check the whole file first, then apply it all, resuming after a crash.

1. ``csvio.parse`` checks every row on its own (formats, NIP, phone, duplicates in the file).
2. The rows are laid over the current directory and every record is checked against the
   result (units and positions exist, one holder per struktural post, a caller's OPD scope),
   so a file may refer to records it creates itself.
3. Any bad row: nothing is written (a dry run reports the same rows and stops there).
4. Otherwise, under the directory write lock, the file is saved as an ``imports`` job
   (``applying``), the planned changes are written (``domain.plan``: only real changes, each
   with its events in the same document write), and the job becomes ``done``.

A crash in step 4 leaves the job ``applying``; ``resume`` (a timer in the service) re-plans
the saved file against the directory once the dead writer's lock has expired and writes what
is still missing, so the import completes exactly once: records already written now match
the file and produce no change and no second event. Re-importing a file that is already in
place plans nothing and emits nothing.
"""

import logging
import uuid
from datetime import UTC, datetime, timedelta

from pamong.auth.principal import in_subtree
from pamong.web import Problem
from services.directory import csvio, domain
from services.directory.store import ChangeWriter, load

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
KEY = {"units": "code", "positions": "id", "employees": "nip"}
PROBLEMS = {"units": domain.unit_problems, "positions": domain.position_problems,
            "employees": domain.employee_problems}


class Importer:
    def __init__(self, db, outbox, lock, actor, correlation_id, scope=None, *, today):
        self.db = db
        self.today = today  # the Pemda's date (DIRECTORY_TIMEZONE): changes take effect on it
        self.outbox = outbox
        self.lock = lock  # WriteLock factory: lock(wait=seconds)
        self.actor = actor
        self.correlation_id = correlation_id
        self.scope = scope  # an opd_admin's unit: every row must lie in it

    def run(self, kind, text, dry_run=False):
        parsed = csvio.parse(kind, text, today=self.today)
        if dry_run:
            state, meta = load(self.db)
            errors, changes = self.plan(kind, parsed, state, meta, dry_run=True)
            return _report(None, kind, "checked", parsed, errors, changes, dry_run=True)
        with self.lock() as lock:
            state, meta = load(self.db)
            errors, changes = self.plan(kind, parsed, state, meta)
            if errors:  # the service answers 422 with them
                return _report(None, kind, "rejected", parsed, errors, changes)
            lock.renew()  # checking a large file may have used much of the lease
            job_id = self._save_job(kind, text, len(parsed.rows))
            lock.flag_import(job_id)
            self._apply(job_id, changes, lock)
        return _report(job_id, kind, "done", parsed, errors, changes)

    def plan(self, kind, parsed, state, meta, check=True, dry_run=False):
        """(row errors, changes) for laying ``parsed`` over ``state``; ``check=False`` (a
        resumed import, whose file was checked in full when it was accepted) skips the rules.

        A row naming a record of another OPD (outside the caller's scope): a dry run answers
        as if that record did not exist (it is checked and counted as a new one), so a dry run
        cannot probe the directory; a real run cannot write it and refuses the row without
        naming anything of it."""
        if dry_run and self.scope:
            state, meta = _without_others(kind, parsed, state, meta, self.scope)
        errors = list(parsed.errors) if check else []
        new = domain.State(dict(state.units), dict(state.positions), dict(state.employees))
        target = getattr(new, kind)
        outside = set()  # lines outside the caller's OPD: nothing more is said about them
        kept = parsed.absent | set(domain.KEPT_EMPLOYEE_FIELDS if kind == "employees" else ())
        for row in parsed.rows:
            key = row.record[KEY[kind]]
            existing = target.get(key)
            if check and self.scope and (
                    scope_errors := self._out_of_scope(kind, row, existing)):
                errors += scope_errors
                outside.add(row.line)
                continue
            record, problem = domain.keep_stored(row.record, existing, kept)
            if problem and check:
                errors.append(csvio.RowError(row.line, "NIK", problem))
            target[key] = record
        new.changed()
        for row in parsed.rows:
            if row.line in outside or not check:
                continue
            record = target[row.record[KEY[kind]]]
            problems = PROBLEMS[kind](record, new)
            before = getattr(state, kind).get(row.record[KEY[kind]])
            if kind == "units" and before and before["active"] and not record["active"]:
                problems += domain.deactivation_problems(new, record["code"])
            for column, reason in problems:
                errors.append(csvio.RowError(row.line, column, reason))
        errors.sort(key=lambda e: e.line)
        if errors:
            return errors, []
        return [], domain.plan(state, new, meta, self.today)

    def _out_of_scope(self, kind, row, existing):
        """An opd_admin's row must stay in its OPD; another OPD's record is not described."""
        if existing is not None and not in_subtree(_unit_of(kind, existing), self.scope):
            return [csvio.RowError(row.line, None, "this key cannot be registered by your "
                                                   "OPD; an admin moves records between OPDs")]
        unit = _unit_of(kind, row.record)
        if not in_subtree(unit, self.scope):
            return [csvio.RowError(row.line, None, f"unit {unit} is outside your OPD")]
        return []

    def _save_job(self, kind, text, rows):
        """The job first (``saving``), then its file, then ``applying``: a crash while saving
        leaves a job that names its file, so ``purge_files`` deletes what was stored."""
        job_id = uuid.uuid4().hex
        data = text.encode("utf-8")
        chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
        self.db.imports.insert_one({"_id": job_id, "kind": kind, "status": "saving",
                                    "rows": rows, "chunks": len(chunks), "by": self.actor,
                                    "scope": self.scope,
                                    "correlation_id": self.correlation_id,
                                    "created_at": datetime.now(UTC)})
        self.db.import_files.insert_many([{"_id": f"{job_id}:{n:04d}", "data": chunk}
                                          for n, chunk in enumerate(chunks)])
        self.db.imports.update_one({"_id": job_id}, {"$set": {"status": "applying"}})
        return job_id

    def _apply(self, job_id, changes, lock):
        writer = ChangeWriter(self.db, self.outbox, self.actor, self.correlation_id,
                              f"import:{job_id}")
        kinds = {d["_id"]: d for d in self.db.positions.find({}, {"kind": 1})}
        writer.write(changes, on_batch=lock.keep, refiling=kinds)
        self.db.imports.update_one({"_id": job_id}, {"$set": {
            "status": "done", "finished_at": datetime.now(UTC), "changes": len(changes),
            "events": sum(len(c.events) for c in changes)}})
        lock.clear_import()

    def resume(self):
        """Finish an interrupted import, if any and if no live writer holds the lock."""
        if self.db.imports.find_one({"status": "applying"}, {"_id": 1}) is None:
            return None
        lock = self.lock(wait=0)
        try:
            lock.acquire()
        except Problem:  # held by a live writer (maybe the import itself, still running)
            return None
        try:
            return self.finish_interrupted(lock)
        finally:
            lock.release()

    def finish_interrupted(self, lock):
        """Under the write lock: complete the import whose writer died, if there is one.

        Every writer calls this when it takes the lock (``WriteLock(on_acquire=...)``), so
        nothing is written between the crash and the resume: the directory is as the import
        left it, the file (checked in full when it was accepted) still applies, and the
        import completes, all or nothing. Returns the job id, or None."""
        job = self.db.imports.find_one({"status": "applying"})
        if job is None:
            return None
        job_id = job["_id"]
        text = b"".join(self.db.import_files.find_one({"_id": f"{job_id}:{n:04d}"})["data"]
                        for n in range(job["chunks"])).decode("utf-8")
        self.actor, self.correlation_id = job["by"], job.get("correlation_id")
        self.scope = job.get("scope")  # the caller's OPD limits a resumed import too
        state, meta = load(self.db)
        parsed = csvio.parse(job["kind"], text, today=self.today)
        _, changes = self.plan(job["kind"], parsed, state, meta, check=False)
        self._apply(job_id, changes, lock)
        log.info("import %s resumed: %d changes written", job_id, len(changes))
        return job_id


def purge_files(db, retention_days):
    """Delete the uploaded files of imports that ended more than ``retention_days`` ago, and
    of those whose process died while saving the file (never applied: marked ``abandoned``):
    they hold whole NIKs and are only needed to resume an import. The job document (who,
    when, what it changed) stays. Returns the number of jobs purged."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=retention_days)
    ended = list(db.imports.find({"status": "done", "finished_at": {"$lt": cutoff},
                                  "file_purged_at": {"$exists": False}}, {"chunks": 1}))
    dead = list(db.imports.find({"status": "saving",
                                 "created_at": {"$lt": now - timedelta(hours=1)}},
                                {"chunks": 1}))
    for job in ended + dead:
        db.import_files.delete_many(
            {"_id": {"$in": [f"{job['_id']}:{n:04d}" for n in range(job["chunks"])]}})
        db.imports.update_one({"_id": job["_id"]}, {"$set": {"file_purged_at": now, **(
            {"status": "abandoned"} if job in dead else {})}})
    return len(ended) + len(dead)


def _without_others(kind, parsed, state, meta, scope):
    """``state`` and ``meta`` without the records of ``kind`` that rows name and that lie
    outside ``scope`` (what a dry run of a scoped caller must not know about)."""
    records = getattr(state, kind)
    hidden = {row.record[KEY[kind]] for row in parsed.rows
              if (found := records.get(row.record[KEY[kind]])) is not None
              and not in_subtree(_unit_of(kind, found), scope)}
    if not hidden:
        return state, meta
    kept = {k: v for k, v in records.items() if k not in hidden}
    state = domain.State(**{**{c: getattr(state, c) for c in ("units", "positions",
                                                              "employees")}, kind: kept})
    meta = {**meta, kind: {k: v for k, v in meta[kind].items() if k not in hidden}}
    return state, meta


def _unit_of(kind, record):
    if record is None:
        return None
    return record["code"] if kind == "units" else record["unit"]


def _report(job_id, kind, status, parsed, errors, changes, dry_run=False):
    own = [c for c in changes if c.collection == kind]
    count = {a: sum(1 for c in own if c.action == a) for a in ("created", "transferred")}
    return {"id": job_id, "kind": kind, "status": status, "dry_run": dry_run,
            "rows": len(parsed.rows) + len({e.line for e in parsed.errors}),
            "created": count["created"], "transferred": count["transferred"],
            "updated": len(own) - count["created"] - count["transferred"],
            "unchanged": max(len(parsed.rows) - len(own), 0),
            "derived": len(changes) - len(own), "events": sum(len(c.events) for c in changes),
            "errors": errors, "warnings": parsed.warnings}
