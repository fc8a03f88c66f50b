"""The day of tests/e2e/day.py again, with trouble at random points (issue 18 item 3): every
module process SIGKILLed once and restarted, RabbitMQ restarted once, the database stopped for
10 s once. Afterwards nothing is lost (every outbox empty, every dead-letter and unroutable
queue empty but for the message poisoned on purpose), nothing happened twice (each journey's
counts, from each module's own data), and every module is ready again without a restart of
its own. The plan, the seed (``PAMONG_CHAOS_SEED`` replays one) and the counts are printed.

The broker and the database are a private stack (``deploy/local/stack.sh`` in a copy, as
test_stack_script.py runs it), so restarting them does not disturb the rest of the suite.
"""

import json
import os
import random
import time
import uuid

import eventlet
import pytest
import requests

from pamong.config import load_config
from pamong.events.outbox import OUTBOX
from pamong.testing import publish_raw, wait_until
from tests.conftest import TEST_JWT_SECRET
from tests.e2e.day import Day
from tests.e2e.suite import Suite, SuiteClock
from tests.reliability.test_stack_script import FERRETDB, StackCopy, _rabbitmq_installed

pytestmark = pytest.mark.reliability

OUTAGE_SECONDS = 10
# the outbox's own collections: what a relay or a sweep has still to publish
OUTBOX_COLLECTIONS = ("_outbox_batches", "_outbox_ready", "_outbox_quarantine")


@pytest.fixture
def private_stack(tmp_path):
    if not _rabbitmq_installed() or not FERRETDB.exists():
        pytest.skip("needs rabbitmq-server and the FerretDB binary that `make` builds")
    stack = StackCopy(tmp_path / "stack")
    stack.run("up")
    yield stack
    stack.run("down", check=False)


class Chaos:
    """The trouble, planned on steps of the day; each act runs in a green thread that starts
    at a random moment of its step, while the step goes on, one act at a time."""

    def __init__(self, suite, stack, steps, seed):
        self.suite, self.stack = suite, stack
        rng = random.Random(seed)
        acts = [("kill", name) for name in suite.modules] + [("broker", None), ("db", None)]
        # never during the first step (the modules starting): from the directory import on
        at_steps = rng.sample(range(1, len(steps)), len(acts))
        self.plan = {step: (act, rng.uniform(0, 1.5)) for step, act in zip(at_steps, acts,
                                                                           strict=True)}
        self.lock = eventlet.semaphore.Semaphore()
        self.log = []

    def during(self, index):
        """Start the act planned for step ``index`` (if any); returns its green thread."""
        if index not in self.plan:
            return None
        (kind, name), delay = self.plan[index]
        return eventlet.spawn_after(delay, self._act, kind, name)

    def _act(self, kind, name):
        with self.lock:
            started = time.monotonic()
            if kind == "kill":
                self.suite.restart(name)
            elif kind == "broker":
                self.stack.run("down", "rabbitmq")
                self.stack.run("up")
            else:
                self.stack.run("down", "db")
                time.sleep(OUTAGE_SECONDS)  # the outage itself: the database stays away
                self.stack.run("up")
            self.log.append(f"{kind} {name or ''}".strip()
                            + f" ({time.monotonic() - started:.1f} s)")


def test_the_day_survives_crashes_a_broker_restart_and_a_database_outage(private_stack,
                                                                         tmp_path, capsys):
    exported = private_stack.exported()
    config = load_config(overrides={
        "AMQP_URI": exported["AMQP_URI"], "MONGO_URI": exported["MONGO_URI"],
        "MONGO_DB_PREFIX": f"c{uuid.uuid4().hex[:8]}_", "JWT_SECRET": TEST_JWT_SECRET})
    suite = Suite(config, tmp_path, SuiteClock(tmp_path / "clock"))
    try:
        day = Day(suite)
        steps = list(day.steps())
        seed = int(os.environ.get("PAMONG_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
        chaos = Chaos(suite, private_stack, steps, seed)
        print(f"[chaos] seed {seed}; plan: " + ", ".join(
            f"{steps[i][0]!r}: {act[0]} {act[1] or ''}".strip()
            for i, (act, _) in sorted(chaos.plan.items())), flush=True)
        for index, (name, step) in enumerate(steps):
            print(f"[chaos] {name}", flush=True)
            act = chaos.during(index)
            try:
                step()
            except BaseException:  # (a module the act restarts may be down for a moment)
                print(f"[chaos] modules not running: {suite.exits() or 'none'}", flush=True)
                raise
            if act is not None:
                act.wait()
        poisoned = poison(config, exported["RABBIT_MANAGEMENT_URL"])
        settle(suite, exported["RABBIT_MANAGEMENT_URL"], poisoned)
        assert suite.restarts == dict.fromkeys(suite.modules, 1), suite.restarts
        counts = day.counts()
        print("[chaos] acts: " + "; ".join(chaos.log))
        print(f"[chaos] requests repeated while a module could not answer: {suite.retried}")
        print("[chaos] counts " + json.dumps(counts, indent=1, sort_keys=True), flush=True)
    finally:
        suite.stop()


def poison(config, management_url):
    """One message nobody can handle, on purpose: a ``letter.signed`` that is no event
    envelope, which each consumer of that type (letters' sealing, attendance's assignments)
    parks at once (invalid) in its dead-letter queue. Returns those queues."""
    api = f"{management_url.rstrip('/')}/api"
    bindings = requests.get(f"{api}/exchanges/%2F/letters.events/bindings/source",
                            timeout=10).json()
    consumers = {b["destination"] for b in bindings if b["routing_key"] == "letter.signed"}
    assert consumers, "nobody subscribes to letter.signed"
    publish_raw(config, "letters", "letter.signed", {"poison": True})
    return {f"{queue}.dlq" for queue in consumers}


def settle(suite, management_url, poisoned):
    """Every module ready, every outbox empty, every dead-letter queue empty but those of
    ``poisoned`` (each holding the one poisoned message)."""
    for name in suite.modules:
        wait_until(lambda n=name: _ready(suite, n), timeout=90, interval=0.5,
                   message=f"{name} ready again")
    assert all(code is None for code in suite.alive().values()), suite.alive()
    for name in suite.modules:
        wait_until(lambda n=name: not pending_events(suite.db(n)), timeout=90, interval=0.5,
                   message=f"{name}'s outbox empty")
    parked = wait_until(lambda: _parked(management_url, poisoned), timeout=60, interval=0.5,
                        message=f"only the poisoned message parked, in {sorted(poisoned)}")
    print(f"[chaos] parked queues: {parked}", flush=True)


def pending_events(db):
    """``{collection: documents}`` still holding events to publish."""
    pending = {name: db[name].count_documents({f"{OUTBOX}.0": {"$exists": True}})
               for name in db.list_collection_names() if not name.startswith("_outbox")}
    pending.update({name: db[name].count_documents({}) for name in OUTBOX_COLLECTIONS})
    return {name: count for name, count in pending.items() if count}


def _ready(suite, name):
    try:
        return requests.get(f"{suite.url(name)}/health/ready", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def _parked(management_url, poisoned):
    """What is parked, when the dead-letter queues of ``poisoned`` hold one message each;
    else None (not yet). Fails at once when another DLQ holds one,
    or when an unroutable queue holds an event that a module subscribes to (its queue was
    missing: lost to that module). Unroutable events of types nobody subscribes to are
    normal (``attendance.day_closed`` is for other systems) and listed."""
    api = f"{management_url.rstrip('/')}/api"
    queues = requests.get(f"{api}/queues/%2F", timeout=10).json()
    dlqs = {q["name"]: q.get("messages", 0) for q in queues if q["name"].endswith(".dlq")}
    others = {name: count for name, count in dlqs.items() if count and name not in poisoned}
    assert not others, f"events parked that nobody poisoned: {others}"
    unroutable = {}
    for queue in queues:
        if queue["name"].endswith(".unroutable") and queue.get("messages"):
            source = queue["name"].rsplit(".", 1)[0]
            types = _unroutable_types(api, queue["name"], queue["messages"])
            bound = {b["routing_key"] for b in requests.get(
                f"{api}/exchanges/%2F/{source}.events/bindings/source", timeout=10).json()}
            assert not types.keys() & bound, \
                f"{queue['name']} holds events a module subscribes to: {types.keys() & bound}"
            unroutable[queue["name"]] = types
    if all(dlqs.get(name) == 1 for name in poisoned):
        return {"dead-lettered": {name: n for name, n in dlqs.items() if n},
                "unroutable (no subscriber)": unroutable}
    return None


def _unroutable_types(api, queue, count):
    """``{event type: messages}`` in ``queue``, peeked (requeued)."""
    messages = requests.post(f"{api}/queues/%2F/{queue}/get", timeout=30, json={
        "count": count, "ackmode": "ack_requeue_true", "encoding": "auto"}).json()
    types = {}
    for message in messages:
        key = message["properties"]["headers"]["x-pamong-routing-key"]
        types[key] = types.get(key, 0) + 1
    return types
