"""What anyone may learn without logging in: tracking, verification, the WhatsApp lookup.

- **Tracking** (``GET /track?number=REG-2026-000123&last4=1234``): the registration number
  of the receipt plus the last 4 digits of the applicant's NIK or phone. The answer is the
  status timeline (state labels and dates), the stage and the working days used and left;
  never a name, NIK, phone, address, document or an officer's note. An unknown number and a
  wrong pair of digits get the same 404 body after the same work: one ``registrations``
  read, one application read by ``_id`` (of an id that does not exist when the number is
  unknown), both comparisons in constant time (``hmac.compare_digest``), never a
  short-circuit. Rate-limited per client (``limits`` documents ``"<client>:<minute>"``,
  ``$inc`` upserted; ``PERMITS_TRACK_PER_MINUTE``, default 10; then 429 with
  ``Retry-After``): 4 digits are 10,000 guesses, so at 10 a minute one number takes a
  client days. The client is the connection's address, or the header named by
  ``PERMITS_CLIENT_IP_HEADER`` (e.g. ``X-Real-IP``) when the ingress sets it (set it only
  then: a client could write it itself). Old ``limits`` documents are purged by a timer.
- **Verification** (``GET /verify/<code>``, the permit's QR code): valid, expired or revoked
  with the permit number, type, holder's name partly masked (``domain.mask_name``) and
  validity; an unknown code is a 404 problem with ``verification: unknown``. Never cached
  (``Cache-Control: no-store``): a revocation shows at once.
- **RPC** ``public_status(registration_number, phone)`` for the notify module (a WhatsApp
  "STATUS <number>" question from ``phone``): ``PublicStatus``, ``found: false`` and nothing
  else unless the number exists and the (normalised) phone is the applicant's.
"""

import hmac
import logging
import re
import time
from datetime import date, timedelta

import pymongo
import pymongo.errors

from pamong.contracts.permits import PublicStatus
from pamong.privacy import mask_text, normalize_phone
from pamong.replica import UNITS
from pamong.rpc import rpc
from pamong.storage import db_now
from pamong.timers import setting_timer
from pamong.web import Problem, route
from services.permits import domain
from services.permits.access import API
from services.permits.schemas.public import TrackOut, TrackQuery, VerifyOut
from services.permits.store import (
    APPLICATIONS,
    CODES,
    LIMITS,
    REGISTRATIONS,
    holidays_for,
    local_today,
)

log = logging.getLogger(__name__)

TAGS = ["public"]
NO_STORE = {"Cache-Control": "no-store"}
TRACK_PER_MINUTE = 10
ABSENT_ID = "~"  # read when a number is unknown: never an application id (uuid hex)
CODE = re.compile(r"^[A-Z0-9]{6,32}$")
PUBLIC_FIELDS = {k: 1 for k in ("state", "type", "standard", "applicant.nik",
                                "applicant.phone", "timeline", "registration_number",
                                "missing_items", "opd")}
VERIFY_FIELDS = {k: 1 for k in ("state", "type", "standard.name", "applicant.name",
                                "business.name", "permit", "opd", "timeline")}
NOT_TRACKED = ("No application matches this registration number and these 4 digits. Check "
               "the number on your receipt and use the last 4 digits of the applicant's NIK "
               "or of the phone number given when applying.")


# -- pure ----------------------------------------------------------------------------------------

def _digits(value):
    """The last 4 characters as bytes, padded so that a missing value never matches."""
    return (value or "")[-4:].encode().rjust(4, b"\0")


def digits_match(application, last4):
    """Whether ``last4`` ends the applicant's NIK or phone; constant time, both compared
    every time (no short-circuit), also when ``application`` is None."""
    applicant = (application or {}).get("applicant") or {}
    given = last4.encode() if len(last4) == 4 and last4.isdigit() else b"\1" * 4
    by_nik = hmac.compare_digest(_digits(applicant.get("nik")), given)
    by_phone = hmac.compare_digest(_digits(applicant.get("phone")), given)
    return application is not None and (by_nik | by_phone)


def phone_match(application, e164):
    phone = (((application or {}).get("applicant") or {}).get("phone") or "").encode()
    same = hmac.compare_digest(phone, (e164 or "").encode())
    return application is not None and e164 is not None and same


def status_view(application, today, holidays=()):
    """The public status of an application: state, label, stage, the SLA clock and the
    timeline of states with their dates. Nothing about the person."""
    standard = application["standard"]
    steps = domain.timeline_days(application.get("timeline") or ())
    clock = domain.clock_of(application, today, holidays)
    state = application["state"]
    is_open = state in domain.OPEN
    stage = domain.STAGE_OF.get(state)
    expected = (domain.add_working_days(today, clock.left, holidays)
                if clock.running and clock.left >= 0 else None)
    return {
        "registration_number": application.get("registration_number"),
        "type": application["type"], "type_name": standard["name"],
        "state": state, "label": domain.LABELS[state],
        "stage": stage, "stage_name": domain.STAGES.get(stage),
        "running": clock.running, "sla_days": standard["sla_days"],
        "days_used": clock.used, "days_left": clock.left if is_open else None,
        "expected_by": expected,
        # what to add or fix, as the officer wrote it (a NIK or phone in it masked)
        "missing_items": [mask_text(item) for item in application.get("missing_items") or ()]
        if state == domain.RETURNED else None,
        "timeline": [{"state": s["to"], "label": domain.LABELS[s["to"]], "on": s["on"]}
                     for s in steps],
    }


def verification(application, today):
    """``(verdict, details)`` of an issued permit: valid, expired (its state, or its last
    valid day passed before the expiry timer ran) or revoked; None when it has no permit."""
    permit = application.get("permit")
    state = application["state"]
    if not permit or state not in (*domain.HELD, domain.EXPIRED, domain.REVOKED):
        return None
    until = permit.get("valid_until")
    until = date.fromisoformat(str(until)[:10]) if until else None
    ended = {e["to"]: domain.as_date(e["on"]) for e in application.get("timeline") or ()}
    if state == domain.REVOKED:
        verdict = "revoked"
    elif state == domain.EXPIRED or (until is not None and until < today):
        verdict = "expired"
    else:
        verdict = "valid"
    business = (application.get("business") or {}).get("name")
    return {
        "verification": verdict, "permit_number": permit["number"],
        "type": application["type"], "type_name": application["standard"]["name"],
        "holder": domain.mask_name(application["applicant"]["name"]),
        "business": domain.mask_name(business) if business else None,
        "issued_by": application["opd"], "issued_on": ended.get(domain.ISSUED),
        "valid_from": date.fromisoformat(str(permit["valid_from"])[:10]), "valid_until": until,
        "revoked_on": ended.get(domain.REVOKED) if verdict == "revoked" else None,
        # the first day it no longer holds (not the day the expiry timer came round)
        "expired_on": ((until + timedelta(days=1)) if until else ended.get(domain.EXPIRED))
        if verdict == "expired" else None,
    }


def client_of(request, config):
    header = config.get("PERMITS_CLIENT_IP_HEADER")
    if header and (value := request.headers.get(header)):
        return value.split(",")[0].strip()[:64]
    return request.remote_addr or "unknown"


# -- the endpoints -------------------------------------------------------------------------------

class PublicEndpoints:
    """Mixed into the permits service (needs ``db``, ``config``, ``cache``)."""

    def _by_number(self, number, fields):
        """The application registered under ``number``, or None, after the same two reads
        either way."""
        found = self.db[REGISTRATIONS].find_one({"_id": number}) \
            if domain.REGISTRATION.fullmatch(number) else None
        return self.db[APPLICATIONS].find_one(
            {"_id": found["application"] if found else ABSENT_ID}, fields)

    def _count_request(self, request):
        """One more tracking request of this client this minute; 429 above the limit."""
        limit = int(self.config.get("PERMITS_TRACK_PER_MINUTE", TRACK_PER_MINUTE))
        now = time.time()
        key = f"{client_of(request, self.config)}:{int(now // 60)}"
        update = {"$inc": {"n": 1}, "$setOnInsert": {"at": db_now()}}
        try:
            doc = self.db[LIMITS].find_one_and_update(
                {"_id": key}, update, upsert=True, return_document=pymongo.ReturnDocument.AFTER)
        except pymongo.errors.DuplicateKeyError:  # a racing first request inserted it
            doc = self.db[LIMITS].find_one_and_update(
                {"_id": key}, update, return_document=pymongo.ReturnDocument.AFTER)
        if doc["n"] > limit:
            wait = max(1, 60 - int(now % 60))
            raise Problem(429, f"Too many tracking requests from your connection: at most "
                               f"{limit} a minute. Please wait {wait} seconds and try again.",
                          headers={"Retry-After": str(wait)},
                          extensions={"retry_after": wait, "limit": limit})

    @route("GET", f"{API}/track", public=True, query=TrackQuery(), response=TrackOut(),
           tags=TAGS, problems={404: "No application has this number and these digits",
                                429: "Too many tracking requests from this client (Retry-After)"},
           summary="Track an application: registration number + last 4 digits of "
                              "the NIK or phone (no login)",
           description="The status timeline, the stage and the working days used and left; "
                       "no personal data. An unknown number and wrong digits answer the same "
                       "404. At most `PERMITS_TRACK_PER_MINUTE` (default 10) requests a "
                       "minute per client, then 429 with Retry-After.")
    def track(self, request, principal, query):
        self._count_request(request)
        application = self._by_number(query["number"], PUBLIC_FIELDS)
        if not digits_match(application, query["last4"]):
            raise Problem(404, NOT_TRACKED, headers=NO_STORE)
        today = local_today(self.config)
        holidays = holidays_for(self.db, self.cache, application, today)
        return 200, status_view(application, today, holidays), NO_STORE

    @route("GET", f"{API}/verify/<code>", public=True, response=VerifyOut(), tags=TAGS,
           summary="Verify an issued permit by the code its QR carries (no login)",
           description="valid, expired or revoked, with the permit number, type, the holder's "
                       "name partly masked and the validity. An unknown code is a 404 problem "
                       "with `verification: unknown`. Never cached.")
    def verify_permit(self, request, principal, code):
        code = code.strip().upper()
        found = self.db[CODES].find_one({"_id": code}) if CODE.fullmatch(code) else None
        application = self.db[APPLICATIONS].find_one(
            {"_id": found["application"]}, VERIFY_FIELDS) if found else None
        answer = verification(application, local_today(self.config)) if application else None
        if answer is None:
            raise Problem(404, "No permit carries this verification code: the document was "
                               "not issued here, or the code was mistyped.",
                          headers=NO_STORE, extensions={"verification": "unknown"})
        unit = self.db[UNITS].find_one({"_id": application["opd"]}, {"name": 1}) or {}
        return 200, {**answer, "issued_by_name": unit.get("name")}, NO_STORE

    @rpc
    def public_status(self, registration_number, phone):
        """The WhatsApp "STATUS <number>" answer (notify module): ``PublicStatus``."""
        number = str(registration_number or "").strip().upper()
        try:
            e164 = normalize_phone(str(phone or ""))
        except ValueError:
            e164 = None
        application = self._by_number(number, PUBLIC_FIELDS)
        if not phone_match(application, e164):
            return PublicStatus().dump({"found": False})
        today = local_today(self.config)
        view = status_view(application, today,
                           holidays_for(self.db, self.cache, application, today))
        return PublicStatus().dump({
            "found": True, **{k: view[k] for k in ("registration_number", "type_name", "state",
                                                  "label", "days_used", "days_left")},
            "timeline": view["timeline"]})

    @setting_timer("PERMITS_LIMITS_PURGE_SECONDS", 300)
    def purge_limits(self):
        """Drop the rate-limit counters of minutes gone (the collection stays small)."""
        cutoff = db_now() - timedelta(minutes=2)
        self.db[LIMITS].delete_many({"at": {"$lt": cutoff}})
