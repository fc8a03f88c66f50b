"""Keyset pagination: ``limit`` plus an opaque ``cursor`` holding the last item's sort key.

A list endpoint declares ``query=PageQuery()`` (or a subclass adding filters) and returns
``find_page(collection, filters, query)``: the documents in ``_id`` order after the cursor,
``limit + 1`` of them fetched (the extra one only tells whether a next page exists). ``page``
is the same for items that do not come from one collection.
"""

import base64
import binascii
import datetime
import hashlib
import itertools
import json

from marshmallow import Schema, fields, validate

from pamong.web.problem import bad_request

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageQuery(Schema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT,
                           validate=validate.Range(min=1, max=MAX_LIMIT))
    cursor = fields.String(load_default=None)


def _tag(value):
    # sort keys are often datetimes: keep their type across the round trip
    if isinstance(value, datetime.datetime):
        return {"$dt": value.isoformat()}
    return value


def _untag(value):
    if isinstance(value, dict) and set(value) == {"$dt"}:
        return datetime.datetime.fromisoformat(value["$dt"])
    return value


def _checksum(key_json):
    # not a secret: it only makes an edited or truncated cursor fail loudly (400) instead of
    # silently paging from somewhere else
    return hashlib.sha256(key_json.encode()).hexdigest()[:12]


def encode_cursor(key):
    """``{"created_at": dt, "_id": "x"}`` -> an opaque url-safe string."""
    key_json = json.dumps({name: _tag(value) for name, value in key.items()},
                          sort_keys=True, separators=(",", ":"))
    raw = json.dumps({"k": json.loads(key_json), "c": _checksum(key_json)},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor):
    """The key dict from ``encode_cursor``; None for no cursor; a 400 problem when invalid."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        key = data["k"]
        key_json = json.dumps(key, sort_keys=True, separators=(",", ":"))
        if not isinstance(key, dict) or data.get("c") != _checksum(key_json):
            raise ValueError("checksum mismatch")
        return {name: _untag(value) for name, value in key.items()}
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise bad_request("The cursor is invalid; start again without one.",
                          {"cursor": ["Invalid cursor."]}) from exc


def page(items, limit, key_fn):
    """``items`` fetched with ``limit + 1``; ``key_fn(item)`` gives the sort-key dict."""
    items = list(items)
    if len(items) <= limit:
        return {"items": items, "next_cursor": None}
    items = items[:limit]
    return {"items": items, "next_cursor": encode_cursor(key_fn(items[-1]))}


def find_page(collection, filters, query, projection=None, keep=None, out=None):
    """One page of ``collection`` in ``_id`` order: the documents matching every filter of
    ``filters`` (falsy ones are skipped) after the cursor; ``keep(doc)`` drops documents by a
    rule the database cannot express (only as many are read as the page needs); ``out(doc)``
    shapes each item."""
    filters = [f for f in filters if f]
    if after := decode_cursor(query["cursor"]):
        filters.append({"_id": {"$gt": after["_id"]}})
    found = collection.find({"$and": filters} if filters else {}, projection).sort("_id", 1)
    if keep is None:
        found = found.limit(query["limit"] + 1)
    docs = list(itertools.islice(filter(keep, found) if keep else found, query["limit"] + 1))
    result = page(docs, query["limit"], lambda doc: {"_id": doc["_id"]})
    if out is not None:
        result["items"] = [out(doc) for doc in result["items"]]
    return result


_page_schemas = {}


def page_of(item_schema):
    """A response schema ``{items: [item_schema], next_cursor}`` (one class per item class,
    so OpenAPI names it ``<Item>Page`` once)."""
    item_cls = type(item_schema)
    if item_cls not in _page_schemas:
        name = item_cls.__name__.removesuffix("Schema") + "PageSchema"
        _page_schemas[item_cls] = Schema.from_dict({
            "items": fields.List(fields.Nested(item_cls), required=True),
            "next_cursor": fields.String(allow_none=True, required=True),
        }, name=name)
    return _page_schemas[item_cls]()
