"""The kernel's inbox claim (``pamong.events.consumer.Inbox``) under the conformance suite's
condition: one event delivered to many workers of two replicas at once, while the claim a
crashed worker left on it has expired. Every worker finds the stale claim and tries to take it
over with a compare-and-set on its expiry; on a database whose conditional update is atomic
exactly one worker runs the handler, so the effect happens once.
"""

import time
import uuid
from datetime import UTC, datetime

import pytest

from pamong.events.consumer import Inbox, inbox_key
from pamong.testing import race

pytestmark = pytest.mark.database

EVENTS = 40
WORKERS_PER_REPLICA = 8


@pytest.fixture
def replicas(clients):
    """Two replicas' inboxes: each its own client (connection pool) on one database."""
    return [Inbox(db, lease=60) for db in clients(2)]


def new_key():
    return inbox_key("sink.on_recorded", str(uuid.uuid4()), datetime.now(UTC))


def test_a_stale_claim_is_taken_over_by_one_worker(replicas):
    keys = [new_key() for _ in range(EVENTS)]
    for key in keys:
        replicas[0].db[key.bucket].insert_one({"_id": key.id, "until": time.time() - 600})
    workers = [(inbox, n) for inbox in replicas for n in range(WORKERS_PER_REPLICA)]
    runs = {}
    for key in keys:
        outcomes = race(workers, lambda worker, key=key: worker[0].claim(key))
        runs[key] = outcomes.count("run")
        assert set(outcomes) <= {"run", "busy"}
    assert {key: n for key, n in runs.items() if n != 1} == {}


def test_a_fresh_event_is_claimed_by_one_worker_and_then_done(replicas):
    key = new_key()
    workers = [(inbox, n) for inbox in replicas for n in range(WORKERS_PER_REPLICA)]
    outcomes = race(workers, lambda worker: worker[0].claim(key))
    assert outcomes.count("run") == 1
    assert outcomes.count("busy") == len(workers) - 1
    winner, _ = workers[outcomes.index("run")]
    winner.done(key)  # only the claim's owner marks it done
    assert set(race(workers, lambda worker: worker[0].claim(key))) == {"done"}


def test_a_worker_whose_claim_was_taken_over_leaves_the_new_claim_alone(replicas):
    stale, current = replicas
    key = new_key()
    assert stale.claim(key) == "run"
    # the stale worker's renewals failed (a database hiccup) and its lease ran out meanwhile
    stale.db[key.bucket].update_one({"_id": key.id}, {"$set": {"until": time.time() - 1}})
    assert current.claim(key) == "run"
    claim = current.db[key.bucket].find_one({"_id": key.id})

    stale.renew()  # the stale worker is still running: its upkeep, then its failure path
    stale.release(key)
    stale.done(key)  # or its success path

    assert current.db[key.bucket].find_one({"_id": key.id}) == claim  # untouched: still live
    assert stale.claim(key) == "busy"
    current.done(key)
    assert stale.claim(key) == "done"
