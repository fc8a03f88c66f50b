"""Dispositions: the head of a receiving unit sends a received letter on to people below
with an instruction, a due date and an urgency; each of them may pass it further down (a
tree), read it, finish it with a follow-up note; its author may cancel it while it is unread.

Each disposition is one document in ``dispositions`` (``_id`` a uuid); every step is one
compare-and-set write of it with its event in the same write (``disposition.assigned``,
``disposition.completed``, ``disposition.overdue``), so two concurrent cancels or completions
land once and the other answers 409 naming the state it found. Cancelling requires
``read_at: null`` in the same write, and reading (or passing it on, or completing it) sets
``read_at`` only while it is not cancelled: whichever comes first wins.

Before a disposition is written its people join the letter's ``chain`` (who may see it,
access.py) and its id joins its receipt's ``dispositions`` (the tree is one ``$in`` read);
both are ``$addToSet``, so a crash before the insert only leaves an id that reads as nothing.

**Overdue** without scanning: a disposition with a due date is listed in the bucket of the
UTC day it becomes overdue (``_id "due:<yyyy-mm-dd>"``; a date already past goes in today's),
and ``due:checked`` holds the last day whose bucket is settled (every disposition in it done,
cancelled or reported). A round of the timer reads the buckets after it up to today and
their dispositions by ``_id``: its cost follows the dispositions falling due, not all of
them. Reporting is a compare-and-set ``overdue_sent: false -> true`` with the event, so two
replicas' timers report each once. The watermark stays two days behind today, so a
disposition made around midnight cannot land in a bucket already settled.
"""

import logging
import uuid
from datetime import date, timedelta

from pamong.auth.principal import in_subtree
from pamong.events.outbox import OUTBOX
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import by_ids, db_now
from pamong.timers import setting_timer
from pamong.web import Problem, forbidden, not_found, route, unprocessable
from pamong.web.idempotency import idempotency_key
from services.letters import domain
from services.letters.access import API, DRAFTERS
from services.letters.flow import person, secret_subject
from services.letters.mail import disposition_out, receipt_id, tree_out
from services.letters.schemas import (
    CancelBody,
    CompleteBody,
    DispositionBody,
    DispositionList,
    DispositionOut,
)
from services.letters.store import DISPOSITIONS, LETTERS, RECEIPTS

log = logging.getLogger(__name__)

TAGS = ["dispositions"]
KEY_IDS = uuid.UUID("9b4e2f17-c3a8-4d5e-8f61-0a7d2c9e5b34")  # disposition ids from a key
WATERMARK = "due:checked"


def bucket_id(day):
    return f"due:{day.isoformat()}"


def _state_conflict(d, doing):
    state = domain.disposition_state(d)
    return Problem(409, f"The disposition is {state}: it cannot be {doing}.",
                   extensions={"state": state})


class DispositionEndpoints:
    """Mixed into the letters service (uses MailEndpoints' access helpers)."""

    # -- reading -------------------------------------------------------------------------

    def _visible_disposition(self, principal, disposition_id):
        d = self.db[DISPOSITIONS].find_one({"_id": disposition_id}, {OUTBOX: 0})
        if d is None or "receipt" not in d:  # a due bucket is not a disposition
            raise not_found()
        try:
            receipt, letter = self._visible_receipt(principal, d["receipt"])
        except Problem:
            if not d["cancelled"]:  # cancelled since it was read (the cancel took the access)
                d = self.db[DISPOSITIONS].find_one({"_id": disposition_id}, {OUTBOX: 0}) or d
            if d["cancelled"] and d["to"]["nip"] == principal.nip:
                # its recipient was told of it: they learn it was cancelled, not the letter
                raise Problem(409, "The disposition was cancelled: the letter is no longer "
                                   "yours to see.", extensions={"state": "cancelled"}) from None
            raise
        return d, receipt, letter

    def _read(self, d, nip):
        """Mark it read by its recipient (once; never once cancelled): the stored one."""
        if d["to"]["nip"] == nip and d["read_at"] is None and not d["cancelled"]:
            self.db[DISPOSITIONS].update_one({"_id": d["_id"], "read_at": None,
                                              "cancelled": None},
                                             {"$set": {"read_at": db_now()}})
            return self.db[DISPOSITIONS].find_one({"_id": d["_id"]}, {OUTBOX: 0})
        return d

    def _with_children(self, d, receipt):
        tree = by_ids(self.db[DISPOSITIONS], receipt["dispositions"], {OUTBOX: 0})
        return disposition_out(d, tree_out(domain.disposition_tree(tree.values(), d["_id"])))

    @route("GET", f"{API}/dispositions/<disposition_id>", roles=DRAFTERS + ("sekretariat",
                                                                             "admin"),
           response=DispositionOut(), tags=TAGS,
           summary="A disposition with the ones under it; its recipient reading it marks it "
                   "read")
    def get_disposition(self, request, principal, disposition_id):
        d, receipt, _ = self._visible_disposition(principal, disposition_id)
        return self._with_children(self._read(d, principal.nip), receipt)

    @route("POST", f"{API}/dispositions/<disposition_id>/read", roles=DRAFTERS,
           response=DispositionOut(), tags=TAGS, summary="Mark read (its recipient)")
    def read_disposition(self, request, principal, disposition_id):
        d, receipt, _ = self._visible_disposition(principal, disposition_id)
        if d["to"]["nip"] != principal.nip:
            raise forbidden("Only the person it was sent to reads it.")
        d = self._read(d, principal.nip)
        if d["cancelled"]:
            raise _state_conflict(d, "read")
        return self._with_children(d, receipt)

    # -- disposing -----------------------------------------------------------------------

    @route("POST", f"{API}/receipts/<receipt_key>/dispositions", roles=DRAFTERS,
           body=DispositionBody(), response=DispositionList(), status=201, tags=TAGS,
           summary="Dispose a received letter to people of the receiving unit (its head, or "
                   "the Plt/Plh acting as its head today); Idempotency-Key optional",
           description="One disposition per person in `to`, each in the receiving unit or a "
                       "unit below it. A head of a unit above the receiving one may dispose "
                       "it too.")
    def dispose_receipt(self, request, principal, receipt_key, body):
        receipt, letter = self._visible_receipt(principal, receipt_key)
        led = self._led(principal)
        if not any(in_subtree(receipt["unit"], unit) for unit in led):
            raise forbidden("Only the head of the receiving unit (or its Plt/Plh today) "
                            "disposes the letter.")
        author = self.db[EMPLOYEES].find_one({"_id": principal.nip})
        return self._dispose(request, author, receipt, letter, None, body,
                             scope=receipt["unit"], path=[principal.nip])

    @route("POST", f"{API}/dispositions/<disposition_id>/dispositions", roles=DRAFTERS,
           body=DispositionBody(), response=DispositionList(), status=201, tags=TAGS,
           summary="Pass a disposition further down (its recipient, to people of their unit "
                   "or below); Idempotency-Key optional")
    def dispose_further(self, request, principal, disposition_id, body):
        parent, receipt, letter = self._visible_disposition(principal, disposition_id)
        if parent["to"]["nip"] != principal.nip:
            raise forbidden("Only the person it was sent to passes it on.")
        parent = self._read(parent, principal.nip)
        if parent["cancelled"] or parent["completed_at"]:
            raise _state_conflict(parent, "passed on")
        author = self.db[EMPLOYEES].find_one({"_id": principal.nip})
        if author is None or author.get("status") != "active":
            raise forbidden("You are not an active employee of this Pemda's directory.")
        return self._dispose(request, author, receipt, letter, parent, body,
                             scope=author["unit"], path=parent["path"])

    def _dispose(self, request, author, receipt, letter, parent, body, scope, path):
        employees = by_ids(self.db[EMPLOYEES], body["to"])
        if problems := domain.recipient_problems(employees, body["to"], scope, path):
            raise unprocessable({"to": problems})
        key = idempotency_key(request)
        ids = [(uuid.uuid5(KEY_IDS, f"{author['_id']}:{key}:{nip}") if key
                else uuid.uuid4()).hex for nip in body["to"]]
        at = db_now()
        due, overdue_at = body["due"], None
        if due:
            zone = (self.db[UNITS].find_one({"_id": receipt["unit"]}) or {}).get("timezone")
            overdue_at = domain.overdue_at(due, zone or "Asia/Jakarta")
        common = {"letter": letter["_id"], "receipt": receipt["_id"], "unit": receipt["unit"],
                  "opd": receipt["opd"], "parent": parent and parent["_id"],
                  "by": person(author), "instruction": body["instruction"],
                  "due": due and due.isoformat(), "overdue_at": overdue_at,
                  "urgency": body["urgency"] or letter["urgency"], "created_at": at,
                  "read_at": None, "cancelled": None, "completed_at": None, "note": None,
                  "overdue_sent": False}
        docs = []
        for disposition_id, nip in zip(ids, body["to"], strict=True):
            employee = employees[nip]
            doc = {"_id": disposition_id, **common, "path": [*path, nip],
                   "to": {**person(employee), "unit": employee["unit"]}}
            docs.append((doc, [self.outbox.event("disposition.assigned", {
                "id": disposition_id, "letter": letter["_id"], "receipt": receipt["_id"],
                "unit": receipt["unit"], "opd": receipt["opd"], "by": author["_id"],
                "to": nip, "parent": common["parent"], "instruction": body["instruction"],
                "due": due, "urgency": common["urgency"], "subject": secret_subject(letter)},
                opd=receipt["opd"])]))
        # access first (the recipients may see the letter when their event arrives), then
        # the tree and the due bucket, then the dispositions with their events
        self.db[LETTERS].update_one({"_id": letter["_id"]}, {
            "$addToSet": {"chain": {"$each": [author["_id"], *body["to"]]}}})
        self.db[RECEIPTS].update_one({"_id": receipt["_id"]},
                                     {"$addToSet": {"dispositions": {"$each": ids}}})
        if due:
            self._list_due(ids, overdue_at, at)
        repeated = self.outbox.insert_many(DISPOSITIONS, docs)
        stored = by_ids(self.db[DISPOSITIONS], ids, {OUTBOX: 0}) if repeated else {
            doc["_id"]: doc for doc, _ in docs}
        items = [disposition_out(stored[i]) for i in ids]
        return (200 if len(repeated) == len(ids) else 201), {"items": items}

    def _list_due(self, ids, overdue_at, now):
        day = max(overdue_at.date(), now.date())  # UTC days; a past date: today's bucket
        self.db[DISPOSITIONS].update_one({"_id": bucket_id(day)},
                                         {"$addToSet": {"ids": {"$each": ids}}}, upsert=True)
        # the first bucket ever starts the watermark just before it
        self.db[DISPOSITIONS].update_one({"_id": WATERMARK},
                                         {"$min": {"day": (day - timedelta(days=1)).isoformat()}},
                                         upsert=True)

    # -- cancel and complete ---------------------------------------------------------------

    @route("POST", f"{API}/dispositions/<disposition_id>/cancel", roles=DRAFTERS,
           body=CancelBody(), response=DispositionOut(), tags=TAGS,
           summary="Cancel a disposition while it is unread (its author); read: 409")
    def cancel_disposition(self, request, principal, disposition_id, body):
        d, receipt, _ = self._visible_disposition(principal, disposition_id)
        if d["by"]["nip"] != principal.nip:
            raise forbidden("Only its author cancels a disposition.")
        at = db_now()
        written = self.db[DISPOSITIONS].update_one(
            {"_id": d["_id"], "read_at": None, "cancelled": None, "completed_at": None},
            {"$set": {"cancelled": {"at": at, "by": principal.nip, "note": body["note"]}}})
        d = self.db[DISPOSITIONS].find_one({"_id": d["_id"]}, {OUTBOX: 0})
        if not written.modified_count:
            raise _state_conflict(d, "cancelled")
        self._unchain(d["letter"], d["to"]["nip"])
        return self._with_children(d, receipt)

    def _in_live_disposition(self, letter_id, nip):
        letter = self.db[LETTERS].find_one({"_id": letter_id}, {"receivers": 1})
        receipts = by_ids(self.db[RECEIPTS], [receipt_id(letter_id, unit) for unit in
                                              (letter or {}).get("receivers", ())],
                          {"dispositions": 1})
        ids = [i for r in receipts.values() for i in r.get("dispositions", ())]
        return any(d.get("cancelled") is None and nip in (d["by"]["nip"], d["to"]["nip"])
                   for d in by_ids(self.db[DISPOSITIONS], ids, {"by": 1, "to": 1,
                                                                "cancelled": 1}).values())

    def _unchain(self, letter_id, nip):
        """The recipient of a cancelled disposition leaves the letter's access list, unless
        another live disposition of the letter names them. Checked again after the pull: a
        disposition to them written meanwhile (chain first, then the document) puts them
        back."""
        if self._in_live_disposition(letter_id, nip):
            return
        self.db[LETTERS].update_one({"_id": letter_id}, {"$pull": {"chain": nip}})
        if self._in_live_disposition(letter_id, nip):
            self.db[LETTERS].update_one({"_id": letter_id}, {"$addToSet": {"chain": nip}})

    @route("POST", f"{API}/dispositions/<disposition_id>/complete", roles=DRAFTERS,
           body=CompleteBody(), response=DispositionOut(), tags=TAGS,
           summary="Finish a disposition with a follow-up note (its recipient; once)")
    def complete_disposition(self, request, principal, disposition_id, body):
        d, receipt, _ = self._visible_disposition(principal, disposition_id)
        if d["to"]["nip"] != principal.nip:
            raise forbidden("Only the person it was sent to completes it.")
        d = self._read(d, principal.nip)
        at = db_now()
        event = self.outbox.event("disposition.completed", {
            **self._identity(d), "completed_at": at, "note": body["note"]}, opd=d["opd"])
        written = self.outbox.update(
            DISPOSITIONS, {"_id": d["_id"], "cancelled": None, "completed_at": None},
            {"$set": {"completed_at": at, "note": body["note"]}}, [event])
        d = self.db[DISPOSITIONS].find_one({"_id": d["_id"]}, {OUTBOX: 0})
        if not written.matched_count:
            raise _state_conflict(d, "completed")
        return self._with_children(d, receipt)

    @staticmethod
    def _identity(d):
        return {"id": d["_id"], "letter": d["letter"], "receipt": d["receipt"],
                "unit": d["unit"], "opd": d["opd"], "by": d["by"]["nip"], "to": d["to"]["nip"]}

    # -- overdue -------------------------------------------------------------------------

    @setting_timer("LETTERS_OVERDUE_INTERVAL_SECONDS", 60)
    def report_overdue(self):
        """Report the dispositions that fell due unfinished (module docstring)."""
        if reported := self._overdue(db_now()):
            log.info("%d disposition(s) overdue reported", reported)

    def _overdue(self, now):
        mark = self.db[DISPOSITIONS].find_one({"_id": WATERMARK})
        if mark is None:  # no disposition was ever given a due date
            return 0
        checked = date.fromisoformat(mark["day"])
        days = [checked + timedelta(days=n) for n in range(1, (now.date() - checked).days + 1)]
        buckets = {date.fromisoformat(b["_id"][4:]): b["ids"] for b in by_ids(
            self.db[DISPOSITIONS], [bucket_id(day) for day in days]).values()}
        found = by_ids(self.db[DISPOSITIONS], [i for ids in buckets.values() for i in ids],
                       {OUTBOX: 0})
        report, settled = domain.overdue_round(checked, now, buckets, found)
        reported = 0
        for d in report:
            event = self.outbox.event("disposition.overdue", {
                **self._identity(d), "due": date.fromisoformat(d["due"])}, opd=d["opd"])
            reported += self.outbox.update(
                DISPOSITIONS, {"_id": d["_id"], "overdue_sent": False, "cancelled": None,
                               "completed_at": None},
                {"$set": {"overdue_sent": True, "overdue_reported_at": now}},
                [event]).modified_count
        if settled > checked:
            self.db[DISPOSITIONS].update_one({"_id": WATERMARK, "day": mark["day"]},
                                             {"$set": {"day": settled.isoformat()}})
        return reported
