"""Reference data: document kinds, classification codes with their retention (seeded, editable
by ``admin``, importable from CSV), and each unit's numbering template (``admin``, or an
``opd_admin`` for its own subtree), plus the register of the numbers a counter handed out.

The seeds are written at start-up only where absent (``$setOnInsert``), so an edit is never
overwritten by a restart, and two replicas starting together write each once.
"""

import csv
import io
from datetime import UTC, date, datetime

import pymongo
from nameko.extensions import DependencyProvider

from pamong.storage import mongo_of
from pamong.web import forbidden, not_found, route, unprocessable
from services.letters import domain, numbering
from services.letters.access import API, DRAFTERS
from services.letters.classifications import SEED as CLASSIFICATION_SEED
from services.letters.schemas import (
    ClassificationBody,
    ClassificationList,
    ClassificationOut,
    ClassificationQuery,
    ImportOut,
    KindBody,
    KindList,
    KindOut,
    NumberingBody,
    NumberingOut,
    RegisterOut,
    RegisterQuery,
)
from services.letters.store import CLASSIFICATIONS, KINDS, NUMBERING

TAGS = ["reference"]
READERS = DRAFTERS + ("admin", "service")
CSV_DISPOSITIONS = {"musnah": "destroy", "dinilai kembali": "review", "permanen": "permanent",
                    "destroy": "destroy", "review": "review", "permanent": "permanent"}


class ReferenceSeed(DependencyProvider):
    """Writes the default kinds and classification subset where absent when the service
    starts."""

    def start(self):
        db = mongo_of(self.container, "ReferenceSeed").db
        kinds = [pymongo.UpdateOne({"_id": code}, {"$setOnInsert": {
            "name": name, "group": group, "heading": heading, "active": True}}, upsert=True)
            for code, (name, group, heading) in domain.KINDS.items()]
        codes = [pymongo.UpdateOne({"_id": code}, {"$setOnInsert": classification_doc(
            code, name, retention)}, upsert=True)
            for code, name, retention in CLASSIFICATION_SEED]
        for collection, writes in ((KINDS, kinds), (CLASSIFICATIONS, codes)):
            try:
                db[collection].bulk_write(writes, ordered=False)
            except pymongo.errors.BulkWriteError as exc:  # a replica starting alongside
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise


def classification_doc(code, name, retention):
    return {"name": name, "parent": domain.classification_parent(code), "retention": retention}


def classification_out(db, doc):
    return {**doc, "code": doc["_id"], "effective_retention": effective_retention(db, doc)}


def effective_retention(db, doc):
    """The classification's retention, else its nearest ancestor's (``_id`` reads)."""
    if doc.get("retention"):
        return doc["retention"]
    chain = domain.classification_chain(doc["_id"])[1:]
    found = {d["_id"]: d for d in db[CLASSIFICATIONS].find({"_id": {"$in": chain}})}
    return next((found[c]["retention"] for c in chain if found.get(c, {}).get("retention")),
                None)


def parse_classifications(text):
    """``[(code, name, retention)]`` from a CSV with the header ``kode,nama,aktif,inaktif,
    keterangan`` (retention columns may be empty: inherited); ``{line: [messages]}`` of the
    bad rows."""
    rows, errors = [], {}
    reader = csv.DictReader(io.StringIO(text))
    missing = {"kode", "nama"} - set(reader.fieldnames or ())
    if missing:
        return [], {"header": [f"missing column(s) {', '.join(sorted(missing))}; expected "
                               "kode,nama,aktif,inaktif,keterangan"]}
    for line, row in enumerate(reader, start=2):
        code, name = (row.get("kode") or "").strip(), (row.get("nama") or "").strip()
        problems = []
        if not domain.CLASSIFICATION_CODE.match(code):
            problems.append(f"kode {code!r} is not a dotted classification code")
        if not 2 <= len(name) <= 200:
            problems.append("nama must be 2-200 characters")
        retention = None
        active, inactive = (row.get("aktif") or "").strip(), (row.get("inaktif") or "").strip()
        final = (row.get("keterangan") or "").strip().lower()
        if active or inactive or final:
            if not (active.isdigit() and inactive.isdigit() and final in CSV_DISPOSITIONS):
                problems.append("aktif and inaktif are whole years and keterangan is musnah, "
                                "dinilai kembali or permanen (or all three empty)")
            else:
                retention = {"active_years": int(active), "inactive_years": int(inactive),
                             "disposition": CSV_DISPOSITIONS[final]}
        if problems:
            errors[str(line)] = problems
        else:
            rows.append((code, name, retention))
    return rows, errors


class ReferenceEndpoints:
    """Mixed into the letters service (needs ``db`` and ``cache``)."""

    @route("GET", f"{API}/kinds", roles=READERS, response=KindList(), tags=TAGS,
           summary="Document kinds")
    def list_kinds(self, request, principal):
        return {"items": [{**d, "code": d["_id"]} for d in self.db[KINDS].find().sort("_id")]}

    @route("PUT", f"{API}/kinds/<code>", roles=("admin",), body=KindBody(), response=KindOut(),
           tags=TAGS, summary="Add or change a document kind")
    def put_kind(self, request, principal, body, code):
        if not domain.KIND_CODE.match(code):
            raise unprocessable({"code": ["lower-case letters, digits and _ (2-40)"]})
        self.db[KINDS].update_one({"_id": code}, {"$set": body}, upsert=True)
        self.cache.clear()
        return {**body, "code": code}

    @route("GET", f"{API}/classifications", roles=READERS, query=ClassificationQuery(),
           response=ClassificationList(), tags=TAGS,
           summary="Classification codes: the top level, or the children of `under`")
    def list_classifications(self, request, principal, query):
        docs = self.db[CLASSIFICATIONS].find({"parent": query["under"]}).sort("_id")
        return {"items": [classification_out(self.db, d) for d in docs]}

    @route("GET", f"{API}/classifications/<code>", roles=READERS,
           response=ClassificationOut(), tags=TAGS, summary="One classification code")
    def get_classification(self, request, principal, code):
        doc = self.db[CLASSIFICATIONS].find_one({"_id": code})
        if doc is None:
            raise not_found()
        return classification_out(self.db, doc)

    @route("PUT", f"{API}/classifications/<code>", roles=("admin",),
           body=ClassificationBody(), response=ClassificationOut(), tags=TAGS,
           summary="Add or change a classification code (its parent must exist)")
    def put_classification(self, request, principal, body, code):
        if not domain.CLASSIFICATION_CODE.match(code):
            raise unprocessable({"code": ["a dotted classification code, e.g. 000.8.3.3"]})
        parent = domain.classification_parent(code)
        if parent and self.db[CLASSIFICATIONS].find_one({"_id": parent}) is None:
            raise unprocessable({"code": [f"its parent {parent} does not exist"]})
        doc = classification_doc(code, body["name"], body["retention"])
        self.db[CLASSIFICATIONS].update_one({"_id": code}, {"$set": doc}, upsert=True)
        return classification_out(self.db, {**doc, "_id": code})

    @route("POST", f"{API}/classifications/import", roles=("admin",), response=ImportOut(),
           max_body=4 * 1024 * 1024, tags=TAGS,
           problems={422: "The file is not UTF-8 CSV or has bad rows (`errors` by line)"},
           summary="Import classification codes from CSV (kode,nama,aktif,inaktif,keterangan)",
           description="All or nothing: a bad row rejects the file with 422 naming its line. "
                       "A code whose parent is neither stored nor in the file is a bad row.")
    def import_classifications(self, request, principal):
        try:
            text = request.get_data().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise unprocessable({"file": ["not UTF-8 text"]}) from None
        rows, errors = parse_classifications(text)
        codes = {code for code, _, _ in rows}
        stored = {d["_id"]: d for d in self.db[CLASSIFICATIONS].find(
            {"_id": {"$in": sorted({domain.classification_parent(c) for c in codes} | codes
                                   - {None})}})}
        for line, (code, _, _) in enumerate(rows, start=2):
            parent = domain.classification_parent(code)
            if parent and parent not in codes and parent not in stored:
                errors.setdefault(str(line), []).append(f"parent {parent} is unknown")
        if errors:
            raise unprocessable(errors, "The file has bad rows; nothing was imported.")
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        writes = []
        for code, name, retention in sorted(rows):  # parents first
            doc = classification_doc(code, name, retention)
            old = stored.get(code)
            if old is None:
                counts["created"] += 1
            elif all(old.get(k) == v for k, v in doc.items()):
                counts["unchanged"] += 1
                continue
            else:
                counts["updated"] += 1
            writes.append(pymongo.UpdateOne({"_id": code}, {"$set": doc}, upsert=True))
        if writes:
            self.db[CLASSIFICATIONS].bulk_write(writes, ordered=True)
        return counts

    @route("GET", f"{API}/numbering/<unit>", roles=READERS, response=NumberingOut(),
           tags=TAGS, summary="The numbering template a unit uses (its own or inherited)")
    def get_numbering(self, request, principal, unit):
        configs = numbering.configs_for(self.db, self.cache, unit)
        for code in numbering.unit_chain(unit):
            if code in configs:
                return numbering_out(code, configs[code])
        raise not_found("No unit from this one up to the Pemda has a numbering template.")

    @route("PUT", f"{API}/numbering/<unit>", roles=("admin", "opd_admin"),
           body=NumberingBody(), response=NumberingOut(), tags=TAGS,
           summary="Set a unit's numbering template (inherited by the units below it)",
           description="A change applies to letters signed from then on; numbers already "
                       "given are never re-rendered.")
    def put_numbering(self, request, principal, body, unit):
        if not principal.can_write(unit):
            raise forbidden("You may set the numbering of your own unit and those below it.")
        if errors := numbering.check_config(body):
            raise unprocessable(errors)
        doc = {**body, "updated_by": principal.sub, "updated_at": datetime.now(UTC)}
        self.db[NUMBERING].update_one({"_id": unit}, {"$set": doc}, upsert=True)
        self.cache.clear()
        return numbering_out(unit, doc)

    @route("GET", f"{API}/numbering/register", roles=("admin", "opd_admin", "pimpinan"),
           query=RegisterQuery(), response=RegisterOut(), tags=TAGS,
           problems={404: "No such counter, or not in the caller's OPD"},
           summary="Every number a counter handed out, from `first` on: used or cancelled")
    def number_register(self, request, principal, query):
        unit = query["counter"].split(":", 1)[0]
        if not principal.can_read(unit):
            raise not_found()
        doc, claims = numbering.register(self.db, query["counter"], query["first"],
                                         query["limit"])
        if doc is None:
            raise not_found()
        return {"counter": query["counter"], "last": doc["next"],
                "checked": doc.get("checked", 0), "items": claims}


def numbering_out(unit, doc):
    example = domain.render_number(
        (doc.get("kinds") or {}).get("surat_dinas") or doc["template"], seq=7,
        day=date.today(), unit_code=doc["unit_code"], classification="000.1", security="B",
        kind="surat_dinas")
    return {**doc, "unit": unit, "example": example}
