"""Delivery: letters reaching inboxes, external parties recorded as sent, incoming letters.

- **Internal delivery** (``letter.sent``): one receipt per internal unit, ``receipts
  {_id: "<letter>:<unit>"}``, inserted with its ``letter.received`` in the same write. The
  letter first gets the units in ``receivers`` (``$addToSet``, so their readers may see a
  Biasa letter by the time the receipt shows up). A redelivered or repeated ``letter.sent``
  finds the receipts (duplicate ``_id``) and publishes nothing again.
- **External parties**: ``POST /letters/<id>/dispatch`` records how one was sent (channel,
  reference, when), once per party: a repeat answers the first record.
- **Incoming letters** from outside: a clerk (``opd_admin`` or ``sekretariat`` with write
  scope over the receiving unit) registers one (``direction: incoming``, state ``received``,
  the sender's own number and date); its receipt and ``letter.received`` (source external)
  follow. The scan is attached with ``POST /letters/<id>/attachments`` (attachments.py).
"""

import logging
import uuid
from datetime import date

import pymongo

from pamong.events.consumer import handles
from pamong.events.outbox import OUTBOX
from pamong.replica import ACTING, EMPLOYEES, UNITS
from pamong.storage import by_ids, db_now
from pamong.web import conflict, forbidden, not_found, route, unprocessable
from pamong.web.idempotency import idempotency_key
from services.letters import domain
from services.letters.access import (
    API,
    CLERKS,
    DRAFTERS,
    MAIL_READERS,
    may_see,
    may_see_receipt,
)
from services.letters.attachments import AttachmentEndpoints
from services.letters.flow import letter_out, secret_subject
from services.letters.schemas import (
    DispatchBody,
    DispatchOut,
    IncomingBody,
    LetterOut,
    ReceiptOut,
)
from services.letters.store import DISPOSITIONS, LETTERS, RECEIPTS

log = logging.getLogger(__name__)

TAGS = ["mail"]
DELIVERIES_AT_ONCE = 4  # letter.sent events delivered at once per process (see lists.py)
KEY_IDS = uuid.UUID("3d1f7c4a-6b2e-4f80-a9c5-e27b4d61f0a8")  # incoming letter ids from a key


def receipt_id(letter_id, unit):
    return f"{letter_id}:{unit}"


def summary_of(letter):
    """What a receipt shows of its letter."""
    return {**letter, "id": letter["_id"], "direction": letter.get("direction", "outgoing"),
            "attachments": letter.get("attachments", [])}


def disposition_out(d, children=()):
    return {**d, "id": d["_id"], "state": domain.disposition_state(d),
            "overdue": bool(d.get("overdue_sent")), "children": list(children),
            "due": d["due"] and date.fromisoformat(d["due"])}


def tree_out(nodes):
    return [disposition_out(n, tree_out(n["children"])) for n in nodes]


class MailEndpoints(AttachmentEndpoints):
    """Mixed into the letters service (needs ``db``, ``outbox``, ``config`` and FlowEndpoints'
    ``_today``)."""

    # -- who may see what ----------------------------------------------------------------

    def _led(self, principal):
        """The units the caller heads today (own position, or Plt/Plh): access.py's
        leadership chain."""
        employee = principal.nip and self._employee(principal.nip)
        if not employee:
            return {}
        # the small acting collection, filtered as flow's signer rule reads it
        actings = list(self.db[ACTING].find({"nip": principal.nip}))
        return domain.units_led(employee, actings, self._today(employee["unit"]))

    def _sees(self, principal, letter):
        # the directory is read only when the cheap rules say no
        return may_see(principal, letter) or may_see(principal, letter, self._led(principal))

    def _visible_receipt(self, principal, receipt_key):
        receipt = self.db[RECEIPTS].find_one({"_id": receipt_key}, {OUTBOX: 0})
        letter = receipt and self.db[LETTERS].find_one({"_id": receipt["letter"]},
                                                       {OUTBOX: 0})
        if not letter or not (may_see_receipt(principal, receipt, letter) or may_see_receipt(
                principal, receipt, letter, self._led(principal))):
            raise not_found()
        return receipt, letter

    # -- delivery ------------------------------------------------------------------------

    def _receive(self, letter, unit, source, sender, number, at):
        """The unit's receipt of the letter with its ``letter.received`` (nothing when it is
        there already)."""
        receipt = {"_id": receipt_id(letter["_id"], unit["_id"]), "letter": letter["_id"],
                   "unit": unit["_id"], "opd": unit.get("opd"), "source": source,
                   "received_at": at, "read_at": None, "read_by": None,
                   "security": letter["security"], "urgency": letter["urgency"],
                   "subject": letter["subject"], "number": number, "sender": sender,
                   "dispositions": []}
        event = self.outbox.event("letter.received", {
            "id": receipt["_id"], "letter": letter["_id"], "unit": unit["_id"],
            "opd": unit.get("opd"), "source": source, "number": number, "sender": sender,
            "security": letter["security"], "urgency": letter["urgency"],
            "subject": secret_subject(letter), "received_at": at}, opd=unit.get("opd"))
        try:
            self.outbox.insert(RECEIPTS, receipt, [event])
        except pymongo.errors.DuplicateKeyError:
            pass  # delivered before: a repeated or redelivered event

    @handles("letters", "letter.sent", concurrency=DELIVERIES_AT_ONCE)
    def deliver_sent(self, event):
        """Each internal addressee and copy holder gets the letter in its unit's inbox."""
        sent = event.data
        letter = self.db[LETTERS].find_one({"_id": sent["id"]}, {OUTBOX: 0})
        if letter is None:  # nothing a retry could fix: the DLQ shows it with this reason
            raise ValueError(f"letter.sent names letter {sent['id']}, which does not exist")
        if not sent["internal"]:
            return
        units = by_ids(self.db[UNITS], [sent["unit"], *sent["internal"]])
        known = [code for code in dict.fromkeys(sent["internal"]) if code in units]
        self.db[LETTERS].update_one({"_id": letter["_id"]},
                                    {"$addToSet": {"receivers": {"$each": known}}})
        sender = units.get(sent["unit"], {}).get("name") or sent["unit"]
        at = db_now()
        for code in known:
            self._receive(letter, units[code], "internal", sender, sent["number"], at)
        if missing := sorted(set(sent["internal"]) - set(known)):
            # the replica lags the directory: retried (the others are delivered already and
            # stay so) until it catches up, then the DLQ shows it to an operator
            raise LookupError(f"units {', '.join(missing)} are not in the directory replica")

    @route("GET", f"{API}/receipts/<receipt_key>", roles=DRAFTERS + CLERKS + ("admin",),
           response=ReceiptOut(), tags=TAGS,
           summary="A letter in a unit's inbox (`<letter>:<unit>`) with its disposition tree",
           description="The first reading by a reader of the receiving unit marks it read.")
    def get_receipt(self, request, principal, receipt_key):
        receipt, letter = self._visible_receipt(principal, receipt_key)
        if receipt["read_at"] is None and principal.nip and principal.has_any(MAIL_READERS) \
                and principal.can_write(receipt["unit"]):
            at = db_now()
            if self.db[RECEIPTS].update_one({"_id": receipt["_id"], "read_at": None}, {
                    "$set": {"read_at": at, "read_by": principal.nip}}).modified_count:
                receipt = {**receipt, "read_at": at, "read_by": principal.nip}
        dispositions = by_ids(self.db[DISPOSITIONS], receipt["dispositions"], {OUTBOX: 0})
        return {**receipt, "id": receipt["_id"], "letter": summary_of(letter),
                "dispositions": tree_out(domain.disposition_tree(dispositions.values()))}

    # -- external parties ----------------------------------------------------------------

    @route("POST", f"{API}/letters/<letter_id>/dispatch", roles=DRAFTERS + CLERKS,
           body=DispatchBody(), response=DispatchOut(), status=201, replay_status=200,
           tags=TAGS,
           summary="Record how an external addressee or copy holder was sent the letter "
                   "(its drafter, or a clerk of its unit); once per party, a repeat answers "
                   "the first record")
    def dispatch_letter(self, request, principal, letter_id, body):
        letter = self._letter(principal, letter_id)
        if principal.nip != letter["drafter"]["nip"] and not (
                principal.has_any(CLERKS) and principal.can_write(letter["unit"])):
            raise forbidden("The letter's drafter or a clerk of its unit records its dispatch.")
        parties = letter.get(body["party"]) or []
        if body["index"] >= len(parties) or parties[body["index"]]["type"] != "external":
            raise unprocessable({"index": [f"{body['party']} has no external party at "
                                           f"{body['index']}"]})
        key = f"{body['party']}-{body['index']}"
        if first := (letter.get("dispatched") or {}).get(key):
            return 200, first
        if letter["state"] not in (domain.SENT, domain.ARCHIVED):
            raise conflict(f"A {letter['state']} letter is not sent yet: it is dispatched "
                           "once signed and sealed.")
        at = db_now()
        party = parties[body["index"]]
        record = {"party": body["party"], "index": body["index"], "name": party["name"],
                  "channel": body["channel"], "reference": body["reference"],
                  "at": body["at"] or at, "by": principal.nip or principal.sub,
                  "recorded_at": at}
        written = self.db[LETTERS].update_one(
            {"_id": letter_id, f"dispatched.{key}": {"$exists": False}},
            {"$set": {f"dispatched.{key}": record, "updated_at": at}, "$inc": {"version": 1},
             "$push": {"timeline": {"at": at, "nip": principal.nip, "name": principal.name,
                                    "step": "dispatch", "from": letter["state"],
                                    "to": letter["state"],
                                    "note": f"{party['name']}: {body['channel']}"}}})
        if not written.matched_count:  # a concurrent repeat recorded it first
            return 200, self.db[LETTERS].find_one({"_id": letter_id})["dispatched"][key]
        return record

    # -- incoming letters ----------------------------------------------------------------

    @route("POST", f"{API}/incoming", roles=CLERKS, body=IncomingBody(), response=LetterOut(),
           status=201, tags=TAGS,
           summary="Register a letter from outside for a unit in your write scope "
                   "(Idempotency-Key header optional: a repeat returns it); attach its scan "
                   "with POST /letters/<id>/attachments")
    def register_incoming(self, request, principal, body):
        if not principal.can_write(body["unit"]):
            raise forbidden("You register letters for your own unit and the units below it.")
        unit = self.db[UNITS].find_one({"_id": body["unit"]})
        if unit is None or not unit.get("active", True):
            raise unprocessable({"unit": [f"unknown unit {body['unit']}"]})
        key = idempotency_key(request)
        letter_id = (uuid.uuid5(KEY_IDS, f"{principal.sub}:{key}") if key
                     else uuid.uuid4()).hex
        letter = key and self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})
        status = 200
        if not letter:
            self._check_reference(body)
            letter, status = self._incoming(principal, body, unit, letter_id), 201
            try:
                self.db[LETTERS].insert_one(letter)
            except pymongo.errors.DuplicateKeyError:  # a concurrent repeat with the key
                letter, status = self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0}), 200
        # a repeat also finishes a first try that died before its receipt
        self._receive(letter, unit, "external", _sender_name(letter["sender"]),
                      letter["sender_number"], letter["created_at"])
        return status, letter_out(letter, principal.nip)

    def _incoming(self, principal, body, unit, letter_id):
        """An incoming letter: the clerk who registers it stands where an outgoing letter's
        drafter does (named: sees it), the sender where its signer does."""
        clerk = principal.nip and self.db[EMPLOYEES].find_one({"_id": principal.nip}) or {}
        at = db_now()
        received_on = body["received_on"] or self._today(unit["_id"])
        sender = body["sender"]
        return {
            "_id": letter_id, "direction": "incoming", "state": domain.RECEIVED, "version": 1,
            "step": 0, "unit": unit["_id"], "opd": unit.get("opd"),
            **{k: body[k] for k in ("kind", "classification", "security", "urgency",
                                    "subject", "sender", "sender_number")},
            "body": body["summary"], "sender_date": body["sender_date"].isoformat(),
            "received_on": received_on.isoformat(),
            "addressees": [{"type": "internal", "unit": unit["_id"], "name": unit["name"]}],
            "copies": [], "verifiers": [], "assignment": None,
            "drafter": {"nip": principal.nip,
                        "name": clerk.get("display_name") or principal.name, "title": None},
            "signer": {"nip": None, "name": sender["name"], "title": sender["organisation"],
                       "position": None, "acting": None},
            "number": None, "number_counter": None, "number_claim": None, "signed_at": None,
            "signed_by": None, "receivers": [unit["_id"]], "chain": [], "attachments": [],
            "words": domain.words(body["subject"], sender["name"], sender["organisation"],
                                  body["sender_number"]),
            "created_at": at, "updated_at": at,
            "timeline": [{"at": at, "nip": principal.nip, "name": principal.name,
                          "step": "register", "from": None, "to": domain.RECEIVED,
                          "note": None}],
        }


def _sender_name(sender):
    return sender.get("organisation") or sender["name"]
