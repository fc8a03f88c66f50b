"""``apply_once`` with ``upsert`` under the conformance suite's condition: many different events
create one new document at the same moment (the first events about a unit, each adding one to
its headcount).

Every upsert finds no document, so each tries to insert it; one insert wins. MongoDB retries
the losing upserts as updates only when the filter is equality on the unique key, and
``apply_once``'s filter also has ``_applied: {$ne: <event>}``, so on MongoDB the losers get a
``DuplicateKeyError`` that ``apply_once`` must turn into an update (FerretDB's patch 0004
retries them itself). Each event's effect must land exactly once: the count equals the events.
"""

from datetime import UTC, datetime

import pytest

from pamong.events.consumer import apply_once
from pamong.events.envelope import Event, new_event
from pamong.testing import race

pytestmark = pytest.mark.database

EVENTS = 16
DOCUMENTS = 10  # rounds of the race, each on a document that does not exist yet


def an_event(unit):
    return Event(**{**new_event("directory", "employee.transferred", {"unit": unit}),
                    "occurred_at": datetime.now(UTC)})


def add_one(db, unit, event):
    return apply_once(db.headcount, {"_id": unit}, {"$inc": {"n": 1}}, event, upsert=True)


def test_distinct_events_upserting_one_new_document_each_apply_once(db):
    for round_ in range(DOCUMENTS):
        unit = f"unit{round_}"
        events = [an_event(unit) for _ in range(EVENTS)]

        applied = race(events, lambda event, unit=unit: add_one(db, unit, event))

        assert applied == [True] * EVENTS, f"{unit}: {applied.count(False)} effects lost"
        assert db.headcount.find_one({"_id": unit})["n"] == EVENTS
        # the same events again, racing as redeliveries would: none applies a second time
        assert race(events, lambda event, unit=unit: add_one(db, unit, event)) == [False] * EVENTS
        assert db.headcount.find_one({"_id": unit})["n"] == EVENTS
