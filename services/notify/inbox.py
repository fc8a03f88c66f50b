"""The in-app inbox of a person (an employee by NIP, a citizen by their account's ``sub``).

Storage (``inbox``, written by the in-app channel when a notification is delivered there):
- ``_id "<person>:<YYYY-MM>"``: ``{items: {<notification id>: {title, body, at, read_at,
  event_type}}}``: one document per person and month, so a page of the newest messages is
  one or two reads by ``_id``;
- ``_id "<person>"``: ``{unread: int}``.

Listing reads the month documents newest first (``_id $in`` over a window of months, indexed
everywhere) and sorts the items of a month by arrival, newest first; the cursor holds the
month and the last item shown. Marking read is one write of the item guarded by ``read_at``
being null (so a repeat or a concurrent second request changes nothing), then the unread
count goes down by one, never below 0, exactly once per message (``apply_once`` keyed
``read:<id>`` on the count, then the item marked ``counted``: a repeat after a crash between
the writes finishes the count without counting twice).
"""

import re
from datetime import UTC, datetime
from types import SimpleNamespace

from pamong.events.consumer import apply_once
from pamong.storage import by_ids, db_now
from pamong.web import decode_cursor, encode_cursor, not_found, route
from services.notify.access import API, PEOPLE, person_of
from services.notify.schemas.inbox import InboxPage, InboxQuery, ReadOut, UnreadOut
from services.notify.store import INBOX, NOTIFICATIONS

TAGS = ("inbox",)
NOTIFICATION_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_HORIZON_MONTHS = 24  # how far back the inbox looks (NOTIFY_INBOX_MONTHS)
WINDOW = 6  # months read per round trip


# -- pure helpers ---------------------------------------------------------------------------

def month_of(at):
    """The inbox month (``YYYY-MM``, UTC) a message delivered at ``at`` is filed under."""
    return at.astimezone(UTC).strftime("%Y-%m")


def month_id(person, month):
    return f"{person}:{month}"


def months_back(month, count):
    """``month`` and the ``count - 1`` months before it, newest first."""
    year, number = (int(part) for part in month.split("-"))
    found = []
    for _ in range(count):
        found.append(f"{year:04d}-{number:02d}")
        year, number = (year, number - 1) if number > 1 else (year - 1, 12)
    return found


def months_between(first, last):
    """Every month from ``first`` to ``last`` (``YYYY-MM``), oldest first."""
    found, (year, number) = [], (int(part) for part in first.split("-"))
    while f"{year:04d}-{number:02d}" <= last:
        found.append(f"{year:04d}-{number:02d}")
        year, number = (year, number + 1) if number < 12 else (year + 1, 1)
    return found


def sorted_items(month_doc):
    """The items of a month document, newest first (ties by id, descending)."""
    items = [{"id": nid, **item} for nid, item in (month_doc.get("items") or {}).items()]
    return sorted(items, key=lambda i: (i.get("at") or datetime.min.replace(tzinfo=UTC),
                                        i["id"]), reverse=True)


def after_cursor(items, cursor):
    """Items strictly older than the cursor's (``at``, ``id``) in the cursor's month."""
    key = (cursor["at"], cursor["id"])
    return [i for i in items if (i.get("at"), i["id"]) < key]


def item_out(item):
    return {"id": item["id"], "title": item.get("title"), "body": item.get("body"),
            "event_type": item.get("event_type"), "at": item.get("at"),
            "read_at": item.get("read_at")}


# -- endpoints --------------------------------------------------------------------------------

class InboxEndpoints:
    """``GET /inbox``, ``GET /inbox/unread``, ``POST /inbox/<id>/read``: the caller's own."""

    def _unread(self, person):
        doc = self.db[INBOX].find_one({"_id": person}, {"unread": 1}) or {}
        return max(int(doc.get("unread") or 0), 0)

    def _inbox_horizon(self):
        return int(self.config.get("NOTIFY_INBOX_MONTHS", DEFAULT_HORIZON_MONTHS))

    @route("GET", f"{API}/inbox", roles=PEOPLE, query=InboxQuery(), response=InboxPage(),
           tags=TAGS, summary="My in-app messages, newest first (this month, then earlier "
                              "months); `unread=true` for the unread ones only")
    def list_inbox(self, request, principal, query):
        person = person_of(principal)
        cursor = decode_cursor(query["cursor"])
        newest = cursor["m"] if cursor else month_of(db_now())
        months = months_back(newest, self._inbox_horizon())
        wanted, found = query["limit"] + 1, []
        for start in range(0, len(months), WINDOW):
            window = months[start:start + WINDOW]
            docs = by_ids(self.db[INBOX], [month_id(person, m) for m in window])
            for month in window:
                doc = docs.get(month_id(person, month))
                if doc is None:
                    continue
                items = sorted_items(doc)
                if cursor and month == cursor["m"]:
                    items = after_cursor(items, cursor)
                if query["unread"]:
                    items = [i for i in items if not i.get("read_at")]
                found.extend((month, i) for i in items)
            if len(found) >= wanted:
                break
        shown = found[:query["limit"]]
        next_cursor = None
        if len(found) > query["limit"]:
            month, last = shown[-1]
            next_cursor = encode_cursor({"m": month, "at": last["at"], "id": last["id"]})
        return {"items": [item_out(i) for _, i in shown], "next_cursor": next_cursor,
                "unread": self._unread(person)}

    @route("GET", f"{API}/inbox/unread", roles=PEOPLE, response=UnreadOut(), tags=TAGS,
           summary="How many of my in-app messages are unread (one read by key)")
    def inbox_unread(self, request, principal):
        return {"unread": self._unread(person_of(principal))}

    @route("POST", f"{API}/inbox/<notification_id>/read", roles=PEOPLE, response=ReadOut(),
           tags=TAGS, summary="Mark one of my in-app messages read (a repeat changes "
                              "nothing and answers the first read_at)")
    def mark_read(self, request, principal, notification_id):
        person = person_of(principal)
        if not NOTIFICATION_ID.fullmatch(notification_id):
            raise not_found()
        doc_id, item = self._find_item(person, notification_id)
        if item is None:
            raise not_found("No such message in your inbox.")
        path = f"items.{notification_id}"
        if item.get("read_at") is None:
            at = db_now()
            written = self.db[INBOX].update_one(
                {"_id": doc_id, path: {"$exists": True}, f"{path}.read_at": None},
                {"$set": {f"{path}.read_at": at}})
            item = ({**item, "read_at": at} if written.modified_count
                    # a concurrent request marked it first: answer its time
                    else self._find_item(person, notification_id, [doc_id])[1])
        if not item.get("counted"):
            # once per message even when this runs again after a crash between the writes:
            # the count's own record of applied ids, then the item's mark
            apply_once(self.db[INBOX], {"_id": person, "unread": {"$gt": 0}},
                       {"$inc": {"unread": -1}}, SimpleNamespace(id=f"read:{notification_id}"))
            self.db[INBOX].update_one({"_id": doc_id}, {"$set": {f"{path}.counted": True}})
        return {"id": notification_id, "read_at": item["read_at"],
                "unread": self._unread(person)}

    def _find_item(self, person, notification_id, doc_ids=None):
        """(month document id, the item) of ``notification_id`` in ``person``'s inbox, or
        (None, None). The item sits in the month it arrived, on or after the notification's
        creation: those months are read by key, never the whole inbox."""
        if doc_ids is None:
            now_month = month_of(db_now())
            note = self.db[NOTIFICATIONS].find_one({"_id": notification_id},
                                                   {"created_at": 1, "recipient.person": 1})
            if note is not None and (note.get("recipient") or {}).get("person") != person:
                return None, None
            first = (month_of(note["created_at"]) if note and note.get("created_at")
                     else months_back(now_month, self._inbox_horizon())[-1])
            doc_ids = [month_id(person, m) for m in months_between(first, now_month)]
        path = f"items.{notification_id}"
        docs = by_ids(self.db[INBOX], doc_ids, {path: 1})
        for doc_id in doc_ids:
            item = ((docs.get(doc_id) or {}).get("items") or {}).get(notification_id)
            if item is not None:
                return doc_id, item
        return None, None
