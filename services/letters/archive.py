"""The archive: a finished letter is filed under its classification with its retention dates
(JRA: active for ``active_years`` after the year it was finished, inactive for
``inactive_years``, then due for its final disposition), a report lists the records due, and
the archivist's disposal decision is recorded once.

Filing is one compare-and-set write of the letter (``state`` archived, its ``archive`` record,
a timeline entry and ``letter.archived`` in its outbox); a repeat answers the record. The
handler of ``letter.archived`` files the record in ``archive`` (``_id`` the letter) and its id
in the bucket of its due month, ``due:<opd>:<yyyy-mm>``, listed by ``due:<opd>`` (insert-or-
keep and ``$addToSet``: a redelivery changes nothing). The report reads the buckets up to a
date, so it costs what is due, not what is stored; a decision (compare-and-set on
``decision: null`` and the due date read, with who and when) takes its record out of its
bucket. ``reviewed_extended`` is the one decision that is not final: the record is kept
``extend_years`` longer, the review goes into its ``reviews`` and the record moves to the
bucket of its new due month (added there before the write, taken out of the old one after
it; the report skips an id whose record is due in another month), where the archivist meets
it again.
"""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pymongo.errors

from pamong.events.consumer import handles
from pamong.events.outbox import OUTBOX
from pamong.replica import UNITS
from pamong.storage import by_ids, db_now
from pamong.web import (
    Problem,
    conflict,
    decode_cursor,
    encode_cursor,
    forbidden,
    not_found,
    route,
    unprocessable,
)
from pamong.web import page_of as page_schema
from services.letters import domain
from services.letters.access import API
from services.letters.schemas import ArchiveBody, ArchiveOut, DecisionBody, DueQuery
from services.letters.store import ARCHIVE, CLASSIFICATIONS, LETTERS

TAGS = ["archive"]
ARCHIVISTS = ("opd_admin", "sekretariat")
FILED_FROM = (domain.SENT, domain.RECEIVED)
DATES = ("finished", "inactive_from", "disposition_due")


def archive_record(letter):
    """The ``archive`` document of a filed letter (from the record on the letter)."""
    return {"_id": letter["_id"], **letter["archive"],
            "number": letter.get("number") or letter.get("sender_number"),
            "unit": letter["unit"], "opd": letter.get("opd") or domain.opd_of(letter["unit"]),
            "decision": None}


def archive_out(record):
    return {**record, "id": record["_id"],
            **{k: date.fromisoformat(record[k]) for k in DATES},
            "reviews": [{**r, "previous_due": date.fromisoformat(r["previous_due"])}
                        for r in record.get("reviews", ())]}


def who(principal, employee=None):
    return {"nip": principal.nip, "title": None,
            "name": (employee or {}).get("display_name") or principal.name or principal.sub}


class ArchiveEndpoints:
    """Mixed into the letters service (needs ``db`` and ``outbox``)."""

    def _archivist_of(self, principal, unit):
        if not principal.can_read(unit):
            raise not_found()
        if not principal.can_write(unit):
            raise forbidden("Records are filed and decided by the archivists of the unit "
                            "(opd_admin or sekretariat of its OPD).")

    def _retention(self, code):
        found = by_ids(self.db[CLASSIFICATIONS], domain.classification_chain(code))
        effective = domain.effective_retention(code, found)
        if effective is None:
            raise conflict(f"Classification {code} and the codes above it have no retention: "
                           "an admin sets one (PUT /classifications/<code>).")
        return effective

    def _finished(self, letter):
        """The day the record was finished, in its unit's zone."""
        unit = self.db[UNITS].find_one({"_id": letter["unit"]}, {"timezone": 1}) or {}
        zone = ZoneInfo(unit.get("timezone") or "Asia/Jakarta")
        return domain.letter_date(letter).astimezone(zone).date()

    @route("POST", f"{API}/letters/<letter_id>/archive", roles=ARCHIVISTS + ("admin",),
           body=ArchiveBody(), response=ArchiveOut(), status=201, tags=TAGS,
           summary="File a sent or received letter under its classification with its "
                   "retention dates (a repeat answers the record)")
    def archive_letter(self, request, principal, letter_id, body):
        letter = self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})
        if letter is None:
            raise not_found()
        self._archivist_of(principal, letter["unit"])
        if letter["state"] == domain.ARCHIVED:
            return 200, self._record_of(letter)
        if letter["state"] not in FILED_FROM:
            raise Problem(409, f"A {letter['state']} letter cannot be archived: only a sent "
                               "or received one.",
                          extensions={"state": letter["state"],
                                      "allowed": domain.allowed_steps(letter["state"])})
        source, retention = self._retention(letter["classification"])
        finished = self._finished(letter)
        inactive_from, due = domain.retention_dates(finished, retention["active_years"],
                                                    retention["inactive_years"])
        at = db_now()
        record = {"classification": letter["classification"],
                  "retention": {**retention, "source": source},
                  "finished": finished.isoformat(), "inactive_from": inactive_from.isoformat(),
                  "disposition_due": due.isoformat(),
                  "final_disposition": retention["disposition"], "archived_at": at,
                  "archived_by": who(principal)}
        event = self.outbox.event("letter.archived", {
            "id": letter_id, "number": letter.get("number") or letter.get("sender_number"),
            "unit": letter["unit"], "opd": letter.get("opd"),
            "classification": letter["classification"], "archived_at": at,
            "inactive_from": inactive_from, "disposition_due": due,
            "final_disposition": retention["disposition"]}, opd=letter.get("opd"))
        written = self.outbox.update(LETTERS, {"_id": letter_id, "version": letter["version"]}, {
            "$set": {"state": domain.ARCHIVED, "archive": record, "updated_at": at},
            "$inc": {"version": 1},
            "$push": {"timeline": {"at": at, "nip": principal.nip, "name": principal.name,
                                   "step": "archive", "from": letter["state"],
                                   "to": domain.ARCHIVED, "note": body["note"]}}}, [event])
        if not written.matched_count:  # someone else filed it (or changed it) meanwhile
            again = self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})
            if again["state"] == domain.ARCHIVED:
                return 200, self._record_of(again)
            raise Problem(409, "The letter changed while it was being filed: read it again.",
                          extensions={"state": again["state"]})
        return archive_out(archive_record({**letter, "archive": record}))

    def _record_of(self, letter):
        return archive_out(self.db[ARCHIVE].find_one({"_id": letter["_id"]})
                           or archive_record(letter))

    def _file(self, letter):
        """The record in ``archive`` and in its due month's bucket (each idempotent)."""
        record = archive_record(letter)
        try:
            self.db[ARCHIVE].insert_one(record)
        except pymongo.errors.DuplicateKeyError:
            record = self.db[ARCHIVE].find_one({"_id": letter["_id"]})
        if record["decision"] is None:
            self._list_record_due(record["_id"], record["opd"], record["disposition_due"])
        return record

    @handles("letters", "letter.archived")
    def file_archived(self, event):
        letter = self.db[LETTERS].find_one({"_id": event.data["id"]}, {OUTBOX: 0})
        if letter is None or "archive" not in letter:  # nothing a retry could fix: DLQ
            raise ValueError(f"letter.archived names {event.data['id']}, not filed")
        self._file(letter)

    @route("GET", f"{API}/archive/due", roles=ARCHIVISTS + ("admin",), query=DueQuery(),
           response=page_schema(ArchiveOut()), tags=TAGS,
           problems={404: "The OPD is outside the caller's"},
           summary="Records due for their final disposition up to a day, still undecided, "
                   "earliest first")
    def archive_due(self, request, principal, query):
        opd = query["opd"] or (None if principal.is_pemda_wide else principal.read_root())
        if not opd:
            raise unprocessable({"opd": ["required for a Pemda-wide role"]})
        if not principal.can_read(opd):
            raise not_found()
        until = query["until"].isoformat()
        after = decode_cursor(query["cursor"])
        months = sorted(m for m in (self.db[ARCHIVE].find_one({"_id": f"due:{opd}"})
                                    or {}).get("months", ())
                        if m <= until[:7] and (not after or m >= after["m"]))
        buckets = by_ids(self.db[ARCHIVE], [f"due:{opd}:{m}" for m in months])
        keys = [(m, i) for m in months for i in sorted(
            (buckets.get(f"due:{opd}:{m}") or {}).get("ids", ()))]
        if after:
            keys = [k for k in keys if k > (after["m"], after["id"])]
        items, limit = [], query["limit"]
        for start in range(0, len(keys), limit + 1):  # stale ids (decided) are skipped
            chunk = keys[start:start + limit + 1]
            found = by_ids(self.db[ARCHIVE], [i for _, i in chunk])
            items += [(k, found[k[1]]) for k in chunk if k[1] in found
                      and found[k[1]]["decision"] is None
                      and found[k[1]]["disposition_due"][:7] == k[0]  # moved: listed there
                      and found[k[1]]["disposition_due"] <= until]
            if len(items) > limit:
                break
        page = items[:limit]
        return {"items": [archive_out(r) for _, r in page],
                "next_cursor": encode_cursor(dict(zip(("m", "id"), page[-1][0], strict=True)))
                if len(items) > limit else None}

    @route("POST", f"{API}/archive/<letter_id>/decision", roles=ARCHIVISTS + ("admin",),
           body=DecisionBody(), response=ArchiveOut(), tags=TAGS,
           summary="Record the disposal decision of a filed record (once)")
    def archive_decision(self, request, principal, letter_id, body):
        record = self.db[ARCHIVE].find_one({"_id": letter_id})
        if record is None:  # filed a moment ago, its handler not yet through: file it here
            letter = self.db[LETTERS].find_one({"_id": letter_id}, {OUTBOX: 0})
            if letter is None or "archive" not in letter:
                raise not_found()
            self._archivist_of(principal, letter["unit"])
            record = self._file(letter)
        self._archivist_of(principal, record["unit"])
        if body["decision"] not in domain.allowed_decisions(record["final_disposition"]):
            raise unprocessable({"decision": [
                f"a record scheduled {record['final_disposition']} may only be: "
                + ", ".join(domain.allowed_decisions(record["final_disposition"]))]})
        decision = {**body, "at": db_now(), "by": who(principal)}
        due = record["disposition_due"]
        if body["decision"] == "reviewed_extended":
            new_due = domain.extended(date.fromisoformat(due), body["extend_years"]).isoformat()
            self._list_record_due(letter_id, record["opd"], new_due)
            changes = {"$set": {"disposition_due": new_due},
                       "$push": {"reviews": {**decision, "previous_due": due}}}
        else:
            new_due, changes = None, {"$set": {"decision": decision}}
        written = self.db[ARCHIVE].update_one(
            {"_id": letter_id, "decision": None, "disposition_due": due}, changes)
        if not written.matched_count:
            raise _decided(self.db[ARCHIVE].find_one({"_id": letter_id}))
        if new_due is None or new_due[:7] != due[:7]:
            self.db[ARCHIVE].update_one({"_id": f"due:{record['opd']}:{due[:7]}"},
                                        {"$pull": {"ids": letter_id}})
        return archive_out(self.db[ARCHIVE].find_one({"_id": letter_id}))

    def _list_record_due(self, record_id, opd, due):
        """The record's id in the bucket of its due month (idempotent)."""
        month = due[:7]
        self.db[ARCHIVE].update_one({"_id": f"due:{opd}"},
                                    {"$addToSet": {"months": month}}, upsert=True)
        self.db[ARCHIVE].update_one({"_id": f"due:{opd}:{month}"},
                                    {"$addToSet": {"ids": record_id}}, upsert=True)


def _decided(record):
    """The 409 of a decision that lost: another was recorded, or a review moved the record."""
    first = record["decision"]
    if first is None:
        review = record["reviews"][-1]
        return Problem(409, f"The record was reviewed and kept until {record['disposition_due']}"
                            f" by {review['by']['name']} at {_iso(review['at'])}: read it "
                            "again.", extensions={"decision": "reviewed_extended",
                                                  "disposition_due": record["disposition_due"]})
    return Problem(409, f"The decision was recorded already: {first['decision']} by "
                        f"{first['by']['name']} at {_iso(first['at'])}.",
                   extensions={"decision": first["decision"]})


def _iso(at):
    return at.isoformat() if isinstance(at, datetime) else str(at)
