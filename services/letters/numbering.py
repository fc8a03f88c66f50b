"""Letter numbers: handed out at signing, never twice, with no gap that is not on record.

A number comes from a counter (``counters``, ``_id "<unit>:<kind or *>:<year>"``) by one
atomic ``$inc`` (``find_one_and_update``, safe across replicas: the database serialises the
writes of one document; the signers a process serves at once share one ``$inc`` by how many
they are, and one ``insert_many`` of their claims: ``GroupAllocate``). The number is then
*claimed*: an insert of ``numbers`` ``{_id: "<counter>:<n>"}`` naming the letter. The unique
``_id`` makes the claim the proof of who holds a number; then the letter is written signed
with it.

What a crash or a race leaves, and who settles it (``settle``, on a timer in every replica;
each action is a unique insert or a compare-and-set, so two replicas settling at once agree):
- a number handed out but never claimed (the process died between the ``$inc`` and the
  insert): once the counter has been quiet for the grace period, the number is claimed as
  ``cancelled`` with the reason. Should the slow signer arrive after all, its insert meets
  the claim and it takes the next number;
- a claim whose letter was never signed with it (died before the letter write, or the letter
  changed meanwhile): after the grace period the claim becomes ``cancelled`` with the reason.
  A signer that loses the race on the letter cancels its own claim at once.
**Reserved blocks** (``reserve``): for an outage, an ``opd_admin`` takes a block of numbers to
use on paper. The block is written into the counter itself (``blocks``) by the same
compare-and-set that moves ``next`` past it, so it can never be lost half-way: each number of
the block gets a ``reserved`` claim (by the request, or by ``settle`` should the request die
before), and later a ``paper`` claim saying what it was used for, or ``cancelled`` with why.
``checked`` on the counter marks how far every number is accounted for, so a settle round
reads only the numbers handed out since the last one: its cost follows the signing, not the
archive. The register of a counter (``register``) therefore shows every number from 1 on:
used by a letter, or cancelled with a reason.
"""

import logging
from datetime import UTC, datetime, timedelta

import pymongo

from pamong.storage import GroupInsert, by_ids, grouped, insert_each
from services.letters import domain
from services.letters.store import COUNTERS, LETTERS, NUMBERING, NUMBERS, claim_id

log = logging.getLogger(__name__)

SETTLE_BATCH = 2000  # numbers looked at per counter and round
RESERVE_TRIES = 200  # compare-and-set attempts against signers taking numbers meanwhile


def configs_for(db, cache, unit):
    """``{unit code: numbering config}`` of ``unit`` and its ancestors (cached briefly)."""
    chain = unit_chain(unit)
    return cache.get(("numbering", unit), lambda: by_ids(db[NUMBERING], chain))


def unit_chain(unit):
    """``3510.03.01`` -> ``[3510.03.01, 3510.03, 3510]``."""
    parts = unit.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def allocate(db, counter, letter_id, render, by, at):
    """The next number of ``counter``, claimed for ``letter_id``: ``(n, printed number)``.
    ``render(n)`` prints it. The signers a process serves at the same moment share one
    ``$inc`` per counter and one insert of their claims (``GroupAllocate``)."""
    return grouped(GroupAllocate, db[COUNTERS]).insert((counter, letter_id, render, by, at))


class GroupAllocate(GroupInsert):
    """The group commit of ``allocate``: the batch's signers of one counter take their numbers
    by one ``$inc`` of how many they are (in the order they asked), then every claim is
    inserted in one ``insert_many``. A claim that meets a ``cancelled`` one (a settle round
    took this process for dead) takes the next number, as a lone signer would."""

    def _write(self, asks):
        numbers = self.collection.database[NUMBERS]
        outcomes = [None] * len(asks)
        waiting = list(range(len(asks)))
        while waiting:
            claims = {}
            for counter in dict.fromkeys(asks[i][0] for i in waiting):
                mine = [i for i in waiting if asks[i][0] == counter]
                doc = self.collection.find_one_and_update(
                    {"_id": counter}, {"$inc": {"next": len(mine)},
                                       "$set": {"at": max(asks[i][4] for i in mine)}},
                    upsert=True, return_document=pymongo.ReturnDocument.AFTER)
                for n, i in enumerate(mine, start=doc["next"] - len(mine) + 1):
                    _, letter_id, render, by, at = asks[i]
                    try:  # a number it cannot print stays unclaimed: settle cancels it
                        claims[i] = {"_id": claim_id(counter, n), "counter": counter, "n": n,
                                     "status": "used", "number": render(n),
                                     "letter": letter_id, "at": at, "by": by}
                    except Exception as exc:  # noqa: BLE001 - that signer's own error
                        outcomes[i] = exc
            order = list(claims)
            written = insert_each(numbers, [claims[i] for i in order]) if order else []
            waiting = []
            for i, outcome in zip(order, written, strict=True):
                if outcome is False:
                    log.warning("number %s of %s was cancelled before its claim; taking the "
                                "next", claims[i]["n"], claims[i]["counter"])
                    waiting.append(i)
                else:
                    outcomes[i] = (claims[i]["n"], claims[i]["number"]) if outcome is True \
                        else outcome
        return outcomes


def reserve(db, counter, count, block, at):
    """Take ``count`` numbers of ``counter`` in one block: ``block`` (id, who, why, the
    scheme) is stored in the counter with ``first``/``last`` by the write that moves ``next``
    past them; then each number is claimed ``reserved``. Returns the block. A block with the
    same ``id`` already there (a repeated request) is returned as it is."""
    for _ in range(RESERVE_TRIES):
        doc = db[COUNTERS].find_one_and_update(
            {"_id": counter}, {"$setOnInsert": {"next": 0}}, upsert=True,
            return_document=pymongo.ReturnDocument.AFTER)
        if found := block_of(doc, block["id"]):
            break
        first = doc["next"] + 1
        found = {**block, "first": first, "last": first + count - 1, "at": at}
        if db[COUNTERS].update_one({"_id": counter, "next": doc["next"]},
                                   {"$set": {"next": found["last"], "at": at},
                                    "$push": {"blocks": found}}).matched_count:
            break
    else:
        raise RuntimeError(f"counter {counter} too busy to reserve a block; try again")
    claim_reserved(db, counter, found)
    return found


def block_of(counter_doc, block_id):
    return next((b for b in (counter_doc or {}).get("blocks", []) if b["id"] == block_id),
                None)


def claim_reserved(db, counter, block, numbers=None):
    """Claim the numbers of ``block`` (or those of ``numbers`` in it) as ``reserved``; a
    number claimed already keeps its claim."""
    claims = [{"_id": claim_id(counter, n), "counter": counter, "n": n, "status": "reserved",
               "number": None, "letter": None, "block": block["id"], "at": block["at"],
               "by": block["by"]}
              for n in numbers or range(block["first"], block["last"] + 1)]
    try:
        db[NUMBERS].insert_many(claims, ordered=False)
    except pymongo.errors.BulkWriteError as exc:
        if any(e["code"] != 11000 for e in exc.details["writeErrors"]):
            raise


def record_paper_use(db, counter, n, use, by, at):
    """Turn the ``reserved`` claim of ``n`` into ``paper`` (what it was used for) or
    ``cancelled`` (``use`` has a ``reason``); None when it is not reserved (any more)."""
    if use.get("reason"):
        changes = {"status": "cancelled", "reason": use["reason"], "cancelled_at": at,
                   "cancelled_by": by}
    else:
        changes = {"status": "paper", "number": use["number"], "paper": use["paper"],
                   "recorded_at": at, "recorded_by": by}
    return db[NUMBERS].find_one_and_update(
        {"_id": claim_id(counter, n), "status": "reserved"}, {"$set": changes},
        return_document=pymongo.ReturnDocument.AFTER)


def cancel(db, counter, n, reason, by="system"):
    """Turn the claim of ``n`` into ``cancelled`` (kept on record with the reason)."""
    db[NUMBERS].update_one({"_id": claim_id(counter, n), "status": "used"},
                           {"$set": {"status": "cancelled", "reason": reason,
                                     "cancelled_at": datetime.now(UTC), "cancelled_by": by}})


def settle(db, grace_seconds, now=None):
    """Account for every number handed out: cancel (with the reason) what a dead process or
    a lost race left unclaimed or unused, once older than ``grace_seconds``; advance each
    counter's ``checked``. Returns the numbers cancelled."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=grace_seconds)
    cancelled = 0
    # counters are few (units x kinds x years): reading them all is cheap
    for counter in db[COUNTERS].find({}, {"next": 1, "checked": 1, "at": 1, "blocks": 1}):
        checked = counter.get("checked", 0)
        if counter["next"] <= checked:
            continue
        done, count = _settle_counter(db, counter, checked, cutoff)
        cancelled += count
        if done > checked:
            db[COUNTERS].update_one({"_id": counter["_id"], "checked": counter.get("checked")},
                                    {"$set": {"checked": done}})
    return cancelled


def _settle_counter(db, counter, checked, cutoff):
    """``(highest n up to which every number is accounted for, numbers cancelled)``."""
    key = counter["_id"]
    last = min(counter["next"], checked + SETTLE_BATCH)
    claims = by_ids(db[NUMBERS], [claim_id(key, n) for n in range(checked + 1, last + 1)])
    letters = by_ids(db[LETTERS], {c["letter"] for c in claims.values() if c.get("letter")},
                     {"number_claim": 1})
    quiet = _aware(counter.get("at")) <= cutoff
    done, cancelled = checked, 0
    for n in range(checked + 1, last + 1):
        claim = claims.get(claim_id(key, n))
        block = next((b for b in counter.get("blocks", []) if b["first"] <= n <= b["last"]),
                     None)
        if claim is None and block:  # the reserving request stopped before its claims
            claim_reserved(db, key, block, [n])
        elif claim is None:
            if not quiet:
                break  # its signer may be between the $inc and the claim
            try:
                db[NUMBERS].insert_one({
                    "_id": claim_id(key, n), "counter": key, "n": n, "status": "cancelled",
                    "number": None, "letter": None, "at": cutoff,
                    "reason": "handed out but never claimed: the signing process stopped",
                    "cancelled_at": datetime.now(UTC), "cancelled_by": "system"})
                cancelled += 1
            except pymongo.errors.DuplicateKeyError:
                break  # claimed just now: look again next round
        elif claim["status"] == "used" and (
                letters.get(claim["letter"], {}).get("number_claim") != claim["_id"]):
            if _aware(claim["at"]) > cutoff:
                break  # its letter is being written
            cancel(db, key, n, "claimed, but the letter was not signed with it (the signing "
                               "process stopped or the letter changed meanwhile)")
            cancelled += 1
        done = n
    return done, cancelled


def _aware(at):
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def register(db, counter, first, limit):
    """The claims of ``counter`` from number ``first`` on, in order (at most ``limit``)."""
    doc = db[COUNTERS].find_one({"_id": counter}, {"next": 1, "checked": 1})
    if doc is None:
        return None, []
    last = min(doc["next"], first + limit - 1)
    claims = by_ids(db[NUMBERS], [claim_id(counter, n) for n in range(first, last + 1)])
    return doc, [claims.get(claim_id(counter, n)) or {"n": n, "status": "pending"}
                 for n in range(first, last + 1)]


def check_config(body):
    """Problems of a numbering configuration (field -> messages)."""
    errors = {}
    for field, template in [("template", body["template"]),
                            *((f"kinds.{k}", t) for k, t in (body.get("kinds") or {}).items())]:
        if problems := domain.check_template(template):
            errors[field] = problems
    for kind in body.get("kinds") or {}:
        if not domain.KIND_CODE.match(kind):
            errors.setdefault(f"kinds.{kind}", []).append("not a kind code")
    return errors
