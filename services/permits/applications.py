"""Applications: made by a citizen (``pemohon``) for themselves or by a counter officer
(``petugas`` of the type's OPD) on a citizen's behalf; edited and completed with documents
while a draft or returned; read with their SLA clock and what the caller may do next.

- **Create** (``POST /applications``): the application embeds the type's standard in force
  (its version), so a later change of the standard never moves its SLA or checklist. The
  ``Idempotency-Key`` header makes a retry safe: the id is derived from the caller and the
  key, a repeat answers the first application (200), a concurrent repeat loses the insert and
  answers the winner's, and the same key with another body is refused (422). A pemohon's NIK
  and name come from the token when it has them; the NIK must be a NIK
  (``pamong.identifiers.parse_nik``, 422), a birth date that disagrees with it is kept as a
  warning (``nik_warnings``), never a refusal; the phone is stored as E.164; the preferred
  channel needs its contact (a phone for WhatsApp/SMS, an address for email); a type that
  ``needs_business`` needs the business and its 13-digit NIB.
- **Documents** (``POST /applications/<id>/documents/<requirement>``): the raw bytes, judged
  by their content against the requirement's accepted types (415 names what they are) and its
  ``max_bytes`` (413), stored by ``pamong.files`` in ``fs.files``/``fs.chunks`` with their
  SHA-256, listed on the application by a compare-and-set write that replaces the same
  requirement's earlier file (a concurrent upload of another requirement is retried, not
  refused). Download: ``GET /applications/<id>/documents/<requirement>`` (the file listed
  now; its ``ETag`` is its SHA-256).
- **Lists** (``GET /applications``): a pemohon's own from ``owners``, an OPD's work list by
  state from ``queues``, both in chunks of at most ``chunks.CHUNK`` ids (``chunks.py``: a
  work list by state, month, day and place; a filing writes a few small documents, never one
  that grows with the data); both are kept by this service's handler of its own
  ``permit.status_changed``, which files the application under the state it is in when the
  handler reads it (events out of order converge; a claim per entry makes a redelivery or a
  concurrent filing change nothing). A list reads the applications by id and drops (and
  takes out) those whose state moved on meanwhile.
"""

import hashlib
import json
import uuid
from datetime import date

import pymongo

from pamong import files
from pamong.events.consumer import handles
from pamong.events.outbox import OUTBOX
from pamong.files import FileStore
from pamong.identifiers import nik_matches, parse_nik
from pamong.privacy import normalize_phone
from pamong.storage import by_ids, db_now
from pamong.web import bad_request, forbidden, not_found, route, unprocessable
from pamong.web.idempotency import idempotency_key
from pamong.web.pagination import decode_cursor, encode_cursor, page_of
from pamong.web.route import read_body
from services.permits import access, chunks, domain
from services.permits.access import API, APPLICANTS, READERS, STAFF
from services.permits.schemas.applications import (
    ApplicationBody,
    ApplicationItem,
    ApplicationOut,
    ApplicationPatch,
    ApplicationQuery,
    DocumentQuery,
)
from services.permits.schemas.types import MAX_DOCUMENT_BYTES
from services.permits.store import (
    APPLICATIONS,
    OWNERS,
    QUEUES,
    TYPES,
    holidays_for,
    local_date,
    local_today,
    public_url,
)

TAGS = ["applications"]
KEY_IDS = uuid.UUID("a4f0c3e1-5b27-4c9a-8d16-2e7f9b0c4d58")
FILE_IDS = uuid.UUID("3d9b6e20-71c4-4f8a-b5e2-c0a9d84f1e37")
EDITABLE = (domain.DRAFT, domain.RETURNED)
QUEUED = domain.OPEN + (domain.ISSUED,)  # an OPD's work lists (issued: to be collected)
UPLOAD_CEILING = MAX_DOCUMENT_BYTES + 64 * 1024  # the route's limit; a requirement's below
CAS_TRIES = 5  # attempts of a document's listing against concurrent uploads
NO_FIELDS = (OUTBOX, "_applied", "_applied_n")


# -- pure rules -------------------------------------------------------------------------------

def checked_applicant(given, *, today=None):
    """The applicant block as stored, and its NIK warnings; ValueErrors as ``{field: [msg]}``
    (raised as ``unprocessable`` by the caller). Pure."""
    errors, applicant = {}, dict(given)
    try:
        nik = parse_nik(given.get("nik") or "")
    except ValueError as exc:
        nik = None
        errors["applicant.nik"] = [str(exc)]
    if nik is not None:
        applicant["nik"] = nik.number
    if not given.get("name"):
        errors["applicant.name"] = ["the applicant's name is required"]
    if given.get("phone"):
        try:
            applicant["phone"] = normalize_phone(given["phone"])
        except ValueError as exc:
            errors["applicant.phone"] = [str(exc)]
    else:
        applicant["phone"] = None
    channel = given.get("channel", "whatsapp")
    if channel in ("whatsapp", "sms") and not given.get("phone"):
        errors.setdefault("applicant.phone", []).append(
            f"a phone number is needed to be told by {channel}")
    if channel == "email" and not given.get("email"):
        errors["applicant.email"] = ["an email address is needed to be told by email"]
    birth = given.get("birth_date")
    if isinstance(birth, date):
        applicant["birth_date"] = birth.isoformat()
    if birth is not None and today is not None and birth > today:
        errors["applicant.birth_date"] = ["the birth date is in the future"]
    warnings = nik_matches(nik, birth_date=birth) if nik is not None else []
    return applicant, warnings, errors


def checked_business(standard, business):
    """``{field: [msg]}`` problems of the business block for this standard. Pure."""
    if standard.get("needs_business") and not business:
        return {"business": [f"a {standard['name']} needs the business and its NIB"]}
    if business and not domain.NIB.match(business.get("nib", "")):
        return {"business.nib": ["an NIB is 13 digits"]}
    return {}


def body_digest(body):
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def application_clock(application, today, holidays):
    """``{sla_days, used, left, stages, running, due_on}`` of an application today. Pure."""
    standard = application["standard"]
    c = domain.clock_of(application, today, holidays)
    due_on = (domain.add_working_days(today, c.left, holidays)
              if c.running and c.left >= 0 else None)
    return {"sla_days": standard["sla_days"], "used": c.used, "left": c.left,
            "stages": c.stages, "running": c.running, "due_on": due_on}


def status_changed_data(application, from_state, to_state, action, at, working_days_used=0,
                        submitted_on=None):
    """The data of ``permit.status_changed`` for a transition of ``application``
    (``submitted_on``: the local day it was first submitted). Pure."""
    return {"id": application["_id"],
            "registration_number": application.get("registration_number"),
            "type": application["type"], "type_name": application["standard"]["name"],
            "opd": application["opd"], "from_state": from_state, "to_state": to_state,
            "action": action, "at": at,
            "submitted_on": submitted_on,
            "working_days_used": working_days_used,
            "sla_days": application["standard"]["sla_days"]}


def _hidden(party, principal):
    """A staff member's identity is not shown to a citizen (their role is)."""
    if not party or principal is None or not principal.has_any(("pemohon",)) \
            or principal.has_any(STAFF) or party.get("sub") == principal.sub:
        return party
    return {"sub": None, "role": party.get("role")}


def view(application, principal, clock, actions, public_url):
    """What ``principal`` reads of an application they may see (``public_url``: where the
    permit's QR code points). Pure."""
    citizen = principal.has_any(("pemohon",)) and not principal.has_any(STAFF) \
        and not principal.is_pemda_wide
    timeline = [{**entry, "label": domain.LABELS.get(entry["to"], entry["to"]),
                 "by": _hidden(entry.get("by"), principal)}
                for entry in application["timeline"]]
    out = {**application, "id": application["_id"],
           "label": domain.LABELS[application["state"]],
           "type_name": application["standard"]["name"], "timeline": timeline,
           "documents": [{**d, "uploaded_by": _hidden(d.get("uploaded_by"), principal)}
                         for d in application.get("documents", ())],
           "missing_documents": domain.missing_documents(application),
           "entered_by": _hidden(application["entered_by"], principal),
           "clock": clock, "actions": actions}
    if (permit := application.get("permit")) and permit.get("code"):
        out["permit"] = {**permit, "verification_url": domain.verification_url(
            public_url, permit["code"])}
    if citizen:
        out["officer"] = None
        out["recommendations"] = [{**r, "by": None}
                                  for r in application.get("recommendations", ())]
        if application.get("site_visit"):
            out["site_visit"] = {**application["site_visit"], "officer": None}
    return out


def item(application, clock):
    return {**application, "id": application["_id"],
            "label": domain.LABELS[application["state"]],
            "type_name": application["standard"]["name"],
            "applicant_name": application["applicant"]["name"],
            "days_used": clock["used"], "days_left": clock["left"]}


# -- the endpoints ----------------------------------------------------------------------------

class ApplicationEndpoints:
    """Mixed into the permits service."""

    def _application(self, principal, application_id):
        """The application when ``principal`` may see it; else 404 (as for none)."""
        application = self.db[APPLICATIONS].find_one({"_id": application_id},
                                                      dict.fromkeys(NO_FIELDS, 0))
        if application is None or not access.may_see(application, principal):
            raise not_found()
        return application

    def _clock(self, application, today=None):
        today = today or local_today(self.config)
        return application_clock(application, today,
                                 holidays_for(self.db, self.cache, application, today))

    def _view(self, application, principal):
        return view(application, principal, self._clock(application),
                    domain.actions_for(application, access.parties(application, principal)),
                    public_url(self.config))

    def _as_applicant(self, principal, application):
        if "applicant" not in access.parties(application, principal):
            raise forbidden("Only the applicant (or a counter officer of the responsible "
                            "OPD) changes the application.")
        if application["state"] not in EDITABLE:
            raise access.conflict_of(application, f"A {application['state']} application cannot be "
                                           "changed: only a draft or a returned one.")

    # -- create ----------------------------------------------------------------------------

    def _entered_as(self, principal, standard):
        """``("pemohon"|"petugas")`` the caller applies as for this type."""
        if principal.has_any(("petugas",)) and principal.can_read(standard["opd"]):
            return "petugas"
        if principal.has_any(("pemohon",)):
            return "pemohon"
        raise forbidden(f"A petugas enters applications of their own OPD's types; "
                        f"{standard['code']} is of {standard['opd']}.")

    def _applicant_given(self, principal, role, given):
        """A pemohon applies for themselves: the token's NIK and name when it has them."""
        given = dict(given)
        if role != "pemohon":
            return given
        if principal.nik:
            if given.get("nik") and given["nik"].strip() != principal.nik:
                raise unprocessable({"applicant.nik": [
                    "a pemohon applies for themselves: the NIK is your account's (apply at "
                    "a counter for someone else)"]})
            given["nik"] = principal.nik
        if principal.name:
            given["name"] = principal.name
        return given

    @route("POST", f"{API}/applications", roles=APPLICANTS, body=ApplicationBody(),
           response=ApplicationOut(), status=201, replay_status=200, tags=TAGS,
           summary="Start an application (a pemohon for themselves, a petugas at the "
                   "counter); Idempotency-Key header: a retry answers the first (200)",
           description="422 for a NIK that is not one, a phone that is not a mobile number, "
                       "a missing NIB where the type needs it, or an Idempotency-Key reused "
                       "with another body. A birth date that disagrees with the NIK is a "
                       "warning (nik_warnings).")
    def create_application(self, request, principal, body):
        key = idempotency_key(request)
        application_id = (uuid.uuid5(KEY_IDS, f"{principal.sub}:{key}") if key
                  else uuid.uuid4()).hex
        digest = body_digest(body)
        if key and (first := self.db[APPLICATIONS].find_one(
                {"_id": application_id}, dict.fromkeys(NO_FIELDS, 0))):
            return self._repeat(principal, first, digest)
        standard = self.db[TYPES].find_one({"_id": body["type"]})
        if standard is None:
            raise unprocessable({"type": [f"there is no permit type {body['type']}"]})
        if not standard.get("active", True):
            raise unprocessable({"type": [f"{standard['name']} takes no new applications"]})
        role = self._entered_as(principal, standard)
        today = local_today(self.config)
        applicant, warnings, errors = checked_applicant(
            self._applicant_given(principal, role, body["applicant"]), today=today)
        errors.update(checked_business(standard, body["business"]))
        if errors:
            raise unprocessable(errors)
        at = db_now()
        standard = {**standard, "code": standard["_id"]}
        application = {
            "_id": application_id, "version": 1, "state": domain.DRAFT,
            "owner": principal.sub if role == "pemohon" else None,
            "entered_by": {"sub": principal.sub, "role": role}, "opd": standard["opd"],
            "type": standard["code"], "standard": standard, "applicant": applicant,
            "business": body["business"], "nik_warnings": warnings, "documents": [],
            "timeline": [{"action": "create", "from": None, "to": domain.DRAFT, "at": at,
                          "on": local_date(self.config, at).isoformat(),
                          "by": {"sub": principal.sub, "role": role}, "note": None}],
            "created_at": at, "updated_at": at, "submitted_at": None,
            "registration_number": None, "officer": None, "missing_items": None,
            "reason": None, "recommendations": [], "site_visit": None, "bill": None,
            "permit": None, "sla": {"alerts": [], "next_check": None}, "skm": None,
            "changes": [], "idempotency": {"key": key, "body_sha256": digest} if key else None,
        }
        event = self.outbox.event("permit.status_changed", status_changed_data(
            application, None, domain.DRAFT, "create", at), opd=standard["opd"])
        try:
            self.outbox.insert(APPLICATIONS, application, [event])
        except pymongo.errors.DuplicateKeyError:  # a concurrent repeat with the same key
            first = self.db[APPLICATIONS].find_one({"_id": application_id},
                                                   dict.fromkeys(NO_FIELDS, 0))
            return self._repeat(principal, first, digest)
        return 201, self._view(application, principal), {
            "Location": f"{API}/applications/{application_id}"}

    def _repeat(self, principal, first, digest):
        if (first.get("idempotency") or {}).get("body_sha256") != digest:
            raise unprocessable({"Idempotency-Key": [
                "this key was used for another application body: send a new key"]},
                detail="The Idempotency-Key was used before with another body.")
        return 200, self._view(first, principal)

    # -- read ------------------------------------------------------------------------------

    @route("GET", f"{API}/applications/<application_id>", roles=READERS, response=ApplicationOut(),
           tags=TAGS, summary="An application with its timeline, SLA clock and the actions "
                              "the caller may take (404 for whoever may not see it)")
    def get_application(self, request, principal, application_id):
        return self._view(self._application(principal, application_id), principal)

    # -- edit ------------------------------------------------------------------------------

    @route("PATCH", f"{API}/applications/<application_id>", roles=APPLICANTS,
           body=ApplicationPatch(), response=ApplicationOut(), tags=TAGS,
           summary="Correct a draft or returned application's data (its applicant or a "
                   "counter officer; version required, 409 when it moved on)")
    def patch_application(self, request, principal, application_id, body):
        application = self._application(principal, application_id)
        self._as_applicant(principal, application)
        if body["version"] != application["version"]:
            raise access.conflict_of(application, f"The application is at version "
                                           f"{application['version']}: read it again.")
        changed = dict(body.get("applicant", {}))
        own = application["owner"] is not None and principal.sub == application["owner"]
        if own and principal.nik and changed.get("nik", principal.nik) != principal.nik:
            raise unprocessable({"applicant.nik": ["the NIK is your account's"]})
        given = {**application["applicant"], **changed}
        if isinstance(given.get("birth_date"), str):
            given["birth_date"] = date.fromisoformat(given["birth_date"])
        today = local_today(self.config)
        applicant, warnings, errors = checked_applicant(given, today=today)
        business = body["business"] if "business" in body else application.get("business")
        errors.update(checked_business(application["standard"], business))
        if errors:
            raise unprocessable(errors)
        at = db_now()
        fields = sorted([*(f"applicant.{k}" for k in changed), *(
            ["business"] if "business" in body else [])])
        written = self.db[APPLICATIONS].update_one(
            {"_id": application_id, "version": application["version"]},
            {"$set": {"applicant": applicant, "business": business, "nik_warnings": warnings,
                      "updated_at": at},
             "$inc": {"version": 1},
             "$push": {"changes": {"at": at, "by": {"sub": principal.sub,
                                                    "role": self._role_of(principal)},
                                   "fields": fields}}})
        if not written.matched_count:
            raise access.conflict_of(self._application(principal, application_id),
                              "The application changed meanwhile: read it again.")
        return self._view(self._application(principal, application_id), principal)

    @staticmethod
    def _role_of(principal):
        return next((r for r in ("pemohon", "petugas") if r in principal.roles), None)

    # -- documents -------------------------------------------------------------------------

    def _files(self):
        return FileStore(self.db)

    @route("POST", f"{API}/applications/<application_id>/documents/<requirement>", roles=APPLICANTS,
           query=DocumentQuery(), response=ApplicationOut(), status=201,
           max_body=UPLOAD_CEILING, tags=TAGS,
           summary="Upload the document of a requirement (the raw body; its type is judged "
                   "by its content); replaces that requirement's earlier file",
           description="415 names the detected type when the requirement does not accept "
                       "it; 413 above the requirement's max_bytes. The same file again "
                       "answers the application (200).")
    def upload_document(self, request, principal, application_id, requirement, query):
        application = self._application(principal, application_id)
        self._as_applicant(principal, application)
        wanted = next((r for r in application["standard"]["requirements"]
                       if r["key"] == requirement), None)
        if wanted is None:
            raise not_found(f"{application['standard']['name']} has no requirement "
                            f"{requirement!r}; its requirements: " + ", ".join(
                                r["key"] for r in application["standard"]["requirements"]))
        data = read_body(request, wanted["max_bytes"])
        if not data:
            raise bad_request("The request body is empty: send the file's bytes.")
        kind = files.refuse_type(data, wanted["types"])
        at = db_now()
        by = {"sub": principal.sub, "role": self._role_of(principal)}
        file_id = files.content_id(FILE_IDS, f"{application_id}:{requirement}",
                                   files.sha256_of(data))
        head = self._files().put(file_id, data, filename=query["name"] or requirement, at=at,
                                 content_type=kind, metadata={
                                     "application": application_id, "requirement": requirement,
                                     "uploaded_by": by})
        entry = {"requirement": requirement, "file_id": head["_id"],
                 "name": head["filename"], "content_type": head["contentType"],
                 "size": head["length"], "sha256": head["sha256"], "uploaded_at": at,
                 "uploaded_by": by}
        for _ in range(CAS_TRIES):
            listed = next((d for d in application["documents"]
                           if d["requirement"] == requirement), None)
            if listed is not None and listed["file_id"] == entry["file_id"]:
                return 200, self._view(application, principal)  # a repeat
            documents = [d for d in application["documents"]
                         if d["requirement"] != requirement] + [entry]
            written = self.db[APPLICATIONS].update_one(
                {"_id": application_id, "version": application["version"],
                 "state": {"$in": list(EDITABLE)}},
                {"$set": {"documents": documents, "updated_at": at}, "$inc": {"version": 1}})
            if written.matched_count:
                return self._view(self._application(principal, application_id), principal)
            application = self._application(principal, application_id)  # another upload got there
            self._as_applicant(principal, application)
        raise access.conflict_of(application, "The application keeps changing: try again.")

    @route("GET", f"{API}/applications/<application_id>/documents/<requirement>",
           roles=READERS, tags=TAGS,
           summary="Download the document of a requirement (whoever may see the application)")
    def download_document(self, request, principal, application_id, requirement):
        application = self._application(principal, application_id)
        listed = next((d for d in application.get("documents", ())
                       if d["requirement"] == requirement), None)
        if listed is None:
            raise not_found(f"No document for {requirement!r} on this application.")
        store = self._files()
        head = store.head(listed["file_id"])
        if head is None:
            raise not_found()
        return files.download(head, store.read(head))

    # -- lists -----------------------------------------------------------------------------

    @route("GET", f"{API}/applications", roles=READERS, query=ApplicationQuery(),
           response=page_of(ApplicationItem()), tags=TAGS,
           problems={404: "The OPD asked for is outside the caller's"},
           summary="A pemohon's own applications (newest first), or an OPD's work list "
                   "(oldest first; ?state=, default every open state)")
    def list_applications(self, request, principal, query):
        citizen = principal.has_any(("pemohon",)) and not principal.has_any(STAFF) \
            and not principal.is_pemda_wide
        if citizen:
            ids = list(reversed(chunks.owned_ids(self.db[OWNERS], by_ids, principal.sub)))
            keys = None
        else:
            opd = self._list_opd(principal, query)
            states = [query["state"]] if query["state"] else list(QUEUED)
            if query["state"] and query["state"] not in QUEUED:
                raise unprocessable({"state": [
                    "work lists hold the open states and issued: " + ", ".join(QUEUED)]})
            order, known = chunks.queue_chunks(self.db[QUEUES], by_ids, opd, states)
            docs = {**by_ids(self.db[QUEUES], [k for k in order if k not in known]), **known}
            ids, keys = [], {}
            for key in order:
                for i in docs.get(key, {}).get("ids", ()):
                    if i not in keys:  # a file listed twice (a re-entry) shows once
                        keys[i] = key
                        ids.append(i)
        return self._page(principal, ids, query, keys)

    def _list_opd(self, principal, query):
        if principal.is_pemda_wide:
            if not query["opd"]:
                raise unprocessable({"opd": ["name the OPD whose work list to read"]})
            return query["opd"]
        if not principal.has_any(STAFF) or not principal.opd:
            raise forbidden()
        own = principal.read_root()
        if query["opd"] and query["opd"] != own:
            raise not_found()
        return own

    def _page(self, principal, ids, query, keys):
        """One page of ``ids`` (in list order) after the cursor, read by id; for a work list
        (``keys``: id -> the queue chunk it was read from) ids whose application is no longer
        in that state are skipped (and pulled from the chunk: a stale entry left by events
        handled out of order)."""
        start = 0
        if after := decode_cursor(query["cursor"]):
            start = ids.index(after["_id"]) + 1 if after["_id"] in ids else after.get("i", 0)
        today = local_today(self.config)
        wanted_state = query["state"]
        found, position = [], start
        while len(found) <= query["limit"] and position < len(ids):
            chunk = ids[position:position + query["limit"] + 1]
            docs = by_ids(self.db[APPLICATIONS], chunk, dict.fromkeys(
                (*NO_FIELDS, "documents", "changes"), 0))
            for n, application_id in enumerate(chunk):
                application = docs.get(application_id)
                if application is None or not access.may_see(application, principal):
                    continue
                if keys is not None and not keys[application_id].startswith(
                        queue_index(application["opd"], application["state"]) + ":"):
                    self._take_out(keys[application_id], application)
                    continue
                if wanted_state and application["state"] != wanted_state:
                    continue
                found.append((position + n, application))
                if len(found) > query["limit"]:
                    break
            position += len(chunk)
        more = len(found) > query["limit"]
        found = found[:query["limit"]]
        items = [item(app, self._clock(app, today)) for _, app in found]
        cursor = encode_cursor({"_id": found[-1][1]["_id"], "i": found[-1][0]}) \
            if more and found else None
        return {"items": items, "next_cursor": cursor}

    def _take_out(self, key, application):
        """A stale entry a list met (its file moved on): out of the chunk it was read from,
        and its claim settled."""
        self.db[QUEUES].update_one({"_id": key}, {"$pull": {"ids": application["_id"]}})
        opd, state = chunks.queue_of_chunk(key)
        chunks.unfile_queued(self.db[QUEUES], opd, state, application,
                             chunks.entries_into(application, state))

    # -- the lists' keeper -------------------------------------------------------------------

    @handles("permits", "permit.status_changed")
    def keep_application_lists(self, event):
        """File the application in its owner's list (at its creation's event) and, when the
        event led to the state it is in now (read by id: events handled out of order
        converge), in its OPD's work list of that state; take it out of the lists of the
        event's states that it left (and of earlier entries into the state it is in). Every
        document written is small (``chunks.py``); a redelivery or a concurrent filing changes
        nothing."""
        data = event.data
        application = self.db[APPLICATIONS].find_one(
            {"_id": data["id"]},
            {"owner": 1, "state": 1, "opd": 1, "timeline.to": 1, "timeline.on": 1})
        if application is None:
            return
        if application.get("owner") and data["from_state"] is None:
            chunks.file_owned(self.db[OWNERS], application["owner"], data["id"])
        current, opd = application["state"], application["opd"]
        for state in {data["from_state"], data["to_state"], current} - {None}:
            if state in QUEUED:
                entries = chunks.entries_into(application, state)
                chunks.unfile_queued(self.db[QUEUES], opd, state, application,
                                     entries[:-1] if state == current else entries)
        if current in QUEUED and data["to_state"] == current:  # an older event: the one
            chunks.file_queued(self.db[QUEUES], opd, current, application)  # that led here


queue_index = chunks.queue_index
