"""Micro-benchmark of the permits list keeper's writes for one submission (issue 14): the
creation's filing in the citizen's list, the submission's filing in the OPD's ``submitted``
work list, its SLA ``due`` day, and the register that takes it out again, against the
running database (``eval "$(deploy/local/stack.sh env)"``), with N applications' lists
stored, in the chunked shape (``services/permits/chunks.py``) and, for comparison, in the
shape kept before (one document per month, per citizen, per due day).

    .venv/bin/python -m bench.permits_lists [--stored 1000 100000] [--submissions 2000]
        [--workers 20]

Each size has its own database (dropped afterwards). Prints, per shape and size, the mean
and p99 milliseconds of the writes per submission over the first and the last 10% of the
submissions, and submissions per second with ``--workers`` green threads.
"""

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import time  # noqa: E402
from datetime import date, timedelta  # noqa: E402

import pymongo  # noqa: E402

from services.permits import chunks  # noqa: E402
from services.permits.applications import QUEUED  # noqa: E402
from services.permits.store import DUE, OWNERS, QUEUES  # noqa: E402

OPD, TODAY = "3510.01", date(2026, 12, 7)
CHECK = (TODAY + timedelta(days=3)).isoformat()


def stored_apps(count, rng):
    """``count`` applications' list fields, a year of a service: most closed, some open."""
    for i in range(count):
        day = (TODAY - timedelta(days=rng.randrange(400))).isoformat()
        state = rng.choices(("collected", "submitted", "registered", "technical_review",
                             "issued", "billed"), (70, 3, 5, 10, 8, 4))[0]
        yield {"_id": f"s{i:07d}", "owner": f"warga-{rng.randrange(700_000)}", "state": state,
               "opd": OPD, "timeline": [{"to": "draft", "on": day, "at": None},
                                        {"to": state, "on": day, "at": None}]}


def prefill(db, count, shape, rng):
    apps = list(stored_apps(count, rng))
    checks = {}
    for app in apps:
        if app["state"] in QUEUED:
            day = (TODAY + timedelta(days=rng.randrange(30))).isoformat()
            checks.setdefault(f"sla:{day}", []).append(app["_id"])
    if shape == "chunked":
        owners, queues = chunks.lists_layout(apps, QUEUED)
        due = chunks.due_layout(checks)
    else:  # one document per citizen, per month of a state, per due day
        owned, months, roots = {}, {}, {}
        for app in apps:
            owned.setdefault(app["owner"], []).append(app["_id"])
            if app["state"] in QUEUED:
                index = f"{OPD}:{app['state']}"
                roots.setdefault(index, set()).add(app["timeline"][-1]["on"][:7])
                months.setdefault(f"{index}:{app['timeline'][-1]['on'][:7]}", []).append(
                    app["_id"])
        owners = [{"_id": k, "applications": v} for k, v in owned.items()]
        queues = [{"_id": k, "months": sorted(v)} for k, v in roots.items()] + \
            [{"_id": k, "ids": v} for k, v in months.items()]
        due = [{"_id": k, "ids": v} for k, v in checks.items()]
    for name, docs in ((OWNERS, owners), (QUEUES, queues), (DUE, due)):
        for start in range(0, len(docs), 2000):
            db[name].insert_many(docs[start:start + 2000], ordered=False)


def submission(n):
    day = TODAY.isoformat()
    return {"_id": f"new{n:06d}", "owner": f"bench-pemohon-{n}", "state": "submitted",
            "opd": OPD, "timeline": [{"to": "draft", "on": day}, {"to": "submitted", "on": day}]}


def keep_chunked(db, app):
    chunks.file_owned(db[OWNERS], app["owner"], app["_id"])  # the creation's event
    chunks.file_queued(db[QUEUES], OPD, "submitted", app)  # the submission's event
    chunks.due_add(db[DUE], f"sla:{CHECK}", [app["_id"]])  # the submit request's SLA day


def leave_chunked(db, app):  # the register event takes it out of the submitted list
    chunks.unfile_queued(db[QUEUES], OPD, "submitted", app, [1])


def keep_before(db, app):
    def add(name, doc_id, field, value):
        db[name].update_one({"_id": doc_id}, {"$addToSet": {field: value}}, upsert=True)
    add(OWNERS, app["owner"], "applications", app["_id"])
    add(QUEUES, f"{OPD}:submitted", "months", TODAY.isoformat()[:7])
    add(QUEUES, f"{OPD}:submitted:{TODAY.isoformat()[:7]}", "ids", app["_id"])
    add(DUE, f"sla:{CHECK}", "ids", app["_id"])


def leave_before(db, app):
    db[QUEUES].update_one({"_id": f"{OPD}:submitted:{TODAY.isoformat()[:7]}"},
                          {"$pull": {"ids": app["_id"]}})


def timed(task, items, workers):
    pool, took = eventlet.GreenPool(workers), []

    def one(item):
        started = time.perf_counter()
        task(item)
        took.append((item["_id"], (time.perf_counter() - started) * 1000))
    started = time.perf_counter()
    for item in items:
        pool.spawn(one, item)
    pool.waitall()
    return took, len(items) / (time.perf_counter() - started)


def summary(took):
    took = [ms for _, ms in sorted(took)]
    tenth = max(1, len(took) // 10)

    def stats(part):
        part = sorted(part)
        return f"mean {sum(part) / len(part):6.1f} p99 {part[int(len(part) * 0.99) - 1]:6.1f}"
    return f"first 10% {stats(took[:tenth])} | last 10% {stats(took[-tenth:])}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stored", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--submissions", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--shapes", nargs="+", default=["chunked", "before"])
    args = parser.parse_args()
    client = pymongo.MongoClient(os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/"))
    for shape in args.shapes:
        keep, leave = (keep_chunked, leave_chunked) if shape == "chunked" else \
            (keep_before, leave_before)
        for count in args.stored:
            name = f"bench_lists_{shape}_{count}"
            client.drop_database(name)
            db = client[name]
            started = time.perf_counter()
            prefill(db, count, shape, random.Random(14))
            filled = time.perf_counter() - started
            apps = [submission(n) for n in range(args.submissions)]
            took, rate = timed(lambda a, db=db, keep=keep: keep(db, a), apps, args.workers)
            biggest = max((len(d.get("ids", d.get("applications", ()))) for name in (
                QUEUES, OWNERS, DUE) for d in db[name].find({}, {"ids": 1, "applications": 1})),
                default=0)
            left, left_rate = timed(lambda a, db=db, leave=leave: leave(db, a), apps,
                                    args.workers)
            print(f"{shape:8} stored {count:>7} (prefill {filled:5.1f} s): file "
                  f"{rate:6.1f}/s {summary(took)}; take out {left_rate:6.1f}/s "
                  f"{summary(left)}; largest list document after the filings: {biggest} ids",
                  flush=True)
            client.drop_database(name)


if __name__ == "__main__":
    main()
