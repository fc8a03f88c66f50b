"""Group commits (GroupInsert, GroupFind, GroupCount) against the real database: outcomes per
caller, and fewer round trips."""

import eventlet
import pymongo
import pytest
from pymongo import monitoring

from pamong.storage import CollectionCache, GroupCount, GroupFind, GroupInsert, grouped

pytestmark = pytest.mark.integration


class InsertCommands(monitoring.CommandListener):
    """Counts the commands a test's client sends, by name (``count``: the inserts)."""

    def __init__(self):
        self.commands = {}

    @property
    def count(self):
        return self.commands.get("insert", 0)

    def started(self, event):
        self.commands[event.command_name] = self.commands.get(event.command_name, 0) + 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


@pytest.fixture
def collection(config):
    listener = InsertCommands()
    client = pymongo.MongoClient(config["MONGO_URI"], event_listeners=[listener])
    yield client[f"{config['MONGO_DB_PREFIX']}storage"]["claims"], listener
    client.close()


def test_concurrent_inserts_share_writes_and_report_duplicates(collection):
    claims, listener = collection
    claims.insert_one({"_id": "taken"})
    group = GroupInsert(claims)
    keys = [f"k{i}" for i in range(40)] + ["taken", "k3", "k7"]
    pool = eventlet.GreenPool(len(keys))
    outcomes = list(pool.imap(lambda key: (key, group.insert({"_id": key})), keys))
    inserted = [key for key, ok in outcomes if ok]
    assert sorted(inserted) == sorted(f"k{i}" for i in range(40))
    assert [key for key, ok in outcomes if not ok] == ["taken", "k3", "k7"]
    assert claims.count_documents({}) == 41
    assert listener.count <= 3  # 43 callers, a handful of round trips (1 for the seed)


def test_a_write_error_other_than_duplicate_reaches_its_caller(collection):
    claims, _ = collection
    group = GroupInsert(claims)
    pool = eventlet.GreenPool(2)
    bad = pool.spawn(group.insert, {"_id": "x", "$bad": 1})
    good = pool.spawn(group.insert, {"_id": "y"})
    with pytest.raises(Exception):  # noqa: B017 - the server's own error type varies
        bad.wait()
    assert good.wait() is True
    assert claims.find_one({"_id": "y"}) is not None


def test_concurrent_reads_by_id_share_finds_and_apply_the_projection(collection):
    claims, listener = collection
    claims.insert_many([{"_id": f"p{i}", "rota": i, "history": "x" * 100} for i in range(30)])
    group = GroupFind(claims, (("rota", 1),))
    keys = [f"p{i}" for i in range(30)] + ["missing", "p3"]
    pool = eventlet.GreenPool(len(keys))
    answers = list(pool.imap(group.insert, keys))
    found = dict(zip(keys, answers, strict=True))
    assert found["p3"] == {"_id": "p3", "rota": 3}  # without the history
    assert answers[3] == answers[-1] and answers[3] is not answers[-1]  # one each to change
    assert found["p29"] == {"_id": "p29", "rota": 29}
    assert found["missing"] is None
    assert listener.commands["find"] <= 3  # 32 callers, a handful of round trips


def test_concurrent_counts_on_one_counter_share_an_inc_and_each_get_their_own(collection):
    claims, listener = collection
    group = GroupCount(claims)
    pool = eventlet.GreenPool(50)
    positions = list(pool.imap(lambda _: group.insert("c"), range(50)))
    assert sorted(positions) == list(range(1, 51))
    assert claims.find_one({"_id": "c"})["n"] == 50
    assert listener.commands["findAndModify"] <= 4


def test_the_process_keeps_one_group_per_kind_collection_and_arguments(collection):
    claims, _ = collection
    assert grouped(GroupFind, claims) is grouped(GroupFind, claims)
    assert grouped(GroupFind, claims, (("rota", 1),)) is not grouped(GroupFind, claims)
    assert grouped(GroupInsert, claims) is not grouped(GroupFind, claims)
    assert grouped(GroupFind, claims.database["other"]) is not grouped(GroupFind, claims)


def test_a_service_database_makes_each_collection_once(config):
    client = pymongo.MongoClient(config["MONGO_URI"], tz_aware=True)
    try:
        db = CollectionCache(client, f"{config['MONGO_DB_PREFIX']}storage")
        assert db["claims"] is db["claims"] is db.claims
        assert db["claims"] is not db["other"]
        db["claims"].insert_one({"_id": "cached"})
        assert db["claims"].find_one({"_id": "cached"}) == {"_id": "cached"}
    finally:
        client.close()
