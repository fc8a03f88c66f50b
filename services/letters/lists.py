"""Lists and search whose cost follows the page, not the number of letters stored: a unit's
inbox and outbox, my to-do (awaiting my paraf, my signature, returned to me), dispositions for
me and overdue ones, and search by subject words, number, sender, dates and classification.

The local database indexes nothing but ``_id``, so the handlers of the letters' own events keep
read models in ``lists`` that a page reads by ``_id`` only:

- **streams**: append-only lists of *cards* (what a list shows and search filters on: the
  letter, its date, subject words, sender, classification, number, security). A stream is a
  head ``{_id: <stream>, m: {<yyyy-mm>: last chunk}}`` and chunks ``<stream>@<yyyy-mm>#<k>``
  of up to ``CHUNK`` cards, filed under the month of the card's date. A page reads the head
  and the chunks it needs, newest first, with one ``_id $in``; a date filter skips whole
  months. Streams: ``out:<unit>`` (sent), ``in:<unit>`` (receipts), ``d:<nip>``
  (dispositions to me), ``p:<nip>`` (letters naming me) and the search postings
  ``t:<scope>:<token>`` (scope ``all`` or an OPD; token ``*`` for every letter, ``w.<word>``
  of the subject, ``f.<word>`` of the sender, ``c.<code>`` of the classification and its
  ancestors).
- ``todo:<nip>``: my open items by letter or disposition id (``$set``/``$unset``), checked at
  read against the letters and dispositions (one ``_id $in`` each), so a step without an event
  (a withdrawal, a signature) drops the item, and the stale ones are removed then.
- ``ix:<letter>``: the scopes a letter was posted to and its card; ``no:<number>``: the letters
  with that number.

Search runs in one stream, the caller's scope: Pemda-wide roles ``all``, readers of an OPD and
heads of a unit (the leadership chain) their OPD's postings, everyone else ``p:<nip>``; the
rarest token's postings (fewest chunks in the date range) are walked and filtered by the other
criteria, and what the page keeps is checked with ``access.may_see`` on the letters themselves
(one ``_id $in``), so results hold exactly what the caller may see. A request reads at most
``MAX_CHUNKS`` chunks: a page may then come back short, with a cursor to go on.

Appending a card is idempotent (a chunk holds each key once; a repeated event finds it), so a
redelivered or duplicated event writes nothing new.
"""

import itertools
import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pymongo.errors

from pamong.events.consumer import handles
from pamong.events.outbox import OUTBOX
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import by_ids, to_ms
from pamong.web import bad_request, decode_cursor, encode_cursor, forbidden, not_found, route
from pamong.web import page_of as page_schema
from services.letters import domain
from services.letters.access import API, DRAFTERS, MAIL_READERS, may_see
from services.letters.dispositions import disposition_out
from services.letters.schemas import (
    AwaitingOut,
    AwaitingQuery,
    DispositionItemOut,
    ListItemOut,
    ListQuery,
    MyDispositionsQuery,
    SearchQuery,
)
from services.letters.store import DISPOSITIONS, LETTERS, LISTS, RECEIPTS

log = logging.getLogger(__name__)

TAGS = ["lists"]
UNIT_LIST_404 = {404: "The unit is outside the caller's OPD (or the token names no unit)"}
CHUNK = 100  # cards per chunk document (~20 KB)
MAX_CHUNKS = 16  # chunks one request reads at most
BATCHES = (2, 4, 10)  # chunks read per round trip, growing as a filtered walk goes on
ZONE = ZoneInfo("Asia/Jakarta")  # the days of a date filter
LETTER_FIELDS = {"body": 0, "timeline": 0, "words": 0, OUTBOX: 0}
STAFF = DRAFTERS + ("sekretariat",)
# events each list handler runs at once per process: they append to the same few chunks
# (a unit's outbox, the common words), so more only contend there and take the workers the
# HTTP entrypoints need during a signing peak
HANDLERS_AT_ONCE = 4


# -- cards: the one place list and search entries are built (handlers and bulk_index) -------

def letter_card(letter, sender, key=None, at=None):
    """A letter as a list shows it and search filters it."""
    return {"k": key or letter["_id"], "i": letter["_id"], "a": at or domain.letter_date(letter),
            "w": domain.words(letter["subject"]), "f": domain.words(sender), "e": sender,
            "c": letter["classification"], "s": letter["security"],
            "n": letter.get("number") or letter.get("sender_number")}


def outbox_card(letter, sender):
    return f"out:{letter['unit']}", letter_card(letter, sender)


def inbox_card(letter, sender, unit, at):
    """The receipt of ``letter`` by ``unit`` (its id: ``<letter>:<unit>``) at ``at``."""
    return f"in:{unit}", letter_card(letter, sender, key=f"{letter['_id']}:{unit}", at=at)


def index_cards(letter, sender, people_opd, done=()):
    """``(card, scopes, [(stream, card)])``: the search postings of ``letter`` in the scopes it
    belongs to now (its unit's OPD, its receivers', its people's, ``all``, and each named
    person's own stream) that are not in ``done`` yet."""
    card = letter_card(letter, sender)
    wanted = [f"t:{s}" for s in domain.index_scopes(letter, people_opd)] + [
        f"p:{nip}" for nip in domain.named_nips(letter)]
    new = [scope for scope in wanted if scope not in done]
    postings = [(f"{scope}:{token}" if scope.startswith("t:") else scope, card)
                for scope in new
                for token in (domain.card_tokens(card) if scope.startswith("t:") else [None])]
    return card, new, postings


def people_opd(employees):
    """nip -> OPD, from directory replica docs."""
    return {nip: e.get("opd") or domain.opd_of(e["unit"]) for nip, e in employees.items()
            if e.get("unit")}


# -- streams ---------------------------------------------------------------------------------

def month_of(at):
    return at.astimezone(UTC).strftime("%Y-%m")


def chunk_id(stream, month, k):
    return f"{stream}@{month}#{k}"


def append(db, stream, card, head):
    """Add ``card`` to the end of ``stream`` (``head``: its head doc or None) unless the chunk
    it goes to, or a later one, holds its key already; True when added."""
    month = month_of(card["a"])
    k = ((head or {}).get("m") or {}).get(month)
    if k is None:  # the month first, so a reader never misses a chunk written
        db[LISTS].update_one({"_id": stream}, {"$max": {f"m.{month}": 0}}, upsert=True)
        k = 0
    while True:
        try:
            db[LISTS].update_one(
                {"_id": chunk_id(stream, month, k), "n": {"$lt": CHUNK},
                 "keys": {"$ne": card["k"]}},
                {"$push": {"e": card, "keys": card["k"]}, "$inc": {"n": 1}}, upsert=True)
            return True
        except pymongo.errors.DuplicateKeyError:  # the chunk is full, or holds the card
            chunk = db[LISTS].find_one({"_id": chunk_id(stream, month, k)}, {"keys": 1})
            if card["k"] in chunk["keys"]:
                return False
            k += 1  # $max: racing appenders moving on agree
            db[LISTS].update_one({"_id": stream}, {"$max": {f"m.{month}": k}})


def append_all(db, targets):
    """``[(stream, card)]`` appended, the heads read with one ``_id $in``."""
    heads = by_ids(db[LISTS], {stream for stream, _ in targets})
    for stream, card in targets:
        append(db, stream, card, heads.get(stream))


def chunks_in(head, months):
    """How many chunks of ``head`` lie in the month range (what walking it costs)."""
    return sum(k + 1 for m, k in ((head or {}).get("m") or {}).items() if _in(m, months))


def _in(month, months):
    return months is None or months[0] <= month <= months[1]


class Walk:
    """The cards of one stream newest first, from ``after`` (a cursor position ``{m, c, p}``:
    chunk ``c`` of month ``m``, its cards before index ``p``). Chunks are read by ``_id $in`` in
    growing batches, ``MAX_CHUNKS`` at most; a walk cut short leaves ``resume``."""

    def __init__(self, db, stream, head, after=None, months=None):
        self.db, self.stream, self.after, self.resume = db, stream, after, None
        marks = (head or {}).get("m") or {}
        self.plan = [(m, k) for m in sorted(marks, reverse=True) if _in(m, months)
                     for k in range(marks[m], -1, -1)]
        if after:
            self.plan = [p for p in self.plan if p <= (after["m"], after["c"])]

    def __iter__(self):
        sizes, read, i = itertools.chain(BATCHES, itertools.repeat(BATCHES[-1])), 0, 0
        while i < len(self.plan):
            if read >= MAX_CHUNKS:
                self.resume = {"m": self.plan[i][0], "c": self.plan[i][1], "p": None}
                return
            batch = self.plan[i:i + min(next(sizes), MAX_CHUNKS - read)]
            i, read = i + len(batch), read + len(batch)
            found = by_ids(self.db[LISTS], [chunk_id(self.stream, m, k) for m, k in batch],
                           {"e": 1})
            for m, k in batch:
                cards = (found.get(chunk_id(self.stream, m, k)) or {}).get("e", [])
                top = len(cards)
                if self.after and (m, k) == (self.after["m"], self.after["c"]) \
                        and self.after["p"] is not None:
                    top = min(top, self.after["p"])
                for index in range(top - 1, -1, -1):
                    yield {"m": m, "c": k, "p": index}, cards[index]


def walk_page(walk, limit, keep, shape):
    """A page of ``walk``: the cards ``keep`` accepts, each key once, shaped by
    ``shape(cards) -> {key: item}`` (a card it leaves out is not shown)."""
    items, seen, cards = [], set(), iter(walk)
    while True:
        wanted = limit + 1 - len(items)
        batch = list(itertools.islice(((pos, c) for pos, c in cards if keep(c)), wanted))
        shaped = shape([c for _, c in batch if c["k"] not in seen])
        for pos, card in batch:
            if card["k"] not in seen and card["k"] in shaped:
                items.append((pos, shaped[card["k"]]))
            seen.add(card["k"])
        if len(items) > limit:
            return {"items": [item for _, item in items[:limit]],
                    "next_cursor": encode_cursor({"s": walk.stream, **items[limit - 1][0]})}
        if len(batch) < wanted:  # the stream ended, or the walk reached its cap
            resume = walk.resume and encode_cursor({"s": walk.stream, **walk.resume})
            return {"items": [item for _, item in items], "next_cursor": resume}


def item_out(letter, card, visible, receipt=None):
    return {"id": letter["_id"], "receipt": receipt and receipt["_id"], "date": card["a"],
            "number": card["n"], "subject": letter["subject"] if visible else None,
            "sender": card["e"], "kind": letter["kind"],
            "classification": letter["classification"] if visible else None,
            "security": letter["security"], "urgency": letter["urgency"],
            "state": letter["state"], "direction": letter.get("direction", "outgoing"),
            "unit": letter["unit"], "revoked": bool(letter.get("revoked")), "visible": visible,
            "read_at": receipt and receipt.get("read_at")}


def day_start(day):
    return day and datetime.combine(day, time(), ZONE).astimezone(UTC)


def bulk_index(db, letters):
    """Write, with ``insert_many``, the list and search documents the handlers would have
    written for ``letters`` (a seed for an empty ``lists``: the bench's 1,000 and 100,000
    letters). Each letter is the document as stored in ``letters``: an outgoing letter as
    flow.py keeps it once sent (``state`` sent or archived, ``number``, ``signed_at``,
    ``signed_by``, ``sent_at``, ``receivers``: the internal units that received it, whose
    inbox cards are dated ``sent_at``), or an incoming one as mail.py registers it
    (``direction`` incoming, ``state`` received, ``sender``, ``sender_number``,
    ``receivers`` [its unit], dated ``created_at``); optional ``chain`` (disposition chain).
    The directory replica (units, employees) must hold their units and people."""
    letters = list(letters)
    names = {u["_id"]: u.get("name") for u in by_ids(
        db[UNITS], {letter["unit"] for letter in letters}, {"name": 1}).values()}
    people = people_opd(by_ids(db[EMPLOYEES], {n for letter in letters
                                               for n in domain.named_nips(letter)},
                               {"unit": 1, "opd": 1}))
    streams, docs, numbers = {}, [], {}
    for letter in letters:
        sender = domain.sender_text(letter, names.get(letter["unit"]) or letter["unit"])
        targets = [] if letter.get("direction") == "incoming" else [outbox_card(letter, sender)]
        targets += [inbox_card(letter, sender, unit, domain.letter_date(letter))
                    for unit in letter.get("receivers", ())]
        card, scopes, postings = index_cards(letter, sender, people)
        for stream, c in targets + postings:
            streams.setdefault(stream, []).append(c)
        docs.append({"_id": f"ix:{letter['_id']}", "scopes": scopes, "card": card})
        if card["n"]:
            numbers.setdefault(domain.normal_number(card["n"]), []).append(letter["_id"])
    docs += [{"_id": f"no:{n}", "letters": ids} for n, ids in numbers.items()]
    for stream, cards in streams.items():
        months = {}
        for card in sorted(cards, key=lambda c: (c["a"], c["k"])):
            months.setdefault(month_of(card["a"]), []).append(card)
        for month, in_month in months.items():
            for k in range(0, len(in_month), CHUNK):
                part = in_month[k:k + CHUNK]
                docs.append({"_id": chunk_id(stream, month, k // CHUNK), "e": part,
                             "keys": [c["k"] for c in part], "n": len(part)})
        docs.append({"_id": stream, "m": {m: (len(c) - 1) // CHUNK for m, c in months.items()}})
    for start in range(0, len(docs), 1000):
        db[LISTS].insert_many(docs[start:start + 1000], ordered=False)
    return len(docs)


def _todo_id(nip):
    return f"todo:{nip}"


def _position_key(position):
    """The to-do of a signing position (``todo:pos:<id>``): what awaits the signature of its
    holder, read by the Plt/Plh acting in it."""
    return f"pos:{position}"


class ListEndpoints:
    """Mixed into the letters service (needs ``db`` and MailEndpoints' ``_led``)."""

    # -- writing the read models (handlers of the letters' own events) --------------------

    def _letter_for_lists(self, letter_id):
        letter = self.db[LETTERS].find_one({"_id": letter_id}, LETTER_FIELDS)
        if letter is None:  # nothing a retry could fix: the DLQ shows it with this reason
            raise ValueError(f"the event names letter {letter_id}, which does not exist")
        return letter

    def _sender(self, letter):
        unit = self.db[UNITS].find_one({"_id": letter["unit"]}, {"name": 1}) or {}
        return domain.sender_text(letter, unit.get("name") or letter["unit"])

    def _index(self, letter, sender, extra=()):
        """Post ``letter`` to the search scopes it belongs to now and was not posted to."""
        ix = self.db[LISTS].find_one({"_id": f"ix:{letter['_id']}"}) or {}
        employees = by_ids(self.db[EMPLOYEES], domain.named_nips(letter), {"unit": 1, "opd": 1})
        card, new, postings = index_cards(letter, sender, people_opd(employees),
                                          ix.get("scopes", ()))
        append_all(self.db, [*extra, *postings])
        if new:  # after the postings: a crash in between posts again, into the same chunks
            self.db[LISTS].update_one({"_id": f"ix:{letter['_id']}"},
                                      {"$addToSet": {"scopes": {"$each": new}},
                                       "$set": {"card": card}}, upsert=True)
        if card["n"]:
            self.db[LISTS].update_one({"_id": f"no:{domain.normal_number(card['n'])}"},
                                      {"$addToSet": {"letters": letter["_id"]}}, upsert=True)

    def _todo(self, nip, item_id, **fields):
        # field by field: a late repeat of an earlier event keeps what a later one added
        self.db[LISTS].update_one({"_id": _todo_id(nip)}, {"$set": {
            f"items.{item_id}.{k}": v for k, v in fields.items()}}, upsert=True)

    def _untodo(self, nip, item_id, before=None):
        where = {f"items.{item_id}.at": {"$lt": before}} if before else {}
        self.db[LISTS].update_one({"_id": _todo_id(nip), **where},
                                  {"$unset": {f"items.{item_id}": ""}})

    @handles("letters", "letter.submitted", concurrency=HANDLERS_AT_ONCE)
    def list_submitted(self, event):
        """The letter waits for a verifier's paraf or the signature: their to-do; a
        resubmitted letter leaves its drafter's to-do (unless a later return put it back)."""
        data, at = event.data, to_ms(event.occurred_at)
        self._todo(data["awaiting"]["nip"], data["id"], kind=data["awaiting"]["role"],
                   letter=data["id"], at=at)
        if data["awaiting"]["role"] == "signer":  # also for whoever acts in that position
            position = self._letter_for_lists(data["id"])["signer"].get("position")
            if position:
                self._todo(_position_key(position), data["id"], kind="signer",
                           letter=data["id"], at=at)
        self._untodo(data["drafter"], data["id"], before=at)

    @handles("letters", "letter.returned", concurrency=HANDLERS_AT_ONCE)
    def list_returned(self, event):
        data = event.data
        self._todo(data["drafter"], data["id"], kind="drafter", letter=data["id"],
                   at=to_ms(event.occurred_at), note=data["note"], by=data["returned_by"])

    @handles("letters", "letter.sent", concurrency=HANDLERS_AT_ONCE)
    def list_sent(self, event):
        """The sending unit's outbox, and the letter's search postings."""
        letter = self._letter_for_lists(event.data["id"])
        sender = self._sender(letter)
        self._index(letter, sender, [outbox_card(letter, sender)])

    @handles("letters", "letter.received", concurrency=HANDLERS_AT_ONCE)
    def list_received(self, event):
        """The receiving unit's inbox, and postings for the receiving side."""
        data = event.data
        letter = self._letter_for_lists(data["letter"])
        # the receiver may not be on the letter yet (mail.py adds it by a write of its own)
        letter["receivers"] = sorted({*letter.get("receivers", ()), data["unit"]})
        sender = self._sender(letter)
        self._index(letter, sender, [inbox_card(letter, sender, data["unit"],
                                                to_ms(data["received_at"]))])

    @handles("letters", "disposition.assigned", concurrency=HANDLERS_AT_ONCE)
    def list_disposition(self, event):
        """The recipient's open dispositions and history, the author's given ones (for the
        overdue list), and the letter searchable by the recipient."""
        data, at = event.data, to_ms(event.occurred_at)
        due = data["due"] and data["due"].isoformat()
        for nip, kind in ((data["to"], "disposition"), (data["by"], "given")):
            self._todo(nip, data["id"], kind=kind, letter=data["letter"], at=at, due=due)
        letter = self._letter_for_lists(data["letter"])
        letter["chain"] = sorted({*letter.get("chain", ()), data["to"], data["by"]})
        sender = self._sender(letter)
        self._index(letter, sender, [(f"d:{data['to']}", letter_card(
            letter, sender, key=data["id"], at=at))])

    @handles("letters", "disposition.completed", concurrency=HANDLERS_AT_ONCE)
    def list_disposition_completed(self, event):
        for nip in (event.data["to"], event.data["by"]):
            self._untodo(nip, event.data["id"])

    @handles("letters", "disposition.overdue", concurrency=HANDLERS_AT_ONCE)
    def list_disposition_overdue(self, event):
        for nip, kind in ((event.data["to"], "disposition"), (event.data["by"], "given")):
            self._todo(nip, event.data["id"], kind=kind, letter=event.data["letter"],
                       overdue=True)

    # -- reading ---------------------------------------------------------------------------

    def _seer(self, principal):
        """``sees(letter)``: access.may_see, the leadership chain looked up once if needed."""
        led = None

        def sees(letter):
            nonlocal led
            if may_see(principal, letter):
                return True
            if led is None:
                led = self._led(principal)
            return bool(led) and may_see(principal, letter, led)

        return sees

    def _letters(self, ids):
        return by_ids(self.db[LETTERS], ids, LETTER_FIELDS)

    def _cursor(self, query, streams):
        after = decode_cursor(query["cursor"])
        if after and after.get("s") not in streams:
            raise bad_request("The cursor belongs to another list or search; start again "
                              "without one.", {"cursor": ["Invalid cursor."]})
        return after

    def _unit_list(self, principal, query, prefix):
        unit = query["unit"] or principal.opd
        if not unit or not principal.can_read(unit):
            raise not_found()
        stream = f"{prefix}:{unit}"
        after = self._cursor(query, {stream})
        head = self.db[LISTS].find_one({"_id": stream})
        sees = self._seer(principal)

        def shape(cards):
            letters = self._letters([c["i"] for c in cards])
            receipts = by_ids(self.db[RECEIPTS], [c["k"] for c in cards],
                              {"read_at": 1}) if prefix == "in" else {}
            return {c["k"]: item_out(letters[c["i"]], c, sees(letters[c["i"]]),
                                     receipts.get(c["k"]) or (
                                         {"_id": c["k"]} if prefix == "in" else None))
                    for c in cards if c["i"] in letters}

        return walk_page(Walk(self.db, stream, head, after), query["limit"], lambda c: True,
                         shape)

    @route("GET", f"{API}/inbox", roles=MAIL_READERS + ("admin", "service"), query=ListQuery(),
           response=page_schema(ListItemOut()), tags=TAGS, problems=UNIT_LIST_404,
           summary="A unit's inbox, newest first (letters you may not open show no subject)")
    def unit_inbox(self, request, principal, query):
        return self._unit_list(principal, query, "in")

    @route("GET", f"{API}/outbox", roles=MAIL_READERS + ("admin", "service"),
           query=ListQuery(), response=page_schema(ListItemOut()), tags=TAGS,
           problems=UNIT_LIST_404,
           summary="What a unit sent, newest first (letters you may not open show no subject)")
    def unit_outbox(self, request, principal, query):
        return self._unit_list(principal, query, "out")

    def _my_todo(self, principal):
        if not principal.nip:
            raise forbidden("Your token carries no NIP: to-do lists are personal.")
        return (self.db[LISTS].find_one({"_id": _todo_id(principal.nip)}) or {}).get("items", {})

    def _drop_stale(self, nip, items, stale):
        """Remove stale to-do items, unless one changed since it was read."""
        if stale:
            self.db[LISTS].update_one(
                {"_id": _todo_id(nip), **{f"items.{i}.at": items[i].get("at") for i in stale}},
                {"$unset": {f"items.{i}": "" for i in stale}})

    @route("GET", f"{API}/awaiting", roles=STAFF, query=AwaitingQuery(),
           response=page_schema(AwaitingOut()), tags=TAGS,
           summary="Letters awaiting me: my paraf, my signature, returned to me")
    def awaiting(self, request, principal, query):
        items = self._my_todo(principal)
        flow = {i: it for i, it in items.items() if it.get("kind") in
                ("verifier", "signer", "drafter")}
        acting = self._acting_position(principal)
        held = {}
        if acting:  # the letters awaiting the signature of the position the caller acts in
            held = (self.db[LISTS].find_one({"_id": _todo_id(_position_key(
                acting["position"]))}) or {}).get("items", {})
        letters = self._letters([it["letter"] for it in (*flow.values(), *held.values())])
        valid, stale, stale_held = [], [], []
        for item_id, item in flow.items():
            letter = letters.get(item["letter"])
            if letter and item["kind"] in domain.roles_in(letter, principal.nip) and (
                    item["kind"] != "drafter" or letter["state"] == domain.RETURNED):
                valid.append((item, letter, None))
            else:
                stale.append(item_id)
        for item_id, item in held.items():
            letter = letters.get(item["letter"])
            if letter and letter["state"] == domain.AWAITING_SIGNATURE \
                    and letter["signer"].get("position") == acting["position"]:
                if item_id not in flow:  # named signer and acting too: listed once
                    valid.append((item, letter, acting["acting"]))
            else:
                stale_held.append(item_id)
        self._drop_stale(principal.nip, items, stale)
        if acting:
            self._drop_stale(_position_key(acting["position"]), held, stale_held)
        rows = sorted(({**letter, "id": letter["_id"], "role": item["kind"],
                        "since": item["at"], "note": item.get("note"),
                        "returned_by": item.get("by"), "acting": how}
                       for item, letter, how in valid if query["role"] in (None, item["kind"])),
                      key=lambda r: (r["since"], r["id"]), reverse=True)
        return self._list_page(rows, query, lambda r: (r["since"], r["id"]))

    def _acting_position(self, principal):
        """``{"position", "acting"}`` when the caller acts (Plt/Plh) in a signing position
        today, else None (the flow's signer rule, ``_capacity``)."""
        employee = self._employee(principal.nip)
        if not employee:
            return None
        capacity = self._capacity(employee, self._today(employee["unit"]))
        return capacity if capacity and capacity["acting"] else None

    def _list_page(self, rows, query, key):
        """A page of a small list already read whole (a to-do), after the cursor's key."""
        after = decode_cursor(query["cursor"])
        if after:
            last = (after["at"], after["id"])
            rows = [r for r in rows if key(r) < last]
        page = rows[:query["limit"]]
        more = len(rows) > query["limit"]
        return {"items": page, "next_cursor": encode_cursor(
            dict(zip(("at", "id"), key(page[-1]), strict=True))) if more else None}

    def _open_dispositions(self, principal, kinds):
        """My open disposition items of ``kinds`` with their dispositions (stale removed)."""
        items = self._my_todo(principal)
        mine = {i: it for i, it in items.items() if it.get("kind") in kinds}
        found = by_ids(self.db[DISPOSITIONS], list(mine), {OUTBOX: 0})
        stale = [i for i in mine if i not in found
                 or domain.disposition_state(found[i]) in ("completed", "cancelled")]
        self._drop_stale(principal.nip, items, stale)
        return [(mine[i], found[i]) for i in mine if i not in stale]

    def _dispositions_out(self, principal, pairs):
        sees = self._seer(principal)
        letters = self._letters([d["letter"] for _, d in pairs])
        rows = []
        for role, d in pairs:
            letter = letters.get(d["letter"])
            rows.append({**disposition_out(d), "role": role, "subject":
                         letter["subject"] if letter and sees(letter) else None})
        return sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)

    @route("GET", f"{API}/dispositions/mine", roles=STAFF, query=MyDispositionsQuery(),
           response=page_schema(DispositionItemOut()), tags=TAGS,
           summary="Dispositions to me, newest first (?open=true: neither completed nor "
                   "cancelled)")
    def my_dispositions(self, request, principal, query):
        if query["open"]:
            rows = self._dispositions_out(principal, [
                ("to", d) for _, d in self._open_dispositions(principal, ("disposition",))])
            return self._list_page(rows, query, lambda r: (r["created_at"], r["id"]))
        if not principal.nip:
            raise forbidden("Your token carries no NIP: to-do lists are personal.")
        stream = f"d:{principal.nip}"
        after = self._cursor(query, {stream})

        def shape(cards):
            found = by_ids(self.db[DISPOSITIONS], [c["k"] for c in cards], {OUTBOX: 0})
            return {r["id"]: r for r in self._dispositions_out(
                principal, [("to", found[c["k"]]) for c in cards if c["k"] in found])}

        return walk_page(Walk(self.db, stream, self.db[LISTS].find_one({"_id": stream}),
                              after), query["limit"], lambda c: True, shape)

    @route("GET", f"{API}/dispositions/overdue", roles=STAFF, query=MyDispositionsQuery(),
           response=page_schema(DispositionItemOut()), tags=TAGS,
           summary="Overdue dispositions: to me, and those I disposed that are late")
    def overdue_dispositions(self, request, principal, query):
        pairs = [("to" if item["kind"] == "disposition" else "by", d)
                 for item, d in self._open_dispositions(principal, ("disposition", "given"))
                 if item.get("overdue") or d.get("overdue_sent")]
        return self._list_page(self._dispositions_out(principal, pairs), query,
                               lambda r: (r["created_at"], r["id"]))

    # -- search ----------------------------------------------------------------------------

    def _scope(self, principal):
        """The one stream family the caller searches: ``t:all``, ``t:<opd>`` or ``p:<nip>``
        (what they may see lies in it; access decides the rest)."""
        if principal.is_pemda_wide:
            return "t:all"
        root = None
        if principal.opd and principal.has_any(MAIL_READERS):
            root = principal.read_root()
        elif led := self._led(principal):  # heads see what their units' people are named in
            root = principal.read_root() if principal.opd else domain.opd_of(next(iter(led)))
        if root:
            return "t:all" if "." not in root else f"t:{root}"
        if principal.nip:
            return f"p:{principal.nip}"
        raise forbidden("Your token names neither a unit you read nor a NIP.")

    @route("GET", f"{API}/search", roles=STAFF + ("admin", "service"), query=SearchQuery(),
           response=page_schema(ListItemOut()), tags=TAGS,
           summary="Search the letters you may see by subject words, number, sender, dates "
                   "and classification, newest first")
    def search_letters(self, request, principal, query):
        q_words, sender_words = domain.words(query["q"]), domain.words(query["sender"])
        start = day_start(query["start"])
        end = day_start(query["end"] and query["end"] + timedelta(days=1))
        sees = self._seer(principal)

        def keep(card):
            return domain.card_matches(card, q_words, sender_words, query["classification"],
                                       start, end)

        def shape(cards):
            letters = self._letters([c["i"] for c in cards])
            return {c["k"]: item_out(letters[c["i"]], c, True) for c in cards
                    if c["i"] in letters and sees(letters[c["i"]])}

        if query["number"]:
            return self._by_number(domain.normal_number(query["number"]), keep, shape)
        months = (month_of(start) if start else "0000-00",
                  month_of(end - timedelta(microseconds=1)) if end else "9999-99")
        scope = self._scope(principal)
        if scope.startswith("p:"):
            streams = [scope]
        else:
            tokens = domain.query_tokens(q_words, sender_words, query["classification"])
            streams = [f"{scope}:{t}" for t in tokens or ["*"]]
        heads = by_ids(self.db[LISTS], streams)
        after = self._cursor(query, set(streams))
        if len(heads) < len(streams):  # a word no letter in the scope has
            return {"items": [], "next_cursor": None}
        stream = after["s"] if after else min(streams, key=lambda s: chunks_in(heads[s], months))
        return walk_page(Walk(self.db, stream, heads[stream], after, months), query["limit"],
                         keep, shape)

    def _by_number(self, number, keep, shape):
        ids = (self.db[LISTS].find_one({"_id": f"no:{number}"}) or {}).get("letters", [])
        cards = [ix["card"] for ix in by_ids(self.db[LISTS], [f"ix:{i}" for i in ids]).values()
                 if domain.normal_number(ix["card"]["n"] or "") == number and keep(ix["card"])]
        shaped = shape(cards)
        return {"items": sorted(shaped.values(), key=lambda r: (r["date"], r["id"]),
                                reverse=True), "next_cursor": None}
