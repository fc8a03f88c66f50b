import base64
import datetime
import json

import pytest
from marshmallow import ValidationError

from pamong.web import PageQuery, Problem, decode_cursor, encode_cursor, page

pytestmark = pytest.mark.unit


def test_cursor_round_trips_strings_numbers_and_datetimes():
    key = {"created_at": datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.UTC),
           "_id": "L-0001", "n": 3}
    cursor = encode_cursor(key)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor) == key


def test_no_cursor_means_first_page():
    assert decode_cursor(None) is None
    assert decode_cursor("") is None


@pytest.mark.parametrize("cursor", ["not base64 at all!", "e30", "W10", "bnVsbA", "%%%"])
def test_garbage_cursor_is_a_400_problem(cursor):
    with pytest.raises(Problem) as raised:
        decode_cursor(cursor)
    assert raised.value.status == 400
    assert raised.value.errors == {"cursor": ["Invalid cursor."]}


def test_tampered_cursor_is_a_400_problem():
    cursor = encode_cursor({"_id": "L-0001"})
    data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    data["k"]["_id"] = "L-9999"  # still valid base64 JSON, but edited
    tampered = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    with pytest.raises(Problem) as raised:
        decode_cursor(tampered)
    assert raised.value.status == 400
    with pytest.raises(Problem):
        decode_cursor(cursor[:-3])  # truncated


def test_page_gives_a_next_cursor_only_when_more_items_exist():
    items = [{"_id": f"{i:03}"} for i in range(4)]  # fetched with limit + 1
    first = page(items, 3, lambda item: {"_id": item["_id"]})
    assert [item["_id"] for item in first["items"]] == ["000", "001", "002"]
    assert decode_cursor(first["next_cursor"]) == {"_id": "002"}

    last = page(items[:3], 3, lambda item: {"_id": item["_id"]})
    assert last["next_cursor"] is None and len(last["items"]) == 3
    assert page([], 3, lambda item: item) == {"items": [], "next_cursor": None}


def test_page_query_defaults_and_limits():
    assert PageQuery().load({}) == {"limit": 50, "cursor": None}
    assert PageQuery().load({"limit": "200"})["limit"] == 200
    for bad in ("0", "201", "x"):
        with pytest.raises(ValidationError) as raised:
            PageQuery().load({"limit": bad})
        assert "limit" in raised.value.messages
    with pytest.raises(ValidationError):
        PageQuery().load({"sort": "name"})  # unknown query parameters are rejected
