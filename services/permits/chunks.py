"""Lists kept in documents of bounded size: the OPDs' work lists (``queues``), a citizen's
own applications (``owners``) and the timers' day lists (``due``).

A list of ids grows with the data; one document holding it would be rewritten whole by every
filing (the local database parses and rewrites the whole document: 1.5 ms at 20 ids, 14 ms at
2,000, 30 ms at 5,000). So every list is cut into **chunks of at most ``CHUNK`` ids**, and a
filing takes a place by ``$inc`` on a small counter: the place ``p`` (0, 1, ...) goes into
chunk ``p // CHUNK``. A place is never handed out twice, each filing puts one id in the chunk
of its place, so a chunk never holds more than ``CHUNK`` ids, however many applications enter
one state on one day.

- **Work lists** (``queues``, ``R = "<opd>:<state>"``; oldest first):
  - ``R``: ``months`` ``["YYYY-MM", ...]`` that hold entries (12 a year at most);
  - ``R:<YYYY-MM>``: ``days`` ``{"dDD": places handed out that day}`` and ``gone``
    ``{"dDD": places emptied}`` (31 of each at most), ``listed`` once ``R`` names the month.
    A day whose ``gone`` reached its count holds nothing and is not read. (``ids``: the
    month's entries as kept before the chunks: still read, and taken out as before;
    ``pamong permits rebuild-lists`` converts them.)
  - ``R:<YYYY-MM-DD>:<k>``: ``ids``, at most ``CHUNK``, of the applications that entered the
    state that (local) day, in the order they took their places;
  - ``R@<application>:<n>``: the **claim** of the application's entry into the state by its
    timeline entry ``n``: ``chunk``, where it is filed. A filing takes a place, inserts the
    claim (unique ``_id``), then adds the id to the chunk (``$addToSet``). A redelivered or
    concurrent filing of the same entry loses the insert, counts its place as gone and adds
    the id where the claim says (no change); one that crashed after its claim is completed
    so by the redelivery. Taking the entry out pulls the id from that chunk, then deletes the
    claim; whoever deleted it counts the place as gone (once). A crash between a place and
    its claim leaves a place never counted gone: the day is read (never hidden) until
    ``rebuild-lists``.
- **A citizen's list** (``owners``, newest first when read) and **the timers' days** (``due``,
  ``<kind>:<date>``): a head document ``n`` (places) and ``ids``, its first ``CHUNK`` itself
  (a citizen's: one write while ``n < CHUNK``, as for most citizens; a day's: a place, then
  the id, two writes busy day or not), then
  ``<sub>\x1f<k>`` / ``<kind>:<date>:<k>`` for ``k >= 1``. Only added to (the SLA round pulls
  what it settled); a listing repeated after a crash may list an id in two chunks, which the
  readers drop (a citizen's list) or read as a set (a day). A head from before the chunks
  (``applications`` of a citizen, ``ids`` of a day without ``n``) is read as before, takes
  ``CHUNK`` new ids more and then chunks: it never grows beyond what it held plus ``CHUNK``
  (a day's drains as its day passes; ``rebuild-lists`` rewrites the citizens').

Every write is one small document by ``_id``; none of them grows with the data.
"""

from datetime import datetime

import pymongo
from pymongo import ReturnDocument

CHUNK = 50  # ids per chunk document (a write on 50 ids costs about what one on 20 does)
OWNER_SEP = "\x1f"  # between a sub and its chunk number (no sub a token carries has it)


# -- small writes -------------------------------------------------------------------------------

def upsert(collection, doc_id, update, after=False):
    """``update`` on the document ``doc_id``, created when missing (a concurrent first upsert
    that wins the insert is followed by a plain update); with ``after``: the document after."""
    for attempt in range(2):
        try:
            if after:
                return collection.find_one_and_update(
                    {"_id": doc_id}, update, upsert=True, return_document=ReturnDocument.AFTER)
            return collection.update_one({"_id": doc_id}, update, upsert=True)
        except pymongo.errors.DuplicateKeyError:
            if attempt:
                raise
    return None


def chunk_count(places):
    return -(-int(places or 0) // CHUNK)


def dedup(ids):
    seen = set()
    return [i for i in ids if not (i in seen or seen.add(i))]


# -- work lists ---------------------------------------------------------------------------------

def queue_index(opd, state):
    """The ``queues`` document naming the months of an OPD's work list in ``state``."""
    return f"{opd}:{state}"


def month_id(index, day):
    return f"{index}:{day[:7]}"


def day_field(day):
    return f"d{day[8:10]}"


def chunk_id(index, day, k):
    return f"{index}:{day}:{k}"


def claim_id(index, application_id, n):
    return f"{index}@{application_id}:{n}"


def entries_into(application, state):
    """Timeline positions of the application's entries into ``state``, oldest first."""
    return [n for n, e in enumerate(application.get("timeline") or ()) if e.get("to") == state]


def _day_of(application, n):
    return str(application["timeline"][n]["on"])[:10]


def file_queued(queues, opd, state, application):
    """File the application's last entry into ``state`` (it is in that state now); returns the
    chunk. Three small writes (a place, the claim, the id); a repeat's claim insert fails, so
    it counts its place as gone and adds the id where the claim says (nothing changes)."""
    entries = entries_into(application, state)
    if not entries:
        return None
    app_id, index = application["_id"], queue_index(opd, state)
    day = _day_of(application, entries[-1])
    month, field = month_id(index, day), day_field(day)
    counted = upsert(queues, month, {"$inc": {f"days.{field}": 1}}, after=True)
    if not counted.get("listed"):  # the month named in the list's index, then marked so
        upsert(queues, index, {"$addToSet": {"months": day[:7]}})
        queues.update_one({"_id": month}, {"$set": {"listed": True}})
    chunk = chunk_id(index, day, (counted["days"][field] - 1) // CHUNK)
    key = claim_id(index, app_id, entries[-1])
    try:
        queues.insert_one({"_id": key, "chunk": chunk})
    except pymongo.errors.DuplicateKeyError:  # filed before (a repeat, a concurrent filing)
        queues.update_one({"_id": month}, {"$inc": {f"gone.{field}": 1}})  # our place: empty
        claim = queues.find_one({"_id": key})
        if claim is None:  # taken out meanwhile: the file has left the state
            return None
        chunk = claim["chunk"]
    upsert(queues, chunk, {"$addToSet": {"ids": app_id}})
    return chunk


def unfile_queued(queues, opd, state, application, entries):
    """Take the application's ``entries`` (timeline positions) into ``state`` out of the work
    list; for the last of them, an entry kept before the chunks too (the month's ``ids``)."""
    index, app_id = queue_index(opd, state), application["_id"]
    for n in entries:
        key = claim_id(index, app_id, n)
        claim = queues.find_one({"_id": key})
        day = _day_of(application, n)
        if claim is None:
            if n == entries[-1]:  # filed before the chunks (or taken out already)
                queues.update_one({"_id": month_id(index, day), "ids": app_id},
                                  {"$pull": {"ids": app_id}})
            continue
        queues.update_one({"_id": claim["chunk"]}, {"$pull": {"ids": app_id}})
        if queues.delete_one({"_id": key}).deleted_count:
            queues.update_one({"_id": month_id(index, day)},
                              {"$inc": {f"gone.{day_field(day)}": 1}})


def queue_chunks(queues, by_ids, opd, states):
    """``(chunk ids in list order, {id: document already read})`` of an OPD's work lists in
    ``states`` (state by state, oldest first): the months, each month's entries kept before the
    chunks, then its days that still hold entries, each day's chunks in order."""
    roots = by_ids(queues, [queue_index(opd, s) for s in states])
    months = [f"{queue_index(opd, s)}:{m}" for s in states
              for m in sorted(roots.get(queue_index(opd, s), {}).get("months", []))]
    docs = by_ids(queues, months)
    keys, known = [], {}
    for key in months:
        doc = docs.get(key) or {}
        index, month = key.rsplit(":", 1)
        if doc.get("ids"):
            keys.append(key)
            known[key] = doc
        days, gone = doc.get("days") or {}, doc.get("gone") or {}
        for field in sorted(days):
            if days[field] > gone.get(field, 0):
                keys += [chunk_id(index, f"{month}-{field[1:]}", k)
                         for k in range(chunk_count(days[field]))]
    return keys, known


def queue_of_chunk(key):
    """``(opd, state)`` of a work list chunk id."""
    opd, state = key.split(":")[:2]
    return opd, state


# -- a citizen's own list -------------------------------------------------------------------------

def owner_chunk(sub, k):
    return f"{sub}{OWNER_SEP}{k}"


def _head_first(collection, head_id, value):
    """Put ``value`` in the head document's own ``ids`` while it has taken fewer than
    ``CHUNK`` places (one write: most heads never need more); False once it is full."""
    for upserting in (True, False):
        try:
            written = collection.update_one({"_id": head_id, "$or": [  # (none: from before)
                {"n": {"$lt": CHUNK}}, {"n": {"$exists": False}}]},
                                            {"$inc": {"n": 1}, "$addToSet": {"ids": value}},
                                            upsert=upserting)
            return bool(written.matched_count or written.upserted_id is not None)
        except pymongo.errors.DuplicateKeyError:  # it exists (full, from before, or just made)
            continue
    return False


def _place(collection, head_id, values):
    """Places after the head's first ``CHUNK`` (or on a head from before the chunks): each
    value into the chunk of its place (the head itself for the first ``CHUNK``)."""
    end = upsert(collection, head_id, {"$inc": {"n": len(values)}}, after=True)["n"]
    groups = {}
    for place, value in enumerate(values, end - len(values)):
        groups.setdefault(place // CHUNK, []).append(value)
    return groups


def file_owned(owners, sub, application_id):
    """File a new application in its owner's list (at its creation's event)."""
    if _head_first(owners, sub, application_id):
        return
    for k, group in _place(owners, sub, [application_id]).items():
        upsert(owners, owner_chunk(sub, k) if k else sub,
               {"$addToSet": {"ids": {"$each": group}}})


def owned_ids(owners, by_ids, sub):
    """A citizen's application ids, oldest first (the head's own, then its chunks)."""
    head = owners.find_one({"_id": sub}) or {}
    later = [owner_chunk(sub, k) for k in range(1, chunk_count(head.get("n")))]
    docs = by_ids(owners, later)
    return dedup([*head.get("applications", ()), *head.get("ids", ()),
                  *(i for key in later for i in docs.get(key, {}).get("ids", ()))])


# -- the timers' days -----------------------------------------------------------------------------

def due_add(due, head_id, ids):
    """List ``ids`` under the day ``head_id`` (``<kind>:<date>``): the places' first ``CHUNK``
    in the head itself, the later ones in ``<head>:<k>``."""
    ids = list(ids)  # always a place first (two writes, busy day or not: a busy day's
    for k, group in _place(due, head_id, ids).items():  # head-first attempt would fail)
        upsert(due, f"{head_id}:{k}" if k else head_id, {"$addToSet": {"ids": {"$each": group}}})


def due_buckets(due, by_ids, heads):
    """``{bucket id: (head id, ids)}`` of the days ``heads`` (``{head id: document}``): each
    head with its own ids, and its chunks."""
    out = {h: (h, doc.get("ids", [])) for h, doc in heads.items()}
    chunk_ids = {f"{h}:{k}": h for h, doc in heads.items()
                 for k in range(1, chunk_count(doc.get("n")))}
    for key, doc in by_ids(due, list(chunk_ids)).items():
        out[key] = (chunk_ids[key], doc.get("ids", []))
    return out


# -- the whole shape from the applications (bench, rebuild-lists) ---------------------------------

def _at(value):
    return value if isinstance(value, datetime) else datetime.min


def lists_layout(applications, queued):
    """``(owners docs, queues docs)``: the lists of ``applications`` (an iterable, one pass:
    ``_id``, ``owner``, ``state``, ``opd``, ``timeline.to/on/at``), as the handlers would keep
    them; ``queued``: the states with a work list."""
    owned, filed = {}, {}
    for app in applications:
        timeline = app.get("timeline") or [{}]
        if app.get("owner"):
            owned.setdefault(app["owner"], []).append((_at(timeline[0].get("at")), app["_id"]))
        if app["state"] in queued and (entries := entries_into(app, app["state"])):
            n = entries[-1]
            index = queue_index(app["opd"], app["state"])
            filed.setdefault((index, _day_of(app, n)), []).append(
                (_at(timeline[n].get("at")), app["_id"], n))
    owners = []
    for sub, items in owned.items():
        owners += _heads(sub, [i for _, i in sorted(items)], lambda k, s=sub: owner_chunk(s, k))
    queues, roots, months = [], {}, {}
    for (index, day), items in sorted(filed.items()):
        items.sort()
        roots.setdefault(index, set()).add(day[:7])
        months.setdefault(month_id(index, day), {})[day_field(day)] = len(items)
        for k in range(chunk_count(len(items))):
            part = items[k * CHUNK:(k + 1) * CHUNK]
            chunk = chunk_id(index, day, k)
            queues.append({"_id": chunk, "ids": [i for _, i, _ in part]})
            queues += [{"_id": claim_id(index, i, n), "chunk": chunk} for _, i, n in part]
    queues += [{"_id": index, "months": sorted(m)} for index, m in roots.items()]
    queues += [{"_id": key, "days": days, "gone": {}, "listed": True}
               for key, days in months.items()]
    return owners, queues


def _heads(head_id, ids, chunk_of):
    """A head holding the first ``CHUNK`` ids and ``n``, and its chunks for the rest."""
    return [{"_id": head_id, "n": len(ids), "ids": ids[:CHUNK]}] + \
        [{"_id": chunk_of(k), "ids": ids[k * CHUNK:(k + 1) * CHUNK]}
         for k in range(1, chunk_count(len(ids)))]


def due_layout(days):
    """``due`` documents of ``{"<kind>:<date>": [ids]}``."""
    return [doc for head, ids in days.items()
            for doc in _heads(head, ids, lambda k, h=head: f"{h}:{k}")]


def rebuild_lists(db, queued, batch=2000):
    """Rewrite ``owners`` and ``queues`` from the applications (one scan). Offline, as
    ``rebuild-stats``: stop the permits service and let its queues drain first. ``(owners
    documents, queues documents)`` written."""
    from services.permits.store import APPLICATIONS, OWNERS, QUEUES

    fields = {"owner": 1, "state": 1, "opd": 1, "timeline.to": 1, "timeline.on": 1,
              "timeline.at": 1}
    owners, queues = lists_layout(db[APPLICATIONS].find({}, fields).batch_size(1000), queued)
    for name, docs in ((OWNERS, owners), (QUEUES, queues)):
        db[name].delete_many({})
        for start in range(0, len(docs), batch):
            db[name].insert_many(docs[start:start + batch], ordered=False)
    return len(owners), len(queues)
