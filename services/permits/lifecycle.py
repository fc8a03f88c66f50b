"""The lifecycle of an application: ``POST /applications/<id>/actions/<action>`` driven by the
one table ``domain.ACTIONS`` (which states an action leaves, where it leads, which parties
take it, what it needs), plus the technical recommendations and the site visit.

Each action reads the application by ``_id`` and writes it once, compare-and-set on
``version`` (``{_id, version}`` + ``$inc version``), with its timeline entry (action, from,
to, UTC time, local date, actor, note, the version it produced) and its events in the same
write (outbox): ``permit.status_changed`` always, and the step's own event(s)
(``permit.submitted``, ``returned``, ``registered``, ``recommendation_requested``,
``decided``, ``billed``, ``paid``, ``issued``, ``expired``, ``revoked``). Two officers acting
at once: one write lands, the other answers 409 naming the state it found, the actions it
allows and the version. A repeated action that already landed for the same caller on the
same version (a retried click) answers the application as it is.

Numbers are handed out before the write (``counters`` ``$inc``: ``registration:<year>``,
``bill:<year>``, ``permit:<type>:<year>``); a request that then loses the race records its
number as void on the counter (``void``: number, reason), so a gap is explained, never
reused. The registration (``registrations``) and verification code (``codes``) lookups are
inserted before the write and deleted when it is lost; a crash in between leaves a lookup
whose application does not carry that number, which the readers check.

Every transition stores the day the SLA timer looks at the file again (``sla.next_check``,
``domain.next_alert_day``) and lists the id in that day's ``due`` document; an issued permit
with an end date is listed for its expiring notice and its expiry (``sla.py``).
"""

import logging
from datetime import date, timedelta

import pymongo
from pymongo import ReturnDocument

from pamong.contracts import permits as contracts  # noqa: F401 - registers the contracts
from pamong.events.outbox import OUTBOX
from pamong.storage import db_now
from pamong.web import forbidden, not_found, route, unprocessable
from services.permits import access, chunks, domain
from services.permits.access import API, READERS, conflict_of
from services.permits.applications import status_changed_data
from services.permits.schemas.applications import ApplicationOut
from services.permits.schemas.lifecycle import ActionBody, RecommendationBody, SiteVisitBody
from services.permits.store import (
    APPLICATIONS,
    CODES,
    COUNTERS,
    DUE,
    REGISTRATIONS,
    holidays_for,
    local_date,
    local_today,
    public_url,
)

log = logging.getLogger(__name__)

TAGS = ["lifecycle"]
SYSTEM = {"sub": "system", "role": "service"}  # who the timers act as
REVIEW_STAFF = ("petugas", "verifikator", "pimpinan")  # who gives an OPD's recommendation
CAS_TRIES = 5  # a recommendation or a site visit re-read after a concurrent change

# the role a party acts in (the timeline's ``by.role``), and who the party is in words
PARTY_ROLES = {"applicant": ("pemohon", "petugas"), "officer": ("petugas",),
               "reviewer": ("verifikator", "petugas"), "head": ("pimpinan",),
               "system": ("service",)}
WHO = {"applicant": "the applicant (or a petugas of the responsible OPD at the counter)",
       "officer": "a petugas of the responsible OPD",
       "reviewer": "a verifikator or petugas of the responsible OPD",
       "head": "the pimpinan of the responsible OPD", "system": "the system's timers"}
NEEDS = {"reason": "a {action} gives the reason",
         "missing_items": "a return names the missing or faulty items",
         "payment_reference": "a payment names its reference (bank or cashier)"}

# settings (and their defaults)
WARNING_DAYS, EXPIRING_DAYS = "PERMITS_SLA_WARNING_DAYS", "PERMITS_EXPIRING_DAYS"
DEFAULTS = {WARNING_DAYS: 2, EXPIRING_DAYS: 30, "PERMITS_BILL_DUE_DAYS": 30,
            "PERMITS_RECOMMENDATION_DAYS": 5}


def setting(config, key):
    return int(config.get(key, DEFAULTS[key]))


# -- pure helpers ---------------------------------------------------------------------------

def contact(application):
    """How to reach the applicant (events meant for them; nothing more): ``sub`` is the
    account that owns the application (its in-app inbox), null at the counter."""
    applicant = application["applicant"]
    return {"phone": applicant.get("phone"), "email": applicant.get("email"),
            "channel": applicant.get("channel") or "whatsapp",
            "sub": application.get("owner")}


def identity(application):
    return {"id": application["_id"],
            "registration_number": application.get("registration_number"),
            "type": application["type"], "type_name": application["standard"]["name"],
            "opd": application["opd"]}


def landed(application, action, sub, version):
    """Whether ``action`` by ``sub`` on ``version`` already landed (a retried request)."""
    return any(e.get("action") == action and (e.get("by") or {}).get("sub") == sub
               and e.get("version") == version + 1 for e in application.get("timeline", ()))


def all_alerts_sent(application, sent):
    """No alert is left to send while the file stays in its current stage."""
    stage = domain.STAGE_OF.get(application["state"])
    keys = {"warning:total", "breach:total"}
    if stage in domain.stage_sla(application["standard"]):
        keys.add(f"breach:{stage}")
    return keys <= set(sent)


def due_id(kind, day):
    return f"{kind}:{day.isoformat()}"


def schedule(db, kind, day, ids):
    """List ``ids`` under ``day`` in ``due`` for the timer of ``kind`` (``sla``, ``expiry``),
    in chunks of bounded size (``chunks.due_add``); the first day ever listed starts the
    timer's watermark just before it."""
    chunks.due_add(db[DUE], due_id(kind, day), ids)
    db[DUE].update_one({"_id": f"{kind}:checked"},
                       {"$min": {"day": (day - timedelta(days=1)).isoformat()}}, upsert=True)


def stale(application):
    return conflict_of(application, "The application changed since you read it (another step "
                                    "was taken): read it again.")


class LifecycleEndpoints:
    """Mixed into the permits service (needs ``db``, ``outbox``, ``config``, ``cache``)."""

    # -- reading -------------------------------------------------------------------------

    def _lc_read(self, application_id):
        return self.db[APPLICATIONS].find_one({"_id": application_id}, {OUTBOX: 0})

    def _lc_visible(self, principal, application_id):
        application = self._lc_read(application_id)
        if application is None or not access.may_see(application, principal):
            raise not_found()
        return application

    def _lc_clock(self, application, today, timeline=None):
        """``(domain.Clock, holidays)`` of the application on ``today``."""
        if timeline is not None:
            application = {**application, "timeline": timeline}
        holidays = frozenset(holidays_for(self.db, self.cache, application, today))
        return domain.clock_of(application, today, holidays), holidays

    def _lc_next_check(self, application, timeline, today, holidays, sent):
        """The day the SLA timer looks at the file again (None: it need not)."""
        if all_alerts_sent({**application, "state": timeline[-1]["to"]}, sent):
            return None
        standard = application["standard"]
        return domain.next_alert_day(domain.timeline_days(timeline), today, standard["sla_days"],
                                     domain.stage_sla(standard), setting(self.config, WARNING_DAYS),
                                     holidays)

    # -- actions -------------------------------------------------------------------------

    @route("POST", f"{API}/applications/<app_id>/actions/<action>", roles=READERS,
           body=ActionBody(), response=ApplicationOut(), tags=TAGS,
           summary="Take a lifecycle action (submit, return, resubmit, register, start_review, "
                   "recommend, reject, bill, pay, sign, issue, collect, revoke)",
           description="The version you read is required: an application changed since "
                       "answers 409 with its `state`, the `allowed` actions and its `version`. "
                       "An action not allowed in the current state is 409 naming both; one "
                       "the table allows but a rule forbids (unpaid fee, recommendations "
                       "awaited, documents missing) is 409 with the `reasons`. `return` needs "
                       "`missing_items`, `reject` and `revoke` a `reason`, `pay` a "
                       "`payment_reference`. A retried action that landed answers 200 with "
                       "the application as it is.")
    def lifecycle_action(self, request, principal, app_id, action, body):
        spec = domain.ACTIONS.get(action)
        if spec is None:
            raise not_found(f"There is no action {action!r}; the lifecycle's actions are: "
                            f"{', '.join(domain.ACTIONS)}.")
        application = self._lc_visible(principal, app_id)
        if landed(application, action, principal.sub, body["version"]):
            return self._view(application, principal)
        if body["version"] != application["version"]:
            raise stale(application)
        if detail := domain.transition_problem(application["state"], action):
            raise conflict_of(application, f"{detail}.")
        parties = access.parties(application, principal) & set(spec.parties)
        if not parties:
            raise forbidden(f"{action!r} is taken by "
                            f"{' or '.join(WHO[p] for p in spec.parties)}.")
        errors = {need: [NEEDS[need].format(action=action)] for need in spec.needs
                  if not body.get(need) or (isinstance(body[need], str)
                                            and not body[need].strip())}
        if errors:
            raise unprocessable(errors)
        if reasons := domain.guard(application, action):
            raise conflict_of(application, f"{action!r} cannot be taken yet: "
                                           f"{'; '.join(reasons)}.", reasons=reasons)
        party = next(p for p in spec.parties if p in parties)
        by = principal.actor(PARTY_ROLES[party])
        written = self._lc_take(application, action, by, body)
        if written is None:
            again = self._lc_read(app_id)
            if again and landed(again, action, principal.sub, body["version"]):
                return self._view(again, principal)
            raise stale(again)
        return self._view(written, principal)

    def _lc_take(self, application, action, by, body):
        """Write ``action`` on ``application`` (already checked) as ``by``; the application
        as written, or None when another write came first (nothing of ours is left)."""
        spec = domain.ACTIONS[action]
        at = db_now()
        today = local_date(self.config, at)
        state, target, version = application["state"], spec.target, application["version"]
        standard = application["standard"]
        entry = {"action": action, "from": state, "to": target, "at": at,
                 "on": today.isoformat(), "by": by, "note": (body.get("note") or None),
                 "version": version + 1}
        timeline = [*application["timeline"], entry]
        clock, holidays = self._lc_clock(application, today, timeline)
        changes = {"state": target, "updated_at": at}
        ident = identity(application)
        step_events, undo = [], []

        def to_applicant(event_type, **data):
            step_events.append((event_type, {**ident, "contact": contact(application),
                                             **data}))

        if action in ("submit", "resubmit"):
            changes["missing_items"] = None
            if action == "submit":
                changes["submitted_at"] = at
            to_applicant("permit.submitted", resubmission=action == "resubmit",
                         submitted_at=at)
        elif action == "return":
            changes["missing_items"] = body["missing_items"]
            to_applicant("permit.returned", missing_items=body["missing_items"],
                         note=body.get("note"))
        elif action == "register":
            number = self._lc_number(f"registration:{today.year}", undo, at,
                                     lambda n: domain.registration_number(today.year, n))
            self._lc_lookup(REGISTRATIONS, number, application["_id"], at, undo)
            due_on = domain.add_working_days(today, max(clock.left, 0), holidays)
            ident["registration_number"] = number
            changes |= {"registration_number": number, "officer": by["sub"],
                        "registered_at": at, "receipt": {
                            "registration_number": number, "registered_at": at,
                            "type_name": standard["name"],
                            "documents": [d["name"] for d in application.get("documents", ())],
                            "sla_days": standard["sla_days"], "due_on": due_on.isoformat()}}
            to_applicant("permit.registered", registered_at=at,
                         sla_days=standard["sla_days"], due_on=due_on)
        elif action == "start_review":
            days = domain.stage_sla(standard).get("teknis") or setting(
                self.config, "PERMITS_RECOMMENDATION_DAYS")
            due_on = domain.add_working_days(today, days, holidays)
            changes["recommendations"] = [
                {"opd": opd, "status": "requested", "note": None, "by": None, "at": None,
                 "due_on": due_on.isoformat()} for opd in standard.get("recommenders") or ()]
            step_events += [("permit.recommendation_requested",
                             {**ident, "recommender": opd, "due_on": due_on})
                            for opd in standard.get("recommenders") or ()]
        elif action == "reject":
            changes["reason"] = body["reason"].strip()
            to_applicant("permit.decided", decision="rejected", reason=changes["reason"])
        elif action == "bill":
            number = self._lc_number(f"bill:{today.year}", undo, at,
                                     lambda n: domain.bill_number(today.year, n))
            due_on = today + timedelta(days=setting(self.config, "PERMITS_BILL_DUE_DAYS"))
            changes["bill"] = {"number": number, "amount": standard["fee"],
                               "issued_on": today.isoformat(), "due_on": due_on.isoformat(),
                               "paid_at": None, "payment_reference": None}
            to_applicant("permit.decided", decision="approved", reason=None)
            to_applicant("permit.billed", bill_number=number, amount=standard["fee"],
                         due_on=due_on)
        elif action == "pay":
            bill = application["bill"]
            changes |= {"bill.paid_at": at,
                        "bill.payment_reference": body["payment_reference"].strip()}
            step_events.append(("permit.paid", {**ident, "bill_number": bill["number"],
                                                "amount": bill["amount"], "paid_at": at}))
        elif action == "sign":
            changes |= {"signed_at": at, "signed_by": by["sub"]}
            if state == domain.RECOMMENDED:  # free: signing is the approval
                to_applicant("permit.decided", decision="approved", reason=None)
        elif action == "issue":
            changes["permit"] = self._lc_permit(application, today, at, undo)
            to_applicant("permit.issued", permit_number=changes["permit"]["number"],
                         valid_from=today,
                         valid_until=_day(changes["permit"]["valid_until"]),
                         verification_url=domain.verification_url(
                             public_url(self.config),
                             changes["permit"]["code"]))
        elif action == "collect":
            changes["collected_at"] = at
        elif action == "expire":
            permit = application["permit"]
            to_applicant("permit.expired", permit_number=permit["number"],
                         valid_until=_day(permit["valid_until"]))
        elif action == "revoke":
            changes["reason"] = body["reason"].strip()
            changes["revoked"] = {"at": at, "by": by["sub"], "reason": changes["reason"]}
            to_applicant("permit.revoked", permit_number=application["permit"]["number"],
                         reason=changes["reason"])

        sla = application.get("sla") if isinstance(application.get("sla"), dict) else None
        sent = (sla or {}).get("alerts") or []
        next_check = self._lc_next_check(application, timeline, today, holidays, sent)
        if sla is None:
            changes["sla"] = {"alerts": [], "next_check": _iso(next_check)}
        else:
            changes["sla.next_check"] = _iso(next_check)
        if next_check:  # listed before the write: a lost write leaves a harmless look
            schedule(self.db, "sla", next_check, [application["_id"]])
        if action == "issue" and changes["permit"]["valid_until"]:
            until = date.fromisoformat(changes["permit"]["valid_until"])
            notice = until - timedelta(days=setting(self.config, EXPIRING_DAYS))
            schedule(self.db, "expiry", max(notice, today), [application["_id"]])
            schedule(self.db, "expiry", until + timedelta(days=1), [application["_id"]])

        submitted_at = changes.get("submitted_at") or application.get("submitted_at")
        events = [self.outbox.event("permit.status_changed", status_changed_data(
            {**application, "registration_number": ident["registration_number"]}, state,
            target, action, at, clock.used,
            local_date(self.config, submitted_at) if submitted_at else None),
            opd=application["opd"])]
        events += [self.outbox.event(event_type, data, opd=application["opd"])
                   for event_type, data in step_events]
        update = {"$set": changes, "$inc": {"version": 1}, "$push": {"timeline": entry}}
        try:
            written = self.outbox.update(APPLICATIONS, {"_id": application["_id"],
                                                        "version": version}, update, events)
        except pymongo.errors.WriteError:
            self._lc_undo(undo, "the write of the application failed")
            raise
        if not written.matched_count:
            self._lc_undo(undo, "another step was taken on the application first")
            return None
        return self._lc_read(application["_id"])

    # -- numbers and lookups ---------------------------------------------------------------

    def _lc_number(self, counter, undo, at, render):
        """The next number of ``counter`` (rendered); on a lost write it is recorded void."""
        for attempt in range(2):
            try:
                doc = self.db[COUNTERS].find_one_and_update(
                    {"_id": counter}, {"$inc": {"next": 1}}, upsert=True,
                    return_document=ReturnDocument.AFTER)
                break
            except pymongo.errors.DuplicateKeyError:  # two first upserts at once
                if attempt:
                    raise
        n = doc["next"]
        number = render(n)

        def void(reason):
            self.db[COUNTERS].update_one({"_id": counter}, {"$push": {"void": {
                "n": n, "number": number, "reason": reason, "at": at}}})
        undo.append(void)
        return number

    def _lc_lookup(self, collection, key, application_id, at, undo):
        self.db[collection].insert_one({"_id": key, "application": application_id, "at": at})
        undo.append(lambda reason: self.db[collection].delete_one(
            {"_id": key, "application": application_id}))

    def _lc_permit(self, application, today, at, undo):
        standard = application["standard"]
        counter = f"permit:{application['type']}:{today.year}"
        number = self._lc_number(counter, undo, at, lambda n: domain.permit_number(
            application["type"], application["opd"], today.year, n))
        valid_from, valid_until = domain.validity(today, standard.get("validity_months") or 0)
        for attempt in range(3):  # 32^12 codes: a clash is a once-in-the-universe event
            code = domain.verification_code()
            try:
                self._lc_lookup(CODES, code, application["_id"], at, undo)
                break
            except pymongo.errors.DuplicateKeyError:
                if attempt == 2:
                    raise
        return {"number": number, "valid_from": valid_from.isoformat(),
                "valid_until": _iso(valid_until), "code": code, "issued_at": at}

    def _lc_undo(self, undo, reason):
        for step in undo:
            try:
                step(reason)
            except Exception:  # noqa: BLE001 - the others still run; the gap stays explained
                log.exception("undoing a lost permit step failed (%s)", reason)

    # -- recommendations and the site visit --------------------------------------------------

    @route("POST", f"{API}/applications/<app_id>/recommendations/<opd>",
           roles=REVIEW_STAFF, body=RecommendationBody(), response=ApplicationOut(), tags=TAGS,
           summary="Give the recommendation asked of an OPD (its petugas, verifikator or "
                   "pimpinan): positive or negative with a note",
           description="Only while the application is in technical review and the OPD's "
                       "recommendation is still awaited (409 otherwise); the same "
                       "recommendation given again by the same person answers 200.")
    def lifecycle_recommendation(self, request, principal, app_id, opd, body):
        application = self._lc_visible(principal, app_id)
        if principal.is_pemda_wide or not principal.can_read(opd):
            raise forbidden(f"Only staff of OPD {opd} give its recommendation.")
        for _ in range(CAS_TRIES):
            asked = next((r for r in application.get("recommendations") or ()
                          if r["opd"] == opd), None)
            if asked is None:
                raise not_found(f"No recommendation was asked of OPD {opd} for this "
                                "application.")
            if asked["status"] != "requested":
                if asked["by"] == principal.sub and asked["status"] == body["recommendation"]:
                    return self._view(application, principal)
                raise conflict_of(application, f"OPD {opd} gave its recommendation already "
                                           f"({asked['status']}).")
            if application["state"] != domain.REVIEW:
                raise conflict_of(application, "Recommendations are given while the application "
                                           f"is in technical review; it is "
                                           f"{application['state']!r}.")
            at = db_now()
            given = [{**r, "status": body["recommendation"], "note": body.get("note"),
                      "by": principal.sub, "at": at} if r["opd"] == opd else r
                     for r in application["recommendations"]]
            event = self.outbox.event("permit.recommendation_given", {
                **identity(application), "recommender": opd,
                "recommendation": body["recommendation"], "given_by": principal.sub},
                opd=application["opd"])
            written = self.outbox.update(
                APPLICATIONS, {"_id": application["_id"], "version": application["version"]},
                {"$set": {"recommendations": given, "updated_at": at}, "$inc": {"version": 1}},
                [event])
            if written.matched_count:
                return self._view(self._lc_read(app_id), principal)
            application = self._lc_visible(principal, app_id)
        raise stale(application)

    @route("POST", f"{API}/applications/<app_id>/site-visit",
           roles=("petugas", "verifikator"), body=SiteVisitBody(), response=ApplicationOut(),
           tags=TAGS,
           summary="Schedule the site visit (scheduled_on), or record it done (done_on, "
                   "findings); a petugas or verifikator of the responsible OPD",
           description="While the application is in technical review. A recorded visit is "
                       "not recorded again (409), except the same record repeated (200).")
    def lifecycle_site_visit(self, request, principal, app_id, body):
        application = self._lc_visible(principal, app_id)
        if not access.parties(application, principal) & {"officer", "reviewer"}:
            raise forbidden("The site visit is scheduled and recorded by a petugas or "
                            "verifikator of the responsible OPD.")
        if body.get("version") is not None and body["version"] != application["version"]:
            raise stale(application)
        today = local_today(self.config)
        if body.get("done_on") and body["done_on"] > today:
            raise unprocessable({"done_on": ["a visit is recorded once it took place"]})
        for _ in range(CAS_TRIES):
            visit = application.get("site_visit") or {}
            if visit.get("done_on"):
                if body.get("done_on") and visit["done_on"] == body["done_on"].isoformat() \
                        and visit.get("findings") == body["findings"]:
                    return self._view(application, principal)
                raise conflict_of(application, f"The site visit was recorded already (done on "
                                           f"{visit['done_on']}).")
            if application["state"] != domain.REVIEW:
                raise conflict_of(application, "The site visit is scheduled and recorded while "
                                           "the application is in technical review; it is "
                                           f"{application['state']!r}.")
            at = db_now()
            if body.get("done_on"):
                visit = {**visit, "scheduled_on": visit.get("scheduled_on")
                         or body["done_on"].isoformat(),
                         "officer": body.get("officer") or visit.get("officer")
                         or principal.sub, "done_on": body["done_on"].isoformat(),
                         "findings": body["findings"].strip(), "recorded_by": principal.sub,
                         "recorded_at": at}
            else:
                visit = {**visit, "scheduled_on": body["scheduled_on"].isoformat(),
                         "officer": body.get("officer") or principal.sub, "done_on": None,
                         "findings": None, "scheduled_by": principal.sub, "scheduled_at": at}
            written = self.db[APPLICATIONS].update_one(
                {"_id": application["_id"], "version": application["version"]},
                {"$set": {"site_visit": visit, "updated_at": at}, "$inc": {"version": 1}})
            if written.matched_count:
                return self._view(self._lc_read(app_id), principal)
            if body.get("version") is not None:
                raise stale(self._lc_read(app_id))
            application = self._lc_visible(principal, app_id)
        raise stale(application)


def _iso(day):
    return day.isoformat() if day else None


def _day(text):
    return date.fromisoformat(text) if text else None
