# eventlet must patch the standard library before anything else is imported
import os
import warnings

# hypothesis would load the plugins other packages register, trio's among them (selenium's
# dependency), and trio cannot be imported once eventlet has patched socket
os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()

import uuid  # noqa: E402

import pytest  # noqa: E402

from pamong.config import load_config  # noqa: E402
from pamong.testing import broker, drop_databases  # noqa: E402

TEST_JWT_SECRET = "test-secret-of-at-least-32-bytes-long!"


@pytest.fixture
def vhost():
    """A fresh RabbitMQ vhost for each test, removed at its end: no queue, retry copy or
    parked message of one test reaches another."""
    name = broker.create_vhost()
    yield name
    broker.delete_vhost(name)


@pytest.fixture(scope="session")
def session_vhost():
    """One vhost for the whole run, for module-scoped services."""
    name = broker.create_vhost()
    yield name
    broker.delete_vhost(name)


@pytest.fixture
def db_prefix():
    """A database-name prefix unique to one test: ``<prefix><service>`` is that test's db."""
    return f"t{uuid.uuid4().hex[:10]}_"


@pytest.fixture
def queue_type(request, monkeypatch):
    """The bus's queue type for this test: ``QUEUE_TYPE`` (classic unless set), or the
    parameter a module asks for (the event-kernel tests run with classic and quorum queues,
    tests/integration/conftest.py). Set in the environment too, so a ``pamong`` command the
    test runs declares the same type."""
    kind = getattr(request, "param", None) or os.environ.get("QUEUE_TYPE") or "classic"
    monkeypatch.setenv("QUEUE_TYPE", kind)
    return kind


def service_test_config(vhost, db_prefix, queue_type=None):
    """Service config pointing at the test vhost and a database prefix, with fast retries."""
    return load_config(overrides={
        "AMQP_URI": broker.amqp_uri_for(vhost),
        "MONGO_URI": os.environ.get("MONGO_URI", "mongodb://127.0.0.1:27017/"),
        "MONGO_DB_PREFIX": db_prefix,
        "JWT_SECRET": TEST_JWT_SECRET,
        "RETRY_DELAYS": [0.2, 0.4],
        "RETRY_JITTER": 0.1,
        "OUTBOX_POLL_SECONDS": 0.05,
        "OUTBOX_SWEEP_SECONDS": 2,
        **({"QUEUE_TYPE": queue_type} if queue_type else {}),
    })


@pytest.fixture
def config(vhost, db_prefix, queue_type):
    """A test config with a database prefix of its own (dropped afterwards)."""
    cfg = service_test_config(vhost, db_prefix, queue_type)
    yield cfg
    drop_databases(cfg)


