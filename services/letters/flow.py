"""Outgoing letters from draft to signature: the drafter writes and submits, verifiers give
paraf in order (or return it with a note), the signer signs and the letter gets its number.

Each step reads the letter by ``_id`` and writes it once, compare-and-set on ``version``, with
its timeline entry and its event in the same write (outbox): a step taken twice at once (two
replicas, a double click) lands once and the other sees 409 naming the state it found. A
repeated step that already landed for the same person (a retried sign) answers the letter as
it is. Steps taken at the same moment (a signing peak) share one update request
(``OutboxWriter.update_grouped``), each still its own compare-and-set. Signing hands out the
number first (``numbering.allocate``); a signer that then loses
the race on the letter cancels its number on record, and a crash in between is settled by
``numbering.settle``.
"""

import secrets
import uuid
from datetime import date

import pymongo

from pamong.contracts import letters as contracts  # noqa: F401 - registers the contracts
from pamong.events.envelope import new_event
from pamong.events.outbox import OUTBOX
from pamong.localtime import local_today
from pamong.replica import ACTING, EMPLOYEES, UNITS
from pamong.storage import GroupFind, by_ids, db_now, grouped
from pamong.web import Problem, conflict, forbidden, not_found, route, unprocessable
from pamong.web.context import current_correlation_id
from pamong.web.idempotency import idempotency_key
from services.letters import domain, numbering
from services.letters.access import API, DRAFTERS
from services.letters.schemas import DraftBody, DraftUpdate, LetterOut, StepBody
from services.letters.store import CLASSIFICATIONS, KINDS, LETTERS

TAGS = ["letters"]
KEY_IDS = uuid.UUID("5f0b6a7e-2c1d-4e8f-9a3b-7d6c5e4f3a21")  # letter ids from a key


def person(employee):
    position = employee.get("position") or {}
    return {"nip": employee["_id"], "name": employee.get("display_name") or employee["name"],
            "title": position.get("title")}


def secret_subject(letter):
    """What events say of the subject: nothing for Sangat Rahasia and Rahasia letters."""
    return None if letter["security"] in ("SR", "R") else letter["subject"]


def letter_out(letter, nip):
    parts = domain.roles_in(letter, nip) if nip else set()
    allowed = [step for step in domain.allowed_steps(letter["state"])
               if domain.TRANSITIONS[step][1] in parts]
    assignment = letter.get("assignment")
    if assignment:
        assignment = {**assignment, "start": date.fromisoformat(assignment["start"]),
                      "end": date.fromisoformat(assignment["end"])}
    return {**letter, "id": letter["_id"], "allowed": allowed, "assignment": assignment,
            "timeline": [{**e, "from_state": e.get("from"), "to_state": e["to"]}
                         for e in letter["timeline"]]}


class FlowEndpoints:
    """Mixed into the letters service (needs ``db``, ``outbox``, ``config``, ``cache``)."""

    # -- reading the directory replica ---------------------------------------------------

    def _active(self, nips, field):
        found = by_ids(self.db[EMPLOYEES], nips)
        missing = [n for n in nips if found.get(n, {}).get("status") != "active"]
        if missing:
            raise unprocessable({field: [f"not an active employee: {', '.join(missing)}"]})
        return found

    def _capacity(self, employee, day):
        """How ``employee`` may sign on ``day`` (None: not at all); kept for the reference
        cache's seconds, as the directory changes a position or an acting rarely and a
        signing peak asks the same question for every letter."""
        key = ("capacity", employee["_id"], employee.get("version"), day)
        return self.cache.get(key, lambda: self._read_capacity(employee, day))

    def _read_capacity(self, employee, day):
        actings = list(self.db[ACTING].find({"nip": employee["_id"]}))
        capacity = domain.signing_capacity(employee, actings, day)
        if capacity and capacity["title"] is None:  # acting in a position: its holder's title
            holder = self.db[EMPLOYEES].find_one({"position.id": capacity["position"]})
            unit = self.db[UNITS].find_one({"_id": capacity["unit"]}) or {}
            capacity["title"] = ((holder or {}).get("position") or {}).get("title") \
                or f"Kepala {unit.get('name', capacity['unit'])}"
        return capacity

    def _employee(self, nip):
        """An employee of the replica (cached like ``_capacity``), or None."""
        return self.cache.get(("employee", nip),
                              lambda: self.db[EMPLOYEES].find_one({"_id": nip}))

    def _today(self, unit):
        zone = self.cache.get(("zone", unit), lambda: (self.db[UNITS].find_one(
            {"_id": unit}, {"timezone": 1}) or {}).get("timezone") or "Asia/Jakarta")
        return local_today(zone)

    def _check_reference(self, body):
        kind = self.cache.get(("kind", body["kind"]),
                              lambda: self.db[KINDS].find_one({"_id": body["kind"]}))
        errors = {}
        if kind is None or not kind.get("active", True):
            errors["kind"] = [f"unknown document kind {body['kind']}"]
        if self.db[CLASSIFICATIONS].find_one({"_id": body["classification"]}) is None:
            errors["classification"] = [f"unknown classification {body['classification']}"]
        if errors:
            raise unprocessable(errors)

    def _draft_fields(self, body, drafter):
        """The letter's fields from a draft body, checked against the replica."""
        self._check_reference(body)
        verifiers = self._active(body["verifiers"], "verifiers")
        signer = self._active([body["signer"]], "signer")[body["signer"]]
        capacity = self._capacity(signer, self._today(drafter["unit"]))
        if capacity is None:
            raise unprocessable({"signer": ["holds no position that may sign and acts in "
                                            "none today"]})
        assignment = body.get("assignment")
        if assignment:
            self._active(assignment["employees"], "assignment.employees")
            assignment = {**assignment, "start": assignment["start"].isoformat(),
                          "end": assignment["end"].isoformat()}  # BSON has no date
        return {
            **{k: body[k] for k in ("kind", "classification", "security", "urgency", "subject",
                                    "body", "addressees", "copies")},
            "assignment": assignment,
            "verifiers": [{**person(verifiers[n]), "status": "pending", "at": None,
                           "note": None} for n in body["verifiers"]],
            "signer": {**person(signer), "title": domain.signer_title(capacity),
                       "position": capacity["position"], "acting": capacity["acting"]},
            "words": domain.words(body["subject"]),
        }

    def _drafter(self, principal):
        if not principal.nip:
            raise forbidden("Your token carries no NIP: letters are drafted by employees.")
        employee = self.db[EMPLOYEES].find_one({"_id": principal.nip})
        if employee is None or employee.get("status") != "active":
            raise forbidden(f"NIP {principal.nip} is not an active employee of this Pemda's "
                            "directory.")
        return employee

    def _letter(self, principal, letter_id):
        """The letter, when ``principal`` may see it (``MailEndpoints._sees``); else 404."""
        letter = grouped(GroupFind, self.db[LETTERS], ((OUTBOX, 0),)).insert(letter_id)
        if letter is None or not self._sees(principal, letter):
            raise not_found()
        return letter

    # -- endpoints -----------------------------------------------------------------------

    @route("POST", f"{API}/letters", roles=DRAFTERS, body=DraftBody(), response=LetterOut(),
           status=201, replay_status=200, tags=TAGS,
           summary="Write a draft (Idempotency-Key header optional: a repeat returns it)")
    def create_letter(self, request, principal, body):
        drafter = self._drafter(principal)
        key = idempotency_key(request)
        letter_id = (uuid.uuid5(KEY_IDS, f"{principal.sub}:{key}") if key
                     else uuid.uuid4()).hex
        if key and (first := self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})):
            return 200, letter_out(first, principal.nip)
        at = db_now()
        letter = {
            "_id": letter_id, "state": domain.DRAFT, "version": 1, "step": 0,
            "unit": drafter["unit"], "opd": drafter.get("opd"), "drafter": person(drafter),
            **self._draft_fields(body, drafter), "number": None, "number_counter": None,
            "number_claim": None, "signed_at": None, "signed_by": None,
            "created_at": at, "updated_at": at,
            "timeline": [{"at": at, **_who(drafter), "step": "create", "from": None,
                          "to": domain.DRAFT, "note": None}],
        }
        try:
            self.db[LETTERS].insert_one(letter)
        except pymongo.errors.DuplicateKeyError:  # a concurrent repeat with the same key
            return 200, letter_out(self._letter(principal, letter_id), principal.nip)
        return letter_out(letter, principal.nip)

    @route("GET", f"{API}/letters/<letter_id>", roles=DRAFTERS + ("admin", "service"),
           response=LetterOut(), tags=TAGS, summary="A letter with its timeline")
    def get_letter(self, request, principal, letter_id):
        return letter_out(self._letter(principal, letter_id), principal.nip)

    @route("PUT", f"{API}/letters/<letter_id>", roles=DRAFTERS, body=DraftUpdate(),
           response=LetterOut(), tags=TAGS,
           summary="Rewrite a draft or a returned letter (its drafter; version required)")
    def update_letter(self, request, principal, letter_id, body):
        letter = self._letter(principal, letter_id)
        if principal.nip != letter["drafter"]["nip"]:
            raise forbidden("Only the letter's drafter rewrites it.")
        if letter["state"] not in domain.EDITABLE:
            raise _illegal("edit", letter["state"])
        drafter = self._drafter(principal)
        at = db_now()
        changes = {**self._draft_fields(body, drafter), "updated_at": at}
        written = self.db[LETTERS].update_one(
            {"_id": letter_id, "version": body["version"], "state": letter["state"]},
            {"$set": changes, "$inc": {"version": 1},
             "$push": {"timeline": {"at": at, **_who(drafter), "step": "edit",
                                    "from": letter["state"], "to": letter["state"],
                                    "note": None}}})
        if not written.matched_count:
            raise _stale(self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0}))
        return letter_out(self._letter(principal, letter_id), principal.nip)

    @route("POST", f"{API}/letters/<letter_id>/submit", roles=DRAFTERS, body=StepBody(),
           response=LetterOut(), tags=TAGS, summary="Submit to the verifiers (or the signer)")
    def submit_letter(self, request, principal, letter_id, body):
        return self._step(principal, letter_id, "submit", body)

    @route("POST", f"{API}/letters/<letter_id>/approve", roles=DRAFTERS, body=StepBody(),
           response=LetterOut(), tags=TAGS, summary="Paraf: approve as the current verifier")
    def approve_letter(self, request, principal, letter_id, body):
        return self._step(principal, letter_id, "approve", body)

    @route("POST", f"{API}/letters/<letter_id>/return", roles=DRAFTERS, body=StepBody(),
           response=LetterOut(), tags=TAGS,
           summary="Return to the drafter with a note (current verifier or the signer)")
    def return_letter(self, request, principal, letter_id, body):
        return self._step(principal, letter_id, "return", body)

    @route("POST", f"{API}/letters/<letter_id>/withdraw", roles=DRAFTERS, body=StepBody(),
           response=LetterOut(), tags=TAGS, summary="Withdraw a draft (its drafter)")
    def withdraw_letter(self, request, principal, letter_id, body):
        return self._step(principal, letter_id, "withdraw", body)

    @route("POST", f"{API}/letters/<letter_id>/sign", roles=DRAFTERS, body=StepBody(),
           response=LetterOut(), tags=TAGS,
           summary="Sign: the letter gets its number (the signer, or the official acting in "
                   "the signer's position today); a repeat by the same signer returns it")
    def sign_letter(self, request, principal, letter_id, body):
        return self._step(principal, letter_id, "sign", body)

    # -- the steps -----------------------------------------------------------------------

    def _step(self, principal, letter_id, step, body):
        if not principal.nip:
            raise forbidden("Your token carries no NIP.")
        letter = self._letter(principal, letter_id)
        if step == "sign" and letter["state"] in domain.SIGNED_ON \
                and (letter["signed_by"] or {}).get("nip") == principal.nip:
            return letter_out(letter, principal.nip)  # a retried sign that landed
        if body.get("version") is not None and body["version"] != letter["version"]:
            raise _stale(letter)
        if step in domain.NOTE_REQUIRED and not (body.get("note") or "").strip():
            raise unprocessable({"note": [f"a {step} says what to change"]})
        to = _next_state(letter, step)
        actor = self._employee(principal.nip) or {"_id": principal.nip, "name": principal.name}
        signing = self._signing(letter, actor) if step == "sign" else None
        if signing is None:
            self._may_take(letter, step, principal.nip)
        at = db_now()
        changes = {**domain.step_changes(letter, step, principal.nip, body.get("note"), at),
                   "state": to, "updated_at": at}
        events = self._events(letter, step, to, principal.nip, body.get("note"))
        claim = None
        if signing:
            counter, render, signed_by = signing
            n, number = numbering.allocate(self.db, counter, letter_id, render,
                                           principal.nip, at)
            claim = (counter, n)
            changes |= {"number": number, "number_counter": counter,
                        "number_claim": f"{counter}:{n}", "signed_at": at,
                        "signed_by": signed_by,
                        # the public verification code the QR carries: unguessable, so the
                        # verification API cannot be walked letter by letter
                        "verify_code": secrets.token_urlsafe(12)}
            events = [self._signed_event(letter, number, at, principal.nip)]
        update = {"$set": changes, "$inc": {"version": 1},
                  "$push": {"timeline": {"at": at, **_who(actor), "step": step,
                                         "from": letter["state"], "to": to,
                                         "note": body.get("note")}}}
        where = {"_id": letter_id, "version": letter["version"]}
        if events:  # concurrent steps (a signing peak) share one update request
            matched = self.outbox.update_grouped(LETTERS, where, update, events)
        else:
            matched = self.outbox.update(LETTERS, where, update, events).matched_count
        if not matched:
            if claim:
                numbering.cancel(self.db, *claim, "the letter changed while it was being "
                                                   "signed; it was not signed with this number",
                                 by=principal.nip)
            again = self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})
            if step == "sign" and again and again["state"] in domain.SIGNED_ON \
                    and again["signed_by"]["nip"] == principal.nip:
                return letter_out(again, principal.nip)
            raise _stale(again)
        return letter_out(domain.after_write(letter, update), principal.nip)

    def _may_take(self, letter, step, nip):
        who = domain.TRANSITIONS[step][1]
        if who not in domain.roles_in(letter, nip):
            raise forbidden({"drafter": "Only the letter's drafter may do this.",
                             "verifier": "Only the verifier whose paraf is awaited may do "
                                         "this.",
                             "reviewer": "Only the verifier whose paraf is awaited, or the "
                                         "signer once it awaits the signature, may return it.",
                             "signer": "Only the letter's signer may sign it."}[who])

    def _signing(self, letter, actor):
        """``(counter, render, signed_by)`` when ``actor`` may sign ``letter`` today: as the
        named signer still able to sign, or acting in the signer's position today."""
        signer = letter["signer"]
        day = self._today(letter["unit"])
        capacity = self._capacity(actor, day) if actor.get("status") == "active" else None
        if capacity is None or not (actor["_id"] == signer["nip"]
                                    or capacity["position"] == signer["position"]):
            if actor["_id"] == signer["nip"]:
                raise conflict("You no longer hold a position that may sign, nor act in one "
                               "today: return the letter so its drafter names the signer.")
            raise forbidden("Only the letter's signer, or the official acting in the signer's "
                            "position today, may sign it.")
        configs = numbering.configs_for(self.db, self.cache, letter["unit"])
        scheme = domain.scheme_for(configs, numbering.unit_chain(letter["unit"]),
                                   letter["kind"])
        if scheme is None:
            raise conflict(f"No numbering template is set for unit {letter['unit']} or any "
                           "unit above it: an opd_admin sets one (PUT /numbering/<unit>).")
        owner, template, per_kind, unit_code = scheme
        counter = domain.sequence_id(owner, letter["kind"], day.year, per_kind)

        def render(n):
            return domain.render_number(template, seq=n, day=day, unit_code=unit_code,
                                        classification=letter["classification"],
                                        security=letter["security"], kind=letter["kind"])

        signed_by = {**person(actor), "title": domain.signer_title(capacity),
                     "position": capacity["position"], "acting": capacity["acting"]}
        return counter, render, signed_by

    def _events(self, letter, step, to, nip, note):
        common = {"id": letter["_id"], "kind": letter["kind"], "unit": letter["unit"],
                  "opd": letter["opd"], "security": letter["security"],
                  "subject": secret_subject(letter), "drafter": letter["drafter"]["nip"]}
        if step == "return":
            return [self._event("letter.returned", letter, {**common, "returned_by": nip,
                                                            "note": note})]
        if to == domain.IN_REVIEW or to == domain.AWAITING_SIGNATURE:
            if to == domain.IN_REVIEW:
                index = 0 if step == "submit" else letter["step"] + 1
                awaiting = {"nip": letter["verifiers"][index]["nip"], "role": "verifier"}
            else:
                awaiting = {"nip": letter["signer"]["nip"], "role": "signer"}
            return [self._event("letter.submitted", letter,
                                {**common, "urgency": letter["urgency"], "awaiting": awaiting})]
        return []

    def _signed_event(self, letter, number, at, nip):
        assignment = letter.get("assignment")
        return self._event("letter.signed", letter, {
            "id": letter["_id"], "number": number, "kind": letter["kind"],
            "unit": letter["unit"], "opd": letter["opd"],
            "subject": secret_subject(letter) or f"Surat {domain.SECURITY[letter['security']]}",
            "signed_at": at.isoformat(), "signer": nip,
            "assignment": assignment})

    def _event(self, event_type, letter, data):
        return new_event("letters", event_type, data, opd=letter["opd"],
                         correlation_id=current_correlation_id())


def _who(employee):
    return {"nip": employee["_id"], "name": employee.get("display_name") or employee.get("name")}


def _next_state(letter, step):
    try:
        return domain.next_state(letter, step)
    except domain.IllegalStep as exc:
        raise _illegal(step, letter["state"]) from exc


def _illegal(step, state):
    allowed = domain.allowed_steps(state)
    if step == "edit":
        detail = f"A {state} letter cannot be edited: only a draft or a returned letter can."
    else:
        detail = str(domain.IllegalStep(step, state))
    return Problem(409, detail, extensions={"state": state, "allowed": allowed})


def _stale(letter):
    state = letter["state"] if letter else None
    return Problem(409, "The letter changed since you read it (another step was taken): "
                        "read it again.",
                   extensions={"state": state, "allowed": domain.allowed_steps(state or ""),
                               "version": (letter or {}).get("version")})
