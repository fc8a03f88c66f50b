"""Notify storage. Every hot-path read and write addresses one document by ``_id`` (the only
indexed filter on the local database); the only scans are the pending timer's (over the
backlog of notifications waiting for a time, not the history), the hourly retention purge and
the admin's searches.

Collections (``pamong_notify``), besides the directory replica (``units``, ``employees``,
``acting``):

- ``notifications``: ``_id`` ``domain.notification_id(event id, rule, recipient key)``; one
  per (source event, rule, recipient), with the content rendered once for every channel of
  the rule, the state, the channel in use, one delivery per channel tried (address, state,
  provider id, attempts ``{n, at, lease_until, outcome, error, latency_ms}``, statuses), the
  ``round`` (bumped by each ``notification.requested`` of the pending timer), ``due_at``,
  ``slot`` (a reserved pacing slot), ``version`` (compare-and-set), ``purged_at``.
- ``pending``: ``_id`` notification id; ``{due_at, reason, round, since}``: the
  notifications waiting for a time (quiet hours, pacing, rate, a retry, an unknown outcome).
- ``addresses``: ``_id "<channel>:<address>"``: ``{opted_out, opted_at, next_at (the next
  free pacing slot), last_inbound_at (WhatsApp's 24 h window), person}``.
- ``people``: ``_id`` person (NIP or sub): ``{channels: {<channel>: {opted_out}},
  updated_at, updated_by}``.
- ``rates``: ``_id "<channel>:<epoch second>"``: ``{n}`` sends in that second (all replicas).
- ``inbox``: ``_id "<person>:<YYYY-MM>"``: ``{items: {<notification id>: {title, body, at,
  read_at, event_type}}}``; ``_id "<person>"``: ``{unread}``.
- ``inbound``: ``_id`` the inbound WhatsApp message id: ``{from, text, at, received_at,
  handled}``.
"""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pymongo
import pymongo.errors

from pamong.events.consumer import apply_once
from pamong.events.outbox import OUTBOX
from pamong.storage import GroupInsert, Index, count, grouped

NOTIFICATIONS, PENDING, ADDRESSES, PEOPLE = "notifications", "pending", "addresses", "people"
RATES, INBOX, INBOUND = "rates", "inbox", "inbound"

# for the rare scans (admin searches, the purge, the pending timer); MongoDB uses them, the
# local database ignores them
INDEXES = [Index(PENDING, [("due_at", 1)]), Index(NOTIFICATIONS, [("created_at", 1)]),
           Index(NOTIFICATIONS, [("recipient.person", 1)]),
           Index(NOTIFICATIONS, [("recipient.phone", 1)]),
           Index(NOTIFICATIONS, [("state", 1)]), Index(NOTIFICATIONS, [("event.id", 1)]),
           Index(INBOUND, [("received_at", 1)])]

WITHOUT_OUTBOX = {OUTBOX: 0}
# written by the whole-document transitions: everything that changes besides version
MUTABLE = ("state", "channel", "reason", "deliveries", "due_at", "slot", "updated_at")


def notification(db, notification_id):
    return db[NOTIFICATIONS].find_one({"_id": notification_id}, WITHOUT_OUTBOX)


def changes(before, after):
    """The ``$set`` of the fields a transition changed (whole fields: one write)."""
    return {key: after.get(key) for key in MUTABLE if before.get(key) != after.get(key)}


def write_transition(db, outbox, before, after, events):
    """Write ``after`` over ``before`` if nobody changed it meanwhile (compare-and-set on
    ``version``), with ``events`` in the same write. True when written; ``after`` then
    carries the new version."""
    update = {"$set": changes(before, after), "$inc": {"version": 1}}
    where = {"_id": before["_id"], "version": before["version"]}
    if events:  # the results of concurrent sends share one update request
        matched = outbox.update_grouped(NOTIFICATIONS, where, update, events)
    else:
        matched = outbox.update(NOTIFICATIONS, where, update, events).matched_count
    if matched:
        after["version"] = before["version"] + 1
        return True
    return False


# -- pending -------------------------------------------------------------------------------

def put_pending(db, notification_id, due_at, reason, round_, now):
    """List the notification as waiting until ``due_at`` (written *before* the notification
    says it waits, so a crash between the two leaves an entry the timer clears, never a
    notification nobody comes back to)."""
    db[PENDING].update_one({"_id": notification_id},
                           {"$set": {"due_at": due_at, "reason": reason, "round": round_},
                            "$setOnInsert": {"since": now}}, upsert=True)


def watch_claim(db, notification_id, lease_until, round_, now):
    """Have the timer look at a notification another worker is sending once that worker's
    claim runs out (it may have died), but never earlier than an entry says. The sender
    writes the entry of its result (a retry, an unknown outcome's window) before its
    compare-and-set; replacing it with the earlier lease would have the timer wake the
    notification before its time and drop the entry it waits on, leaving it for good.
    ``$max`` only ever moves an entry later (also a stale one the timer is about to delete
    by its old time, so the watch survives that delete)."""
    db[PENDING].update_one({"_id": notification_id},
                           {"$max": {"due_at": lease_until},
                            "$setOnInsert": {"reason": "unknown_outcome", "round": round_,
                                             "since": now}}, upsert=True)


def drop_pending(db, notification_id):
    db[PENDING].delete_one({"_id": notification_id})


def due_pending(db, now, limit):
    return list(db[PENDING].find({"due_at": {"$lte": now}}).sort("due_at", 1).limit(limit))


# -- addresses: opt-out, pacing, the 24 h window -------------------------------------------

def address(db, key):
    return db[ADDRESSES].find_one({"_id": key})


def reserve_slot(db, key, now, pace_seconds):
    """Reserve the next pacing slot of an address: ``(slot time, address document)``.

    A new address (a citizen's first message, the common case) is created with its slot
    taken: an insert shared with the concurrent workers' (``GroupInsert``), and the slot is
    now. An address that exists costs that failed insert and then a compare-and-set: one
    write when its last slot has passed (the slot is now), else the next free slot
    (``next_at``) is read and taken, moved ``pace_seconds`` on, so messages to one person
    queue in order, each keeping its slot (first come, first served; nothing dropped).
    Workers racing for one new address: one insert wins, the others queue behind it. The
    document returned tells the caller the address's opt-out and 24 h window too. (The
    compare-and-sets stay ungrouped: each needs its document after, and the local
    database's replies to a multi-statement update name the wrong statement as failed.)"""
    pace = timedelta(seconds=pace_seconds)
    collection = db[ADDRESSES]
    created = {"_id": key, "next_at": now + pace}
    if grouped(GroupInsert, collection).insert(created):
        return now, created
    doc = collection.find_one_and_update(  # it exists: free when its last slot has passed
        {"_id": key, "next_at": {"$lte": now}}, {"$set": {"next_at": now + pace}},
        return_document=pymongo.ReturnDocument.AFTER)
    if doc is not None:
        return now, doc
    for _ in range(50):  # a slot ahead (or none: made by an opt-out)
        doc = collection.find_one({"_id": key}) or {}
        taken = doc.get("next_at")
        slot = now if taken is None or _aware(taken) <= now else _aware(taken)
        won = collection.find_one_and_update(
            {"_id": key, "next_at": taken}, {"$set": {"next_at": slot + pace}},
            return_document=pymongo.ReturnDocument.AFTER)
        if won is not None:
            return slot, won
    raise RuntimeError(f"could not reserve a pacing slot on {key} (contended)")


def _aware(at):
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def take_rate(db, channel, now, limit, grouped=None):
    """Count one send of ``channel`` in the current UTC second (every replica counts in the
    same document); the second to send in: now's when within ``limit``, else a later one
    spread by how far over the limit this send is. ``limit`` 0: no limit (no write).
    ``grouped`` (a ``GroupCount`` on ``rates``): concurrent workers share the write."""
    if not limit:
        return None
    second = int(now.timestamp())
    counter = f"{channel}:{second}"
    n = grouped.insert(counter) if grouped is not None else count(db[RATES], counter, 1)
    if n <= limit:
        return None
    return datetime.fromtimestamp(second + (n - 1) // limit, UTC)


def drop_rates(db, channels, from_second, to_second):
    """Delete the rate counters of the seconds ``[from_second, to_second)`` by ``_id``."""
    ids = [f"{c}:{s}" for c in channels for s in range(from_second, to_second)]
    for start in range(0, len(ids), 500):
        db[RATES].delete_many({"_id": {"$in": ids[start:start + 500]}})


# -- the in-app inbox ------------------------------------------------------------------------

def inbox_month_id(person, at):
    return f"{person}:{at:%Y-%m}"


def inbox_write(db, person, notification_id, item, at):
    """Put the item in the person's inbox of that month, exactly once (the write requires
    ``items.<id>`` absent), and count it unread once (``apply_once`` keyed by the
    notification id, so a repeat after a crash between the two writes counts it once)."""
    month = inbox_month_id(person, at)
    try:
        db[INBOX].update_one({"_id": month, f"items.{notification_id}": {"$exists": False}},
                             {"$set": {f"items.{notification_id}": item}}, upsert=True)
    except pymongo.errors.DuplicateKeyError:
        pass  # the month exists and holds the item already
    apply_once(db[INBOX], {"_id": person}, {"$inc": {"unread": 1}},
               SimpleNamespace(id=notification_id), upsert=True)


# -- preferences (read often, changed rarely) -------------------------------------------------

def person_prefs(db, cache, person):
    if not person:
        return None
    return cache.get(("people", person), lambda: db[PEOPLE].find_one({"_id": person}))
