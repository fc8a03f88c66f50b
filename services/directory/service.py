"""The directory service: entrypoints only (rules in ``domain``, storage in ``store``)."""

import logging
import re
import time
import uuid

import eventlet
from marshmallow import ValidationError
from nameko.dependency_providers import Config
from nameko.timer import timer
from werkzeug.wrappers import Response

from pamong.auth.principal import in_subtree, subtree_filter
from pamong.contracts.directory import UNIT_CODE
from pamong.events.consumer import handles
from pamong.events.outbox import OUTBOX, Outbox
from pamong.health import HealthEndpoints
from pamong.localtime import DEFAULT_ZONE, local_today
from pamong.privacy import mask_nik
from pamong.replica import request_snapshot
from pamong.storage import Mongo, by_ids
from pamong.web import (
    conflict,
    current_correlation_id,
    find_page,
    forbidden,
    not_found,
    page_of,
    route,
    unprocessable,
)
from pamong.web.openapi import openapi_endpoint
from services.directory import csvio, domain, schemas
from services.directory.changes import (
    change_employee,
    change_structure,
    check,
    finish_pending,
    unit_slots,
)
from services.directory.importer import Importer, purge_files
from services.directory.lock import WriteLock, read_epoch
from services.directory.snapshot import publish_snapshot
from services.directory.store import (
    INDEXES,
    WITHOUT_HISTORY,
    ChangeWriter,
    load_employees,
    load_holders,
    record_of,
    structure,
)
from services.directory.views import employee_out, reader_criteria, reader_opd, unit_out

log = logging.getLogger(__name__)

API = "/api/directory/v1"
ADMINS = ("admin", "opd_admin")
# a PUT of a key another OPD holds (``_may_replace_existing``), documented in OpenAPI
OTHER_OPDS_KEY = {409: "The key belongs to a record of another OPD"}
TAGS = {"units": ["units"], "positions": ["positions"], "employees": ["employees"],
        "acting": ["acting"], "imports": ["imports"]}


class DirectoryService(openapi_endpoint("directory"), HealthEndpoints):
    name = "directory"
    db = Mongo(indexes=INDEXES)
    outbox = Outbox()
    config = Config()

    # -- writing: one path for every change ------------------------------------------------

    def _lock(self, wait=10.0, shared=False):
        lease = float(self.config.get("DIRECTORY_LOCK_LEASE_SECONDS", 30))
        return WriteLock(self.db, lease=lease, wait=wait, on_acquire=self._finish_import,
                         shared=shared)

    def _finish_import(self, lock):
        """Whoever takes the exclusive lock first completes what a writer that died left:
        an import, the re-derivations a change noted."""
        Importer(self.db, self.outbox, self._lock, None, None,
                 today=self._today()).finish_interrupted(lock)
        finish_pending(self.db, lock, self._timer_writer(), self._today(), everything=True)

    def _timer_writer(self):
        return ChangeWriter(self.db, self.outbox, {"sub": "directory", "role": "service"},
                            None, "timer")

    def _writer(self, principal, source="api"):
        return ChangeWriter(self.db, self.outbox, principal.actor(ADMINS),
                            current_correlation_id(), source)

    def _today(self):
        """Today where the Pemda is (``DIRECTORY_TIMEZONE``), not on the server's UTC clock:
        a transfer at 06:00 WIB takes effect today, not yesterday."""
        return local_today(self.config.get("DIRECTORY_TIMEZONE", DEFAULT_ZONE))

    def _change_employee(self, principal, nip, mutate):
        """One employee, under the shared lock (``changes.change_employee``)."""
        with self._lock(shared=True) as lock:
            return change_employee(self.db, lock, self._writer(principal), nip, mutate,
                                   self._today())

    def _change_structure(self, principal, mutate):
        """A unit or a position, under the exclusive lock (``changes.change_structure``)."""
        with self._lock() as lock:
            change_structure(self.db, lock, self._writer(principal), mutate, self._today())

    def _structure(self):
        """The structure for a reader (no lock: readers never wait)."""
        return structure(self.db, read_epoch(self.db))

    # -- units -----------------------------------------------------------------------------

    @route("GET", f"{API}/units", any_staff=True, query=schemas.UnitQuery(),
           response=page_of(schemas.UnitOut()),
           summary="List units: children of a unit, a subtree, or by name", tags=TAGS["units"])
    def list_units(self, request, principal, query):
        filters = [reader_criteria(principal, "_id"),
                   query.get("parent") and {"parent": query["parent"]},
                   query.get("under") and subtree_filter("_id", query["under"]),
                   query.get("q") and {"name": {"$regex": re.escape(query["q"]), "$options": "i"}}]
        return find_page(self.db.units, filters, query, {"audit": 0, OUTBOX: 0}, out=unit_out)

    @route("GET", f"{API}/units/<code>", any_staff=True, response=schemas.UnitOut(),
           summary="One unit", tags=TAGS["units"])
    def get_unit(self, request, principal, code):
        return unit_out(self._visible_unit(principal, code))

    @route("PUT", f"{API}/units/<code>", roles=ADMINS, body=schemas.UnitBody(),
           response=schemas.UnitOut(), problems=OTHER_OPDS_KEY,
           summary="Create or replace a unit", tags=TAGS["units"])
    def put_unit(self, request, principal, body, code):
        _valid_code(code)
        self._may_replace(principal, "units", code, code)

        def mutate(state, with_people):
            before = state.units.get(code)
            record = {"code": code, **body}
            check(domain.unit_problems(record, state))
            if before and before["active"] and not record["active"]:
                check(domain.deactivation_problems(with_people(unit_slots(state, code)), code))
            state.units[code] = record

        self._change_structure(principal, mutate)
        return unit_out(self.db.units.find_one({"_id": code}))

    @route("POST", f"{API}/units/<code>/deactivate", roles=ADMINS, response=schemas.UnitOut(),
           problems={422: "The unit still has active sub-units, positions or employees"},
           summary="Deactivate a unit (no active sub-unit, position or employee left)",
           tags=TAGS["units"])
    def deactivate_unit(self, request, principal, code):
        self._visible_unit(principal, code)
        self._may_write(principal, code)

        def mutate(state, with_people):
            check(domain.deactivation_problems(with_people(unit_slots(state, code)), code))
            state.units[code] = {**state.units[code], "active": False}

        self._change_structure(principal, mutate)
        return unit_out(self.db.units.find_one({"_id": code}))

    @route("GET", f"{API}/units/<code>/ancestors", any_staff=True,
           response=schemas.UnitOut(many=True),
           summary="The units above a unit, nearest first", tags=TAGS["units"])
    def unit_ancestors(self, request, principal, code):
        self._visible_unit(principal, code)
        codes = domain.ancestors(code)
        found = {u["_id"]: u for u in self.db.units.find({"_id": {"$in": codes}})}
        return [unit_out(found[c]) for c in codes if c in found]

    @route("GET", f"{API}/tree", any_staff=True, query=schemas.TreeQuery(),
           response=schemas.TreeNode(),
           problems={404: "No such root unit in the caller's OPD, or the directory is empty"},
           summary="The organisation tree below a unit, with each unit's head",
           tags=TAGS["units"])
    def tree(self, request, principal, query):
        root = query.get("root") or reader_opd(principal) or _root_code(self.db)
        self._visible_unit(principal, root)
        built = self._structure()
        heads = {p for p in map(built.state.head_position, built.state.units) if p}
        state = built.with_employees({}, load_holders(self.db, heads), set())
        children = {}
        for unit in sorted(state.units):
            children.setdefault(domain.parent_code(unit), []).append(unit)
        return _tree_node(state, children, root)

    @route("GET", f"{API}/units/<code>/head", any_staff=True, query=schemas.HeadQuery(),
           response=schemas.HeadOut(), summary="Who heads a unit on a date (holder and acting)",
           tags=TAGS["units"])
    def unit_head(self, request, principal, query, code):
        self._visible_unit(principal, code)
        built = self._structure()
        head = built.state.head_position(code)
        state = built.with_employees({}, load_holders(self.db, [head] if head else []), set())
        actings = self._actings(head)[1] if head else []
        return domain.head_on(state, actings, code, query["date"] or self._today())

    # -- positions ---------------------------------------------------------------------------

    @route("GET", f"{API}/positions", any_staff=True, query=schemas.PositionQuery(),
           response=page_of(schemas.PositionOut()), summary="List positions",
           tags=TAGS["positions"])
    def list_positions(self, request, principal, query):
        filters = [reader_criteria(principal, "unit"),
                   query.get("unit") and {"unit": query["unit"]}]
        return find_page(self.db.positions, filters, query, {"audit": 0})

    @route("GET", f"{API}/positions/<position_id>", any_staff=True,
           response=schemas.PositionOut(),
           summary="One position", tags=TAGS["positions"])
    def get_position(self, request, principal, position_id):
        position = self.db.positions.find_one({"_id": position_id}, {"audit": 0})
        if position is None or not _reads(principal, position["unit"]):
            raise not_found()
        return position

    @route("PUT", f"{API}/positions/<position_id>", roles=ADMINS, body=schemas.PositionBody(),
           response=schemas.PositionOut(), problems=OTHER_OPDS_KEY,
           summary="Create or replace a position",
           tags=TAGS["positions"])
    def put_position(self, request, principal, body, position_id):
        if not schemas.valid_position_id(position_id):
            raise unprocessable({"id": ["1-64 letters, digits, '.', '_' or '-'"]})
        self._may_replace(principal, "positions", position_id, body["unit"])

        def mutate(state, with_people):
            record = {"id": position_id, **body}
            check(domain.position_problems(record, with_people({position_id})))
            state.positions[position_id] = record

        self._change_structure(principal, mutate)
        return self.db.positions.find_one({"_id": position_id}, {"audit": 0})

    # -- employees ---------------------------------------------------------------------------

    @route("GET", f"{API}/employees", any_staff=True, query=schemas.EmployeeQuery(),
           response=page_of(schemas.EmployeeOut()),
           summary="Search employees by name, NIP, unit or position", tags=TAGS["employees"])
    def list_employees(self, request, principal, query):
        filters = [reader_criteria(principal, "unit"),
                   query.get("under") and subtree_filter("unit", query["under"]),
                   *({name: query[name]} for name in ("unit", "position", "status")
                     if query.get(name))]
        if q := query.get("q"):  # digits: the start of a NIP; else part of the name
            filters.append({"_id": {"$regex": f"^{q}"}} if q.isdigit() else
                           {"name": {"$regex": re.escape(q), "$options": "i"}})
        return find_page(self.db.employees, filters, query, {"audit": 0, OUTBOX: 0},
                         out=lambda e: employee_out(e, principal))

    @route("GET", f"{API}/employees/<nip>", any_staff=True, response=schemas.EmployeeOut(),
           summary="One employee", tags=TAGS["employees"])
    def get_employee(self, request, principal, nip):
        return employee_out(self._visible_employee(principal, nip), principal)

    @route("PUT", f"{API}/employees/<nip>", roles=ADMINS, body=schemas.EmployeeBody(),
           response=schemas.EmployeeOut(), problems=OTHER_OPDS_KEY,
           summary="Create or replace an employee (a new unit is recorded as a transfer)",
           tags=TAGS["employees"])
    def put_employee(self, request, principal, body, nip):
        try:
            record = schemas.complete_employee(nip, body)
        except ValidationError as exc:
            raise unprocessable(exc.messages) from None
        self._may_write(principal, record["unit"])  # first: says nothing about what exists
        absent = domain.KEPT_EMPLOYEE_FIELDS + (() if "nik" in body else ("nik",))

        def mutate(doc, before):
            if doc is not None:
                self._may_replace_existing(principal, doc["unit"])
            merged, problem = domain.keep_stored({"nik": None, **record}, before, absent)
            check([("nik", problem)] if problem else [])
            return merged

        return employee_out(self._change_employee(principal, nip, mutate), principal)

    @route("POST", f"{API}/employees/<nip>/transfer", roles=ADMINS, body=schemas.TransferBody(),
           response=schemas.EmployeeOut(), summary="Move an employee to another unit",
           tags=TAGS["employees"])
    def transfer_employee(self, request, principal, body, nip):
        def mutate(doc, before):
            self._may_change_existing(principal, doc)
            self._may_write(principal, body["unit"])
            return {**before, "unit": body["unit"], "position": body["position"],
                    "effective_date": body["effective_date"]}

        return employee_out(self._change_employee(principal, nip, mutate), principal)

    @route("POST", f"{API}/employees/<nip>/deactivate", roles=ADMINS,
           body=schemas.DeactivateBody(), response=schemas.EmployeeOut(),
           summary="Retire, transfer out or send on long or unpaid leave",
           tags=TAGS["employees"])
    def deactivate_employee(self, request, principal, body, nip):
        def mutate(doc, before):
            self._may_change_existing(principal, doc)
            record = {**before, "status": body["status"]}
            if body["effective_date"]:
                record["status_date"] = body["effective_date"]
            return record

        return employee_out(self._change_employee(principal, nip, mutate), principal)

    @route("GET", f"{API}/employees/<nip>/supervisors", any_staff=True,
           response=schemas.EmployeeOut(many=True),
           summary="The chain of supervisors of an employee, nearest first",
           tags=TAGS["employees"])
    def supervisors(self, request, principal, nip):
        current = self._visible_employee(principal, nip)
        chain, seen = [], {nip}
        # each view names its supervisor: one read by key per step up (cycles cut)
        while (up := (current.get("view") or {}).get("supervisor")) and up not in seen:
            seen.add(up)
            current = self.db.employees.find_one({"_id": up}, WITHOUT_HISTORY)
            if current is None:
                break
            chain.append(current)
        # the chain leaves the reader's OPD at its top (Sekda, Bupati): names are public there
        return [employee_out(doc, principal, public=True) for doc in chain]

    @route("GET", f"{API}/<collection>/<key>/history", roles=ADMINS,
           response=schemas.AuditOut(many=True), summary="The audit trail of a record",
           tags=["audit"])
    def history(self, request, principal, collection, key):
        if collection not in ("units", "positions", "employees", "acting"):
            raise not_found()
        doc = self.db[collection].find_one({"_id": key}, {"audit": 1, "unit": 1, "code": 1})
        if doc is None or not principal.can_read(doc.get("unit") or doc.get("code")):
            raise not_found()
        return doc.get("audit", [])

    # -- acting officials --------------------------------------------------------------------

    @route("GET", f"{API}/acting", any_staff=True, query=schemas.ActingQuery(),
           response=page_of(schemas.ActingOut()), summary="Acting assignments (Plt/Plh)",
           tags=TAGS["acting"])
    def list_acting(self, request, principal, query):
        filters = [reader_criteria(principal, "unit"),
                   *({name: query[name]} for name in ("position", "unit") if query.get(name))]
        on = query.get("on")
        return find_page(self.db.acting, filters, query, {"audit": 0, OUTBOX: 0},
                         keep=on and (lambda a: domain.acting_covers(a, on)))

    @route("POST", f"{API}/acting", roles=ADMINS, body=schemas.ActingBody(),
           response=schemas.ActingOut(), status=201,
           summary="Assign an acting official (Plt for a vacant post, Plh for an absent head)",
           tags=TAGS["acting"])
    def assign_acting(self, request, principal, body):
        acting_id = uuid.uuid4().hex
        with self._lock(shared=True) as lock:
            built = structure(self.db, lock.epoch)
            position = built.state.positions.get(body["position"])
            if position is None or not _reads(principal, position["unit"]):
                raise unprocessable({"position": ["does not exist"]})
            self._may_write(principal, position["unit"])
            employee = {n: record_of(d, "employees")
                        for n, d in load_employees(self.db, [body["nip"]]).items()}
            state = built.with_employees(employee, load_holders(self.db, [body["position"]]),
                                         set())
            record = {"id": acting_id, "kind": body["kind"], "position": body["position"],
                      "unit": position["unit"], "nip": body["nip"],
                      "start": body["start"].isoformat(), "end": body["end"].isoformat(),
                      "ended_on": None}
            for _ in range(5):
                revision, actings = self._actings(body["position"], wait=lock.lease)
                check(domain.acting_problems(body, state, actings))
                # the narrow lock of "no overlap": the position's list of assignments moves
                # on only from the revision this check read; a loser checks again
                if self.db.positions.update_one(
                        {"_id": body["position"], "acting_rev": revision},
                        {"$push": {"acting": acting_id}, "$inc": {"acting_rev": 1}}
                ).matched_count:
                    self._writer(principal).write([domain.acting_change(record, None, 0)])
                    return 201, self.db.acting.find_one({"_id": acting_id}, {"audit": 0})
        raise conflict("Other acting assignments for this position kept being made meanwhile; "
                       "repeat the request.")

    def _actings(self, position_id, wait=0.0):
        """(revision, assignments) of a position, by the ids its document lists. An id listed
        before its assignment is written belongs to a writer between its two writes: a reader
        leaves it out; a writer (``wait``: the lock lease) waits for it, and one still
        missing then belongs to a writer that died there and is dropped, moving the revision
        on so that no check made meanwhile counts."""
        deadline = time.monotonic() + wait
        while True:
            post = self.db.positions.find_one({"_id": position_id},
                                              {"acting": 1, "acting_rev": 1}) or {}
            listed = post.get("acting") or []
            found = [record_of(a, "acting") for a in by_ids(
                self.db.acting, listed, {"audit": 0, OUTBOX: 0}).values()]
            missing = set(listed) - {a["id"] for a in found}
            if not missing or not wait:
                return post.get("acting_rev"), found
            if time.monotonic() >= deadline:
                self.db.positions.update_one(
                    {"_id": position_id, "acting_rev": post.get("acting_rev")},
                    {"$pullAll": {"acting": sorted(missing)}, "$inc": {"acting_rev": 1}})
                continue
            eventlet.sleep(0.05)

    @route("POST", f"{API}/acting/<acting_id>/end", roles=ADMINS, body=schemas.EndActingBody(),
           response=schemas.ActingOut(), summary="End an acting assignment early",
           tags=TAGS["acting"])
    def end_acting(self, request, principal, body, acting_id):
        with self._lock(shared=True):
            doc = self.db.acting.find_one({"_id": acting_id}, {"audit": 0})
            if doc is None or not _reads(principal, doc["unit"]):
                raise not_found()
            self._may_write(principal, doc["unit"])
            if doc.get("ended_on"):
                raise conflict(f"The assignment already ended on {doc['ended_on']}.")
            ended_on = (body["ended_on"] or self._today()).isoformat()
            if not doc["start"] <= ended_on:
                raise unprocessable({"ended_on": ["before the start"]})
            record = {**record_of(doc, "acting"), "ended_on": min(ended_on, doc["end"])}
            self._writer(principal).write([domain.acting_change(record, doc, doc["version"])])
        return self.db.acting.find_one({"_id": acting_id}, {"audit": 0})

    @timer(interval=600)
    def end_expired_acting(self):
        """Assignments whose end date passed get their ``acting.ended``."""
        today = self._today().isoformat()
        with self._lock(shared=True):
            expired = [a for a in self.db.acting.find({"ended_on": None}, {"audit": 0})
                       if a["end"] < today]
            changes = [domain.acting_change({**record_of(a, "acting"), "ended_on": a["end"]}, a,
                                            a["version"]) for a in expired]
            self._timer_writer().write(changes)

    # -- import, export, snapshot ------------------------------------------------------------

    @route("POST", f"{API}/imports/<kind>", roles=ADMINS, query=schemas.ImportQuery(),
           response=schemas.ImportOut(), max_body=16 * 1024 * 1024,
           summary="Import a CSV file (text/csv) of units, positions or employees",
           description="Layouts in services/directory/README.md. `dry_run=true` checks the file "
                       "and reports every bad row with its line; a real run applies all or "
                       "nothing (a bad row rejects the whole file with 422).",
           tags=TAGS["imports"])
    def import_file(self, request, principal, query, kind):
        if kind not in csvio.KINDS:
            raise not_found()
        try:
            text = request.get_data().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise unprocessable({"_schema": ["the file is not UTF-8 text"]}) from None
        importer = Importer(self.db, self.outbox, self._lock, principal.actor(ADMINS),
                            current_correlation_id(), scope=_write_scope(principal),
                            today=self._today())
        report = importer.run(kind, text, dry_run=query["dry_run"])
        if report["errors"] and not query["dry_run"]:
            raise unprocessable(
                {"rows": [f"line {e.line}: {e.column or 'row'}: {e.reason}"
                          for e in report["errors"]]},
                f"{len(report['errors'])} problems in the file; nothing was imported.")
        return report

    @timer(interval=10)
    def resume_imports(self):
        """Finish an import whose process died midway (its write lock has expired), and the
        re-derivations of single changes whose writer died (their note's lease is over)."""
        Importer(self.db, self.outbox, self._lock, None, None, today=self._today()).resume()
        if self.db.pending.find_one({"until": {"$lt": time.time()}}, {"_id": 1}):
            with self._lock(shared=True) as lock:
                finish_pending(self.db, lock, self._timer_writer(), self._today())

    @timer(interval=3600)
    def purge_import_files(self):
        """Uploaded files hold whole NIKs: kept only as long as the retention says."""
        purge_files(self.db, float(self.config.get("DIRECTORY_IMPORT_FILE_RETENTION_DAYS", 30)))

    @route("GET", f"{API}/exports/<kind>", roles=ADMINS, media_types=("text/csv",),
           summary="Export units, positions or employees as CSV (the import layout)",
           tags=TAGS["imports"])
    def export_file(self, request, principal, kind):
        if kind not in csvio.KINDS:
            raise not_found()
        scope = _write_scope(principal)
        found = self.db[kind].find({}, {"audit": 0, OUTBOX: 0}).sort("_id", 1)
        records = [record_of(d, kind) for d in found
                   if scope is None or in_subtree(d.get("unit") or d["_id"], scope)]
        if kind == "employees" and not principal.has_any(("admin",)):
            records = [{**r, "nik": mask_nik(r["nik"]) if r["nik"] else None} for r in records]
        return Response(csvio.export(kind, records), content_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'})

    @route("POST", f"{API}/snapshot", roles=("admin",), status=202,
           summary="Re-emit every unit, employee and acting assignment as events",
           tags=["events"])
    def snapshot(self, request, principal):
        event_id = request_snapshot(self.config["AMQP_URI"], f"api:{principal.sub}")
        return 202, {"requested": event_id}

    @handles("directory", "directory.snapshot_requested")
    def on_snapshot_requested(self, event):
        count = publish_snapshot(self.db, self.config["AMQP_URI"])
        log.info("snapshot for %s: %d events", event.data["requested_by"], count)

    # -- scoping -----------------------------------------------------------------------------

    def _visible_unit(self, principal, code):
        unit = self.db.units.find_one({"_id": code}, {"audit": 0, OUTBOX: 0})
        if unit is None or not _reads(principal, code):
            raise not_found()
        return unit

    def _visible_employee(self, principal, nip):
        employee = self.db.employees.find_one({"_id": nip}, {"audit": 0, OUTBOX: 0})
        if employee is None or not _reads(principal, employee["unit"]):
            raise not_found()
        return employee

    def _may_change_existing(self, principal, doc):
        """An employee the caller changes: 404 when it does not exist or the caller cannot
        read it, 403 when the caller reads but may not write it."""
        if doc is None or not _reads(principal, doc["unit"]):
            raise not_found()
        self._may_write(principal, doc["unit"])

    def _may_replace_existing(self, principal, unit):
        """A PUT that would replace a record outside the caller's OPD. The record cannot be
        created here, and a PUT cannot pretend otherwise; the answer names nothing of it (not
        its OPD, not that the caller may not read it), and the attempt is logged for the
        admins. A dry-run import says nothing at all (``importer``)."""
        if _reads(principal, unit):
            self._may_write(principal, unit)
            return
        log.warning("%s tried to register a record that belongs to another OPD", principal.sub)
        raise conflict("This key cannot be registered by your OPD. An admin moves records "
                       "between OPDs.")

    def _may_replace(self, principal, collection, key, new_unit):
        """A target unit outside the caller's OPD is 403; an existing record is checked by
        ``_may_replace_existing``."""
        self._may_write(principal, new_unit)  # first: says nothing about what exists
        existing = self.db[collection].find_one({"_id": key}, {"unit": 1})
        if existing is not None:
            self._may_replace_existing(principal, existing.get("unit") or key)

    @staticmethod
    def _may_write(principal, code):
        if not principal.can_write(code):
            raise forbidden("That unit is outside your OPD.")


def _reads(principal, code):
    """Readers outside the Pemda-wide roles see their own OPD only."""
    scope = reader_opd(principal)
    return scope is None or in_subtree(code, scope)


def _write_scope(principal):
    if principal.is_pemda_wide:
        return None
    if not principal.opd:
        raise forbidden("Your token names no OPD.")
    return principal.opd


def _valid_code(code):
    if not re.fullmatch(UNIT_CODE, code):
        raise unprocessable({"code": [
            "dotted: 4 digits for the Pemda, then 2 digits per level (3510.01.02)"]})


def _root_code(db):
    root = next(iter(db.units.find({"parent": None}, {"_id": 1}).sort("_id", 1).limit(1)), None)
    if root is None:
        raise not_found("The directory is empty.")
    return root["_id"]


def _tree_node(state, children, code):
    unit = state.units[code]
    head = state.head_position(code)
    holders = state.holders(head) if head else []
    return {"code": code, "name": unit["name"], "kind": unit["kind"], "active": unit["active"],
            "head": holders[0] if holders else None,
            "children": [_tree_node(state, children, c) for c in children.get(code, [])]}


SERVICE = DirectoryService
