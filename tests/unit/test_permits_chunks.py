"""The lists' layout in chunks of bounded size (``services/permits/chunks.py``), pure: what
``rebuild-lists`` and the bench write for a set of applications."""

from datetime import datetime, timedelta

import pytest

from services.permits import chunks

pytestmark = pytest.mark.unit

QUEUED = ("submitted", "registered")
T0 = datetime(2026, 12, 7, 1, 0)


def app(n, state="submitted", day="2026-12-07", owner="warga", minutes=0):
    at = T0 + timedelta(minutes=minutes)
    return {"_id": f"a{n:04d}", "owner": owner, "state": state, "opd": "3510.05",
            "timeline": [{"to": "draft", "on": day, "at": at},
                         {"to": "submitted", "on": day, "at": at},
                         *([{"to": state, "on": day, "at": at}] if state != "submitted"
                           else [])]}


def test_one_busy_day_is_cut_into_bounded_chunks_in_time_order():
    apps = [app(n, minutes=-n) for n in range(123)]  # the later the id, the earlier it came
    owners, queues = chunks.lists_layout(apps, QUEUED)
    by_id = {d["_id"]: d for d in queues}
    assert by_id["3510.05:submitted"]["months"] == ["2026-12"]
    assert by_id["3510.05:submitted:2026-12"]["days"] == {"d07": 123}
    keys = [f"3510.05:submitted:2026-12-07:{k}" for k in range(3)]
    assert [len(by_id[k]["ids"]) for k in keys] == [50, 50, 23]
    assert [i for k in keys for i in by_id[k]["ids"]] == [a["_id"] for a in reversed(apps)]
    assert by_id["3510.05:submitted@a0000:1"]["chunk"] == keys[2]
    # one citizen's 123 applications: a head with the first 50 and two chunks, oldest first
    head = next(d for d in owners if d["_id"] == "warga")
    assert head["n"] == 123 and len(head["ids"]) == 50
    assert [len(d["ids"]) for d in owners if d["_id"] != "warga"] == [50, 23]


def test_only_the_states_with_a_list_and_the_last_entry():
    returned = app(1, "registered")
    returned["timeline"] += [{"to": "draft", "on": "2026-12-08", "at": T0},
                             {"to": "registered", "on": "2026-12-09", "at": T0}]
    _, queues = chunks.lists_layout([returned, app(2, "collected", owner=None)], QUEUED)
    assert {d["_id"] for d in queues} == {
        "3510.05:registered", "3510.05:registered:2026-12",
        "3510.05:registered:2026-12-09:0", "3510.05:registered@a0001:4"}


def test_due_days_and_chunk_counts():
    docs = chunks.due_layout({"sla:2026-12-10": [f"x{n}" for n in range(101)]})
    assert [(d["_id"], len(d["ids"])) for d in docs] == [
        ("sla:2026-12-10", 50), ("sla:2026-12-10:1", 50), ("sla:2026-12-10:2", 1)]
    assert docs[0]["n"] == 101
    assert [chunks.chunk_count(n) for n in (0, 1, 50, 51, None)] == [0, 1, 1, 2, 0]
    assert chunks.dedup(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]
