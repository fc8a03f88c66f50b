"""GroupInsert against the real database: outcomes per caller, and fewer round trips."""

import eventlet
import pymongo
import pytest
from pymongo import monitoring

from pamong.storage import GroupInsert

pytestmark = pytest.mark.integration


class InsertCommands(monitoring.CommandListener):
    def __init__(self):
        self.count = 0

    def started(self, event):
        if event.command_name == "insert":
            self.count += 1

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
