"""Scenario ``sweep``: what the relay's periodic sweep costs as the data grows.

Two rows, 1,000 and 100,000 documents in one collection, each with a few documents whose
events a live writer still holds (its lease in ``_outbox_writers``) and one ready outbox
batch. The periodic sweep (every replica, every ``OUTBOX_SWEEP_SECONDS``) reads the leases
and the batches only: the target is its time at 100,000 documents <= 2 x its time at 1,000.
For comparison, each row also times the sweep that recovers a writer whose lease ran out: it
reads the collections that writer named, so it grows with the data (once per dead writer).
"""

import statistics
import time

from bench.common import machine, machine_line, scenario_env, write_results
from pamong.events.envelope import new_event
from pamong.events.outbox import OutboxWriter, Relay
from pamong.storage import client_for, database_name

SIZES = (1_000, 100_000)
PENDING = 5
REPEATS = 20
TARGET = 2.0


def fill(db, size, config):
    """``size`` documents, ``PENDING`` of them with events of a live writer, one ready batch;
    returns the writer's relay (its lease held, its events in memory)."""
    for start in range(0, size - PENDING, 5_000):
        db.records.insert_many([{"_id": f"d{i}", "amount": i}
                                for i in range(start, min(start + 5_000, size - PENDING))])
    relay = Relay(db, config["AMQP_URI"], "bench", config)
    writer = OutboxWriter(db, "bench", relay)
    for i in range(PENDING):
        event = writer.event("bench.swept", {"key": f"p{i}"})
        writer.insert("records", {"_id": f"p{i}", "amount": i}, [event])
    writer.insert_many("records", [({"_id": f"b{i}"}, [new_event(
        "bench", "bench.swept", {"key": f"b{i}"})]) for i in range(3)])
    return relay


def timed(call):
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def measure(config, size):
    db = client_for(config["MONGO_URI"])[database_name(config, f"sweep{size}")]
    writer_relay = fill(db, size, config)
    sweeper = Relay(db, config["AMQP_URI"], "bench", config)
    periodic = []
    for _ in range(REPEATS):
        periodic.append(timed(sweeper.sweep))
        sweeper.pending.clear()
    db["_outbox_writers"].update_one({"_id": writer_relay.writer_id},
                                     {"$set": {"until": 0}})  # the writer died
    recovery = timed(sweeper.sweep)
    recovered = sum(1 for collection, _ in sweeper.pending if collection == "records")
    return {"documents": size, "periodic_ms": round(statistics.median(periodic) * 1000, 2),
            "periodic_max_ms": round(max(periodic) * 1000, 2),
            "dead_writer_recovery_ms": round(recovery * 1000, 2),
            "recovered_documents": recovered}


def run(write=True):
    from marshmallow import Schema, fields

    from pamong.events.contracts import contract

    @contract("bench.swept", 1)
    class BenchSwept(Schema):
        key = fields.String(required=True)

    started = time.time()
    with scenario_env() as (_, config):
        rows = [measure(config, size) for size in SIZES]
        m = machine(config)
    ratio = rows[1]["periodic_ms"] / rows[0]["periodic_ms"]
    ok = ratio <= TARGET and all(r["recovered_documents"] == PENDING for r in rows)
    section = [
        f"One collection of {SIZES[0]:,} and of {SIZES[1]:,} documents; {PENDING} of them "
        "carry events a live writer holds (its lease in `_outbox_writers`), plus one ready "
        f"outbox batch. Periodic sweep: median of {REPEATS} (`Relay.sweep()`, what every "
        "replica runs every `OUTBOX_SWEEP_SECONDS`). Dead-writer recovery: one sweep after the "
        "writer's lease ran out (it reads the collections the writer named).",
        "",
        f"Latest run: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, total wall "
        f"{time.time() - started:.0f} s.  ",
        machine_line(m),
        "",
        "| documents | periodic sweep ms (median) | max ms | dead-writer recovery ms | "
        "documents recovered |",
        "|---:|---:|---:|---:|---:|",
        *[f"| {r['documents']:,} | {r['periodic_ms']} | {r['periodic_max_ms']} | "
          f"{r['dead_writer_recovery_ms']} | {r['recovered_documents']} |" for r in rows],
        "",
        "Targets:",
        "",
        f"- periodic sweep at {SIZES[1]:,} / at {SIZES[0]:,} documents = {ratio:.2f} "
        f"(target <= {TARGET}): **{'PASS' if ratio <= TARGET else 'MISS'}**",
    ]
    print("\n".join(section))
    if write:
        write_results("sweep", {"rows": rows, "ratio": round(ratio, 3), "ok": ok}, section)
    return ok
