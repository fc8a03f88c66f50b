"""Database conformance: the single-document atomicity pamong relies on, as MongoDB gives it.

These tests run against whatever ``MONGO_URI`` points at (the local FerretDB of ``make test``,
or a real MongoDB: ``MONGO_URI=mongodb://... .venv/bin/pytest tests/database``), so the same
file shows that the local database keeps the promises production's MongoDB keeps. Every test
races several clients at one document or one set of documents and counts what went wrong:
lost updates, a value handed out twice, two winners of one version check, a duplicate-key
error from an upsert, a job taken twice.

The clients are green threads (the suite runs under eventlet), each with its own connection
from the pool, so the database really receives the requests at the same time; what is being
tested is the server, not the client.
"""

import collections

import pytest
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from pamong.testing import race

pytestmark = pytest.mark.database

THREADS = 8
ROUNDS = 100


def test_concurrent_inc_loses_no_update(db):
    db.c.insert_one({"_id": "x", "n": 0})

    def bump(_):
        for _ in range(ROUNDS):
            db.c.update_one({"_id": "x"}, {"$inc": {"n": 1}})

    race(range(THREADS), bump)
    assert db.c.find_one({"_id": "x"})["n"] == THREADS * ROUNDS


def test_find_one_and_update_hands_out_every_value_once(db):
    db.c.insert_one({"_id": "counter", "n": 0})

    def take(_):
        return [db.c.find_one_and_update({"_id": "counter"}, {"$inc": {"n": 1}},
                                         return_document=ReturnDocument.AFTER)["n"]
                for _ in range(ROUNDS)]

    values = [v for taken in race(range(THREADS), take) for v in taken]
    handed_twice = {v: k for v, k in collections.Counter(values).items() if k > 1}
    assert handed_twice == {}
    assert sorted(values) == list(range(1, THREADS * ROUNDS + 1))


def test_version_check_never_has_two_winners(db):
    db.c.insert_one({"_id": "doc", "version": 0})
    threads = 16

    def write(worker):
        won = []
        for _ in range(ROUNDS // 2):
            seen = db.c.find_one({"_id": "doc"})["version"]
            result = db.c.update_one({"_id": "doc", "version": seen},
                                     {"$set": {"version": seen + 1, "by": worker}})
            if result.modified_count:
                won.append(seen)
        return won

    wins = [v for won in race(range(threads), write) for v in won]
    double_winners = {v: k for v, k in collections.Counter(wins).items() if k > 1}
    assert double_winners == {}
    assert db.c.find_one({"_id": "doc"})["version"] == len(wins)


def test_upsert_race_is_one_insert_and_updates(db):
    threads = 16

    def upsert(_):
        try:
            return db.c.update_one({"_id": "new"}, {"$inc": {"n": 1}}, upsert=True).upserted_id
        except DuplicateKeyError as exc:
            return exc

    results = race(range(threads), upsert)
    assert [r for r in results if isinstance(r, Exception)] == []
    assert [r for r in results if r is not None] == ["new"]  # exactly one insert
    assert db.c.find_one({"_id": "new"})["n"] == threads


def test_find_one_and_update_upsert_race(db):
    threads = 16

    def upsert(_):
        return db.c.find_one_and_update({"_id": "seq"}, {"$inc": {"n": 1}}, upsert=True,
                                        return_document=ReturnDocument.AFTER)["n"]

    assert sorted(race(range(threads), upsert)) == list(range(1, threads + 1))


def test_set_on_insert_is_applied_by_the_one_insert(db):
    threads = 16

    def upsert(worker):
        result = db.c.update_one({"_id": "first"},
                                 {"$setOnInsert": {"creator": worker}, "$inc": {"n": 1}},
                                 upsert=True)
        return worker if result.upserted_id is not None else None

    creators = [w for w in race(range(threads), upsert) if w is not None]
    doc = db.c.find_one({"_id": "first"})
    assert len(creators) == 1
    assert doc["creator"] == creators[0]
    assert doc["n"] == threads


def test_queue_of_jobs_is_claimed_once_per_job(db):
    jobs = 200
    db.jobs.insert_many([{"_id": f"job{i:03d}", "state": "queued"} for i in range(jobs)])

    def work(worker):
        taken = []
        while job := db.jobs.find_one_and_update({"state": "queued"},
                                                 {"$set": {"state": "taken", "by": worker}}):
            taken.append(job["_id"])
        return taken

    claimed = [job for taken in race(range(THREADS), work) for job in taken]
    taken_twice = {j: k for j, k in collections.Counter(claimed).items() if k > 1}
    assert taken_twice == {}
    assert len(claimed) == jobs
    assert db.jobs.count_documents({"state": "queued"}) == 0


def test_find_one_and_delete_removes_each_document_for_one_caller(db):
    jobs = 100
    db.jobs.insert_many([{"_id": f"job{i:03d}", "state": "queued"} for i in range(jobs)])

    def take(_):
        taken = []
        while job := db.jobs.find_one_and_delete({"state": "queued"}):
            taken.append(job["_id"])
        return taken

    claimed = [job for taken in race(range(THREADS), take) for job in taken]
    assert sorted(claimed) == sorted(f"job{i:03d}" for i in range(jobs))


def test_delete_with_a_filter_sees_the_document_as_it_is(db):
    """A conditional delete (``{_id, state: open}``) racing a change of ``state``: the
    document is either deleted while open or kept as closed, never deleted once closed."""
    docs = 200
    db.c.insert_many([{"_id": f"d{i:03d}", "state": "open"} for i in range(docs)])

    def delete_open(_):
        return sum(db.c.delete_one({"_id": f"d{i:03d}", "state": "open"}).deleted_count
                   for i in range(docs))

    def close(_):
        return sum(db.c.update_one({"_id": f"d{i:03d}", "state": "open"},
                                   {"$set": {"state": "closed"}}).modified_count
                   for i in range(docs))

    deleted, closed = race(["delete", "close"], lambda w: (delete_open if w == "delete"
                                                           else close)(w))
    remaining = db.c.count_documents({})
    assert deleted + closed == docs  # each document went one way, exactly once
    assert remaining == closed
    assert db.c.count_documents({"state": "closed"}) == closed


def test_unique_index_refuses_the_second_insert(db):
    db.people.create_index("nip", unique=True)
    threads = 16

    def insert(worker):
        try:
            db.people.insert_one({"_id": f"p{worker}", "nip": "198609262015051001"})
            return True
        except DuplicateKeyError:
            return False

    assert sorted(race(range(threads), insert)) == [False] * (threads - 1) + [True]
    assert db.people.count_documents({"nip": "198609262015051001"}) == 1

    def insert_same_id(_):
        try:
            db.people.insert_one({"_id": "same"})
            return True
        except DuplicateKeyError:
            return False

    assert race(range(threads), insert_same_id).count(True) == 1


def test_push_and_pull_lose_no_element(db):
    db.c.insert_one({"_id": "list", "items": []})

    def push(worker):
        for i in range(ROUNDS // 2):
            db.c.update_one({"_id": "list"}, {"$push": {"items": f"{worker}-{i}"}})

    race(range(THREADS), push)
    items = db.c.find_one({"_id": "list"})["items"]
    assert sorted(items) == sorted(f"{w}-{i}" for w in range(THREADS) for i in range(ROUNDS // 2))

    def pull(worker):
        for i in range(ROUNDS // 2):
            db.c.update_one({"_id": "list"}, {"$pull": {"items": f"{worker}-{i}"}})

    race(range(THREADS), pull)
    assert db.c.find_one({"_id": "list"})["items"] == []
