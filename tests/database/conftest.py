"""The conformance suite's database: a fresh one on whatever ``MONGO_URI`` points at."""

import os
import uuid

import pymongo
import pytest


@pytest.fixture
def clients():
    """``clients(n)``: n clients (connection pools, like n replicas) on one fresh database;
    returns their database handles. The database is dropped afterwards."""
    uri = os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/")
    name = f"tdb{uuid.uuid4().hex[:10]}_conformance"
    made = []

    def make(n=1):
        made.extend(pymongo.MongoClient(uri, maxPoolSize=64, serverSelectionTimeoutMS=5000)
                    for _ in range(n))
        return [client[name] for client in made[-n:]]

    yield make
    if made:
        made[0].drop_database(name)
    for client in made:
        client.close()


@pytest.fixture
def db(clients):
    """One client's handle on a fresh database."""
    return clients(1)[0]
