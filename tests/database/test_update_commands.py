"""Database conformance: update commands of many statements (pamong's group commit).

``OutboxWriter.update_grouped`` and the relay send the writes of concurrent requests as the
statements of one ``update`` command. Each statement must behave as if it were sent alone: it
sees what the statements before it wrote, a version check in it has one winner, and
concurrent commands over the same documents lose no update. (The local FerretDB writes a
command's statements in one SQLite transaction, patch 0007; these tests hold it to the
behaviour MongoDB gives statement by statement.)
"""

import random

import pytest
from bson import SON
from pymongo.errors import OperationFailure

from pamong.testing import race

pytestmark = pytest.mark.database


def update(db, statements, ordered=True):
    """One ``update`` command on collection ``c``; ``statements``: ``(filter, update)`` or
    ``(filter, update, options)``."""
    return db.command(SON([("update", "c"), ("ordered", ordered), ("updates", [
        {"q": statement[0], "u": statement[1], **(statement[2:] or [{}])[0]}
        for statement in statements])]))


def test_a_statement_sees_what_the_statements_before_it_wrote(db):
    db.c.insert_many([{"_id": "x", "n": 0, "version": 0}, {"_id": "y", "n": 0}])
    reply = update(db, [({"_id": "x"}, {"$inc": {"n": 1}}),
                        ({"_id": "y"}, {"$inc": {"n": 1}}),
                        ({"_id": "x"}, {"$inc": {"n": 1}}),
                        ({"_id": "x", "version": 0}, {"$set": {"version": 1}}),
                        ({"_id": "x", "version": 0}, {"$set": {"version": 1}}),  # lost
                        ({"n": 2}, {"$inc": {"n": 10}})])  # found by a scan: x only
    assert reply["n"] == 5
    assert db.c.find_one({"_id": "x"}) == {"_id": "x", "n": 12, "version": 1}
    assert db.c.find_one({"_id": "y"})["n"] == 1


def test_an_upsert_between_updates_is_inserted_once_and_the_others_apply(db):
    db.c.insert_one({"_id": "x", "n": 0})
    reply = update(db, [({"_id": "x"}, {"$inc": {"n": 1}}),
                        ({"_id": "new"}, {"$inc": {"n": 5}}, {"upsert": True}),
                        ({"_id": "new"}, {"$inc": {"n": 1}}),
                        ({"_id": "x"}, {"$inc": {"n": 1}})])
    assert reply["n"] == 4 and len(reply["upserted"]) == 1
    assert {d["_id"]: d["n"] for d in db.c.find()} == {"x": 2, "new": 6}


def test_an_ordered_command_keeps_what_came_before_a_failing_statement(db):
    db.c.insert_many([{"_id": "x", "n": 0}, {"_id": "text", "n": "not a number"}])
    try:
        reply = update(db, [({"_id": "x"}, {"$inc": {"n": 1}}),
                            ({"_id": "text"}, {"$inc": {"n": 1}}),  # refused
                            ({"_id": "x"}, {"$inc": {"n": 1}})])
        errors = reply.get("writeErrors", [])
    except OperationFailure as failure:  # a server may end the command instead
        errors = [failure.details]
    assert errors, "incrementing a string must be refused"
    assert db.c.find_one({"_id": "x"})["n"] == 1  # the first stands, the third never ran
    assert db.c.find_one({"_id": "text"})["n"] == "not a number"


def test_concurrent_commands_over_the_same_documents_lose_no_update(clients):
    db, *others = clients(4)
    documents, threads, commands = 12, 8, 40
    db.c.insert_many([{"_id": f"d{i}", "n": 0} for i in range(documents)])
    handles = [db, *others]

    def bump(worker):
        rng = random.Random(worker)
        mine = handles[worker % len(handles)]
        for _ in range(commands):
            ids = rng.sample(range(documents), 8)
            update(mine, [({"_id": f"d{i}"}, {"$inc": {"n": 1}}) for i in ids], ordered=False)

    race(range(threads), bump)
    assert sum(d["n"] for d in db.c.find()) == threads * commands * 8


def test_version_checks_in_concurrent_commands_have_one_winner_each(clients):
    db, other = clients(2)
    documents, threads, rounds = 6, 12, 15
    db.c.insert_many([{"_id": f"d{i}", "version": 0, "winners": []} for i in range(documents)])

    def write(worker):
        mine = (db, other)[worker % 2]
        for r in range(rounds):
            seen = {d["_id"]: d["version"] for d in mine.c.find({}, {"version": 1})}
            update(mine, [({"_id": i, "version": v},
                           {"$set": {"version": v + 1}, "$push": {"winners": f"{worker}:{r}"}})
                          for i, v in seen.items()], ordered=False)

    race(range(threads), write)
    for document in db.c.find():
        # two winners of one version would both have pushed: more winners than versions
        assert len(document["winners"]) == document["version"] > 0
