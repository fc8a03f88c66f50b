"""Scenario ``database``: single-document atomicity on the local database, and what it costs.

16 clients race at one document and at 16: ``$inc`` with ``update_one``, ``$inc`` with
``find_one_and_update`` (each returned value must be distinct), and the version-checked update
of DESIGN §5 (read ``version`` v, write ``{_id, version: v}`` → v + 1: never two winners of one
v). Each row runs against the database of ``MONGO_URI`` (our FerretDB build, every patch) and
against a FerretDB built without the atomic-writes patch, started here on a free port: the
target is the patched build's operations per second on one document ≥ 0.5 × the unpatched
build's, with zero lost updates, duplicate values and double winners on the patched build.
"""

import collections
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pymongo
from pymongo import ReturnDocument

from bench.common import machine, machine_line, write_results
from pamong import testing
from pamong.config import load_config
from pamong.testing import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
ATOMIC_PATCH = "0004-sqlite-atomic-single-document-writes.patch"
# they change code that 0004 adds, so the build without it leaves them out too
BUILT_ON_ATOMIC = ("0006-sqlite-end-reads-before-writes.patch",
                   "0007-sqlite-one-transaction-per-update-command.patch")
CLIENTS = 16
TARGET = 0.5


def race(task):
    """``task(client)`` for every client at the same moment; (results, seconds)."""
    started = time.perf_counter()
    results = testing.race(range(CLIENTS), task)
    return results, time.perf_counter() - started


def inc(coll, docs, ops):
    coll.insert_many([{"_id": f"d{i}", "n": 0} for i in range(docs)])

    def task(c):
        for k in range(ops):
            coll.update_one({"_id": f"d{(c + k) % docs}"}, {"$inc": {"n": 1}})

    _, seconds = race(task)
    total = sum(d["n"] for d in coll.find())
    return {"ops": CLIENTS * ops, "seconds": seconds, "lost_updates": CLIENTS * ops - total}


def find_and_inc(coll, docs, ops):
    coll.insert_many([{"_id": f"d{i}", "n": 0} for i in range(docs)])

    def task(c):
        return [(f"d{(c + k) % docs}", coll.find_one_and_update(
            {"_id": f"d{(c + k) % docs}"}, {"$inc": {"n": 1}},
            return_document=ReturnDocument.AFTER)["n"]) for k in range(ops)]

    results, seconds = race(task)
    handed = collections.Counter(value for taken in results for value in taken)
    return {"ops": CLIENTS * ops, "seconds": seconds,
            "duplicate_values": sum(k - 1 for k in handed.values() if k > 1)}


def version_check(coll, docs, ops):
    coll.insert_many([{"_id": f"d{i}", "version": 0} for i in range(docs)])

    def task(c):
        won = []
        for k in range(ops):
            key = f"d{(c + k) % docs}"
            seen = coll.find_one({"_id": key})["version"]
            if coll.update_one({"_id": key, "version": seen},
                               {"$set": {"version": seen + 1}}).modified_count:
                won.append((key, seen))
        return won

    results, seconds = race(task)
    wins = collections.Counter(w for won in results for w in won)
    return {"ops": CLIENTS * ops, "seconds": seconds, "wins": sum(wins.values()),
            "double_winners": sum(1 for k in wins.values() if k > 1)}


ROWS = [
    ("inc, 1 document", inc, 1),
    ("inc, 16 documents", inc, 16),
    ("find_one_and_update inc, 1 document", find_and_inc, 1),
    ("version check, 1 document", version_check, 1),
    ("version check, 16 documents", version_check, 16),
]
WRONG = ("lost_updates", "duplicate_values", "double_winners")


def measure(uri, ops):
    client = pymongo.MongoClient(uri, maxPoolSize=CLIENTS * 2)
    name = f"bench{uuid.uuid4().hex[:8]}_database"
    rows = {}
    try:
        for label, row, docs in ROWS:
            result = row(client[name][label.replace(" ", "_").replace(",", "")], docs, ops)
            result["ops_per_s"] = round(result["ops"] / result["seconds"], 1)
            result["seconds"] = round(result["seconds"], 3)
            rows[label] = result
    finally:
        client.drop_database(name)
        client.close()
    return rows


def beside_patched_data():
    """Where the stack's FerretDB keeps its data (disk for `make bench`, tmpfs for `make test`),
    so both builds write to the same kind of storage."""
    settings = ROOT / ".run" / "ferretdb.settings"
    for line in settings.read_text().splitlines() if settings.exists() else ():
        if line.startswith("data="):
            return str(Path(line[5:]).parent)
    (ROOT / ".run").mkdir(exist_ok=True)
    return str(ROOT / ".run")


def stack_gc_settings():
    """The Go GC settings the stack's FerretDB runs with, so both builds collect alike."""
    settings = ROOT / ".run" / "ferretdb.settings"
    first = settings.read_text().splitlines()[0] if settings.exists() else ""
    fields = dict(part.split("=", 1) for part in first.split() if "=" in part)
    return {env: fields[key] for env, key in (("GOGC", "gogc"), ("GOMEMLIMIT", "memlimit"))
            if key in fields}


class UnpatchedFerretDB:
    """FerretDB built without the atomic-writes patch, on a free port with throw-away data."""

    def __enter__(self):
        binary = subprocess.run(
            [str(ROOT / "deploy/local/stack.sh"), "ferretdb-without", ATOMIC_PATCH,
             *BUILT_ON_ATOMIC],
            check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        self.data = tempfile.mkdtemp(prefix="bench-ferretdb-", dir=beside_patched_data())
        port = free_port()
        self.process = subprocess.Popen(
            [binary, "--handler=sqlite", f"--sqlite-url=file:{self.data}/",
             f"--listen-addr=127.0.0.1:{port}", "--telemetry=disable", "--debug-addr=-",
             "--log-level=warn", f"--state-dir={self.data}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, **stack_gc_settings()})
        self.uri = f"mongodb://127.0.0.1:{port}/"
        probe = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500)

        def answers():
            try:
                return probe.admin.command("ping")
            except pymongo.errors.PyMongoError:
                return False

        wait_until(answers, timeout=30, message="the unpatched FerretDB answering")
        probe.close()
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)
        return False


def run(ops, write=True):
    config = load_config(overrides={
        "MONGO_URI": os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")})
    started = time.time()
    # mirrored order (patched, unpatched, unpatched, patched): a slow spell of the shared
    # machine weighs on both builds alike
    passes = {"patched": [], "unpatched": []}
    with UnpatchedFerretDB() as unpatched:
        uris = {"patched": config["MONGO_URI"], "unpatched": unpatched.uri}
        for build in ("patched", "unpatched", "unpatched", "patched"):
            passes[build].append(measure(uris[build], ops))
    rows = {build: {label: mean_of([p[label] for p in runs]) for label, _, _ in ROWS}
            for build, runs in passes.items()}

    ratio = (rows["patched"]["inc, 1 document"]["ops_per_s"]
             / rows["unpatched"]["inc, 1 document"]["ops_per_s"])
    wrong_patched = {label: {k: row[k] for k in WRONG if row.get(k)}
                     for label, row in rows["patched"].items()
                     if any(row.get(k) for k in WRONG)}
    ok = ratio >= TARGET and not wrong_patched

    section = [
        f"{CLIENTS} clients (green threads, each with its own connection, released together) "
        f"× {ops} operations per row: `$inc` by `update_one` on 1 document and on 16 "
        "(client c's k-th operation goes to document (c + k) mod 16), `$inc` by "
        "`find_one_and_update` returning the new value, and the version-checked update (read "
        "`version` v, `update_one({_id, version: v}, {$set: {version: v + 1}})`). Each row "
        "against our FerretDB build (every patch in `deploy/local/ferretdb-patches/`) and "
        f"against one built without `{ATOMIC_PATCH}` (and "
        f"{' and '.join(f'`{p}`' for p in BUILT_ON_ATOMIC)}, which change its code), in the "
        "order patched, unpatched, "
        "unpatched, patched; the table shows the mean ops/s of the two passes and the "
        "wrong outcomes of both passes together. Wrong outcomes are counted, not guessed: "
        "lost updates = expected total - stored total; duplicate values = values "
        "handed out more than once; double winners = versions won by two or more clients.",
        "",
        f"Latest run: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}, total wall "
        f"{time.time() - started:.0f} s.  ",
        machine_line(machine(config)),
        "",
        "| row | build | ops/s | lost updates | duplicate values | double winners |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for label, _, _ in ROWS:
        for build in ("patched", "unpatched"):
            row = rows[build][label]
            section.append(f"| {label} | {build} | {row['ops_per_s']:.0f} | "
                           + " | ".join(str(row[k]) if k in row else "-" for k in WRONG) + " |")
    section += [
        "",
        "Targets:",
        "",
        f"- patched/unpatched ops/s, `$inc` on 1 document = {ratio:.2f} (target >= {TARGET}): "
        f"**{'PASS' if ratio >= TARGET else 'MISS'}**",
        f"- wrong outcomes on the patched build: {wrong_patched or 'none'}: "
        f"**{'PASS' if not wrong_patched else 'FAIL'}**",
    ]
    print("\n".join(section))
    if write:
        write_results("database", {"ops_per_row": ops, "clients": CLIENTS, "passes": passes,
                                   "means": rows, "ratio_inc_one_document": round(ratio, 3),
                                   "ok": ok}, section)
    return ok


def mean_of(results):
    mean = {}
    for key in results[0]:
        values = [r[key] for r in results]
        mean[key] = round(sum(values) / len(values), 1) if key == "ops_per_s" else sum(values)
    return mean
