# eventlet must patch the standard library before anything else is imported
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()

import os  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

from pamong.config import load_config  # noqa: E402
from pamong.testing import broker  # noqa: E402

TEST_JWT_SECRET = "test-secret-of-at-least-32-bytes-long!"


@pytest.fixture(scope="session")
def vhost():
    """A fresh RabbitMQ vhost for the whole test run, removed at the end."""
    name = broker.create_vhost()
    yield name
    broker.delete_vhost(name)


@pytest.fixture
def db_prefix():
    """A database-name prefix unique to one test: ``<prefix><service>`` is that test's db."""
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def config(vhost, db_prefix):
    """Service config pointing at the test vhost and a per-test database prefix."""
    cfg = load_config(overrides={
        "AMQP_URI": broker.amqp_uri_for(vhost),
        "MONGO_URI": os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/"),
        "MONGO_DB_PREFIX": db_prefix,
        "JWT_SECRET": TEST_JWT_SECRET,
        "RETRY_DELAYS": [0.2, 0.4],
        "RETRY_JITTER": 0.1,
        "OUTBOX_POLL_SECONDS": 0.05,
        "OUTBOX_SWEEP_SECONDS": 2,
    })
    yield cfg
    _drop_databases(cfg)


def _drop_databases(cfg):
    import pymongo

    client = pymongo.MongoClient(cfg["MONGO_URI"], serverSelectionTimeoutMS=2000)
    try:
        for name in client.list_database_names():
            if name.startswith(cfg["MONGO_DB_PREFIX"]):
                client.drop_database(name)
    finally:
        client.close()
