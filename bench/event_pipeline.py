"""Scenario ``event_pipeline``: N events from a producer's write to a consumer's effect.

Three rows, one after the other in the same process, against the same broker and database:

(a) raw      kombu publish (no confirms, one connection) -> kombu consumer doing one insert;
(b) naive    nameko service: insert_one + EventDispatcher -> plain @event_handler insert_one
             (no outbox, no idempotency, no retries);
(c) pamong   outbox.insert (document + event in one write) -> relay (confirmed batches)
             -> @handles consumer (contract, inbox idempotency, retries) insert_one.

Every event carries ``sent_at`` (time.time() when the producer wrote it); each effect document
stores ``applied_at``. events/s = N / (last applied_at - first sent_at); latency is
applied_at - sent_at per effect. Targets are ratios: (c)/(b) >= 0.8 and (c)/(a) >= 0.3.
"""

import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import eventlet
import pymongo
from kombu import Connection, Exchange, Queue
from marshmallow import Schema, fields
from nameko.events import EventDispatcher, event_handler
from nameko.rpc import rpc
from nameko.standalone.rpc import ClusterRpcProxy

from bench.common import machine, machine_line, scenario_env, write_results
from pamong.events.consumer import handles
from pamong.events.contracts import contract
from pamong.events.outbox import Outbox
from pamong.storage import Mongo, client_for, database_name
from pamong.testing import running

TARGETS = {"pamong/naive": 0.8, "pamong/raw": 0.3}
ROWS = ("raw", "naive", "pamong")
# effects written so far per row, counted in-process so that waiting costs no database scans
APPLIED = defaultdict(int)


# -- the services -----------------------------------------------------------------------

@contract("bench.recorded", 1)
class BenchRecorded(Schema):
    key = fields.String(required=True)
    sent_at = fields.Float(required=True)


class NaiveProducer:
    name = "benchnaive"
    db = Mongo()
    dispatch = EventDispatcher()

    @rpc
    def produce(self, run, n):
        for i in range(n):
            key = f"{run}-{i}"
            sent_at = time.time()
            self.db.records.insert_one({"_id": key, "sent_at": sent_at})
            self.dispatch("bench.recorded", {"key": key, "sent_at": sent_at})
        return n


class NaiveConsumer:
    name = "benchnaivesink"
    db = Mongo()

    @event_handler("benchnaive", "bench.recorded")
    def on_recorded(self, payload):
        self.db.effects.insert_one({"_id": payload["key"], "sent_at": payload["sent_at"],
                                    "applied_at": time.time()})
        APPLIED["naive"] += 1


class PamongProducer:
    name = "benchprod"
    db = Mongo()
    outbox = Outbox()

    @rpc
    def produce(self, run, n):
        for i in range(n):
            key = f"{run}-{i}"
            sent_at = time.time()
            event = self.outbox.event("bench.recorded", {"key": key, "sent_at": sent_at})
            self.outbox.insert("records", {"_id": key, "sent_at": sent_at}, [event])
        return n


class PamongConsumer:
    name = "benchsink"
    db = Mongo()

    @handles("benchprod", "bench.recorded")
    def on_recorded(self, event):
        self.db.effects.insert_one({"_id": event.data["key"], "sent_at": event.data["sent_at"],
                                    "applied_at": time.time()})
        APPLIED["pamong"] += 1


# -- database round-trip counting (--profile) --------------------------------------------

class CommandCounter(pymongo.monitoring.CommandListener):
    """Counts commands and their server time per (database, command, collection)."""

    def __init__(self):
        self.counts = defaultdict(int)
        self.micros = defaultdict(int)
        self._pending = {}

    def reset(self):
        self.counts.clear()
        self.micros.clear()

    def started(self, event):
        collection = event.command.get(event.command_name)
        if not isinstance(collection, str):
            collection = ""
        self._pending[event.request_id] = (event.database_name, event.command_name, collection)

    def _finish(self, event):
        key = self._pending.pop(event.request_id, None)
        if key is not None:
            self.counts[key] += 1
            self.micros[key] += event.duration_micros

    succeeded = _finish
    failed = _finish

    def report(self, prefix, n):
        rows = []
        for (db, command, collection), count in sorted(self.counts.items(),
                                                       key=lambda kv: -kv[1]):
            if not db.startswith(prefix):
                continue
            rows.append({"db": db[len(prefix):], "command": command, "collection": collection,
                         "count": count, "per_event": round(count / n, 3),
                         "total_ms": round(self.micros[(db, command, collection)] / 1000, 1),
                         "avg_ms": round(self.micros[(db, command, collection)] / 1000 / count,
                                         3)})
        return rows


# -- measuring ----------------------------------------------------------------------------

def wait_for_effects(row, n, timeout):
    """Wait until the row's handlers wrote n effects (figures() then checks the documents)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if APPLIED[row] >= n:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{row}: {APPLIED[row]}/{n} effects after {timeout:.0f}s")


def figures(collection, n):
    sent, applied, latencies = [], [], []
    for doc in collection.find({}, {"sent_at": 1, "applied_at": 1}):
        sent.append(doc["sent_at"])
        applied.append(doc["applied_at"])
        latencies.append(doc["applied_at"] - doc["sent_at"])
    if len(latencies) != n:
        raise RuntimeError(f"expected {n} effects, found {len(latencies)}")
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(round(p / 100 * len(latencies))) - 1)]

    span = max(applied) - min(sent)
    return {"events_per_s": round(n / span, 1), "span_s": round(span, 3),
            "p50_ms": round(pct(50) * 1000, 1), "p99_ms": round(pct(99) * 1000, 1),
            "max_ms": round(latencies[-1] * 1000, 1)}


def run_raw(config, n, timeout):
    db = client_for(config["MONGO_URI"])[database_name(config, "benchraw")]
    effects = db.effects
    effects.drop()  # this pass's effects only
    exchange = Exchange("benchraw.events", type="topic", durable=True)
    queue = Queue("benchraw.on_recorded", exchange=exchange, routing_key="bench.recorded",
                  durable=True)
    done = eventlet.event.Event()
    count = [0]

    def consume():
        with Connection(config["AMQP_URI"]) as conn:
            def on_message(body, message):
                effects.insert_one({"_id": body["key"], "sent_at": body["sent_at"],
                                    "applied_at": time.time()})
                message.ack()
                count[0] += 1
                APPLIED["raw"] += 1

            with conn.Consumer(queue, callbacks=[on_message], prefetch_count=100,
                               accept=["json"]):
                ready.send(True)
                deadline = time.monotonic() + timeout
                while count[0] < n and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=1)
                    except TimeoutError:
                        pass
        done.send(count[0])

    ready = eventlet.event.Event()
    consumer = eventlet.spawn(consume)
    ready.wait()
    run_id = uuid.uuid4().hex[:8]
    with Connection(config["AMQP_URI"]) as conn:
        producer = conn.Producer(serializer="json")
        for i in range(n):
            producer.publish({"key": f"{run_id}-{i}", "sent_at": time.time()},
                             exchange=exchange, routing_key="bench.recorded", delivery_mode=2)
    wait_for_effects("raw", n, timeout)
    done.wait()
    consumer.wait()
    return figures(effects, n)


def run_services(row, config, n, timeout, producer_cls, consumer_cls):
    db = client_for(config["MONGO_URI"])[database_name(config, consumer_cls.name)]
    db.effects.drop()  # this pass's effects only
    run_id = uuid.uuid4().hex[:8]
    # the producer's one RPC call lasts as long as its write loop: no 30 s reply timeout
    with running(config, producer_cls, consumer_cls), \
            ClusterRpcProxy(config, timeout=timeout) as proxy:
        started = time.time()
        reply = getattr(proxy, producer_cls.name).produce.call_async(run_id, n)
        producer = eventlet.spawn(lambda: (reply.result(), time.time())[1])
        wait_for_effects(row, n, timeout)
        produced_at = producer.wait()
    result = figures(db.effects, n)
    result["producer_s"] = round(produced_at - started, 3)  # the producer's write loop alone
    return result


# -- reporting ------------------------------------------------------------------------------

def mean_of(results):
    """A row's figures: the mean of its passes (each pass kept under ``passes``)."""
    row = {key: round(sum(r[key] for r in results) / len(results), 1)
           for key in ("events_per_s", "p50_ms", "p99_ms")}
    row["wall_s"] = round(sum(r["wall_s"] for r in results), 1)
    row["passes"] = results
    return row


def verdicts(rows):
    out = {}
    for name, (top, bottom) in {"pamong/naive": ("pamong", "naive"),
                                "pamong/raw": ("pamong", "raw")}.items():
        if top in rows and bottom in rows:
            ratio = rows[top]["events_per_s"] / rows[bottom]["events_per_s"]
            out[name] = {"ratio": round(ratio, 3), "target": TARGETS[name],
                         "verdict": "PASS" if ratio >= TARGETS[name] else "MISS"}
    return out


def table(rows):
    lines = ["| row | events/s | p50 ms | p99 ms | wall s |", "|---|---:|---:|---:|---:|"]
    labels = {"raw": "(a) raw kombu + pymongo", "naive": "(b) naive nameko",
              "pamong": "(c) pamong outbox + @handles"}
    for name in ROWS:
        if name in rows:
            r = rows[name]
            lines.append(f"| {labels[name]} | {r['events_per_s']:.0f} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['wall_s']:.1f} |")
    return lines


def ratio_lines(ratios):
    return [f"- {name} = {v['ratio']:.2f} (target >= {v['target']}): **{v['verdict']}**"
            for name, v in ratios.items()]


def section(result):
    """The lines of this scenario's section of RESULTS.md."""
    return [
        "N events from the producer's write to the consumer's effect document: (a) raw kombu "
        "publish without confirms and a kombu consumer doing one insert per message; (b) a "
        "naive nameko pair (insert_one + `EventDispatcher`, plain `@event_handler`); (c) pamong "
        "(`outbox.insert` with the event in the same write, relay with confirmed batches, "
        "`@handles` consumer with contract validation and inbox idempotency). events/s = N / "
        "(last applied_at - first sent_at); latency = applied_at - sent_at.",
        "",
        f"Each row ran {result.get('rounds', 1)} times, every other pass in reverse row order "
        "(a b c, c b a: a slow or fast spell of the shared machine weighs on every row alike); "
        "the table shows the mean of the passes, each pass is in the JSON.",
        "",
        f"Latest run: {result['timestamp']}, N = {result['events']} per pass, total wall "
        f"{result['wall_s']:.0f} s.  ",
        machine_line(result["machine"]),
        "",
        *table(result["rows"]),
        "",
        "Targets:",
        "",
        *ratio_lines(result["ratios"]),
    ]


def print_profile(name, rows):
    print(f"\n  database round trips, row {name}:")
    print(f"  {'db':<16}{'command':<10}{'collection':<16}{'count':>8}{'/event':>8}"
          f"{'total ms':>10}{'avg ms':>8}")
    for r in rows:
        print(f"  {r['db']:<16}{r['command']:<10}{r['collection']:<16}{r['count']:>8}"
              f"{r['per_event']:>8}{r['total_ms']:>10}{r['avg_ms']:>8}")


def run(n, profile=False, write=True, rounds=2):
    """``rounds`` passes over the rows, every other one in reverse order (a b c, c b a: a
    slow or fast spell of the shared machine weighs on every row alike); each row reports
    the mean of its passes. ``profile`` makes it one pass."""
    counter = None
    if profile:  # must be registered before the first MongoClient is created
        counter = CommandCounter()
        pymongo.monitoring.register(counter)
        rounds = 1
    with scenario_env() as (vhost, config):
        timeout = max(120.0, n * 0.05)
        started = time.monotonic()
        profiles = {}
        print(f"event_pipeline: N = {n}, vhost {vhost}, databases {config['MONGO_DB_PREFIX']}*")
        env = machine(config)
        steps = {
            "raw": lambda: run_raw(config, n, timeout),
            "naive": lambda: run_services("naive", config, n, timeout,
                                          NaiveProducer, NaiveConsumer),
            "pamong": lambda: run_services("pamong", config, n, timeout,
                                           PamongProducer, PamongConsumer),
        }
        passes = {name: [] for name in ROWS}
        order = [name for r in range(rounds) for name in (ROWS if r % 2 == 0 else ROWS[::-1])]
        for name in order:
            if counter:
                counter.reset()
            APPLIED[name] = 0
            t0 = time.monotonic()
            result = steps[name]()
            result["wall_s"] = round(time.monotonic() - t0, 1)
            passes[name].append(result)
            print(f"  {name:<7} {result}", flush=True)
            if counter:
                profiles[name] = counter.report(config["MONGO_DB_PREFIX"], n)
                print_profile(name, profiles[name])
        rows = {name: mean_of(results) for name, results in passes.items()}

    ratios = verdicts(rows)
    wall = time.monotonic() - started
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(ratio_lines(ratios)).replace("**", ""))
    print(f"\nwall time {wall:.0f} s")
    result = {"scenario": "event_pipeline", "events": n, "rounds": rounds,
              "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
              "wall_s": round(wall, 1), "machine": env, "rows": rows, "ratios": ratios,
              "targets": TARGETS}
    if profiles:
        result["db_round_trips"] = profiles
    if write:
        write_results("event_pipeline", result, section(result))
    return all(v["verdict"] == "PASS" for v in ratios.values())
