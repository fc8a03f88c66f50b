"""pamong.rpc against the real broker and database: a request whose caller timed out does not
run when its target comes back, a state change called with one idempotency key applies
once, through retries and between two replicas, and a retry waits for a call still running
no longer than the RPC timeout."""

import gc
import time
import uuid
import weakref

import eventlet
import pytest
from nameko.dependency_providers import Config
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.extensions import DependencyProvider
from nameko.rpc import rpc
from pymongo import ReturnDocument

from pamong.rpc import IDEMPOTENCY_COLLECTION, CallInProgress, Rpc, RpcClient, idempotent
from pamong.storage import Mongo, client_for, database_name
from pamong.testing import running, wait_until

pytestmark = pytest.mark.integration

ARRIVALS = []  # (replica, method) of every request a Ledger worker received


class Arrivals(DependencyProvider):
    def worker_setup(self, worker_ctx):
        ARRIVALS.append((self.container.config.get("REPLICA"),
                         worker_ctx.entrypoint.method_name))


class Ledger:
    name = "rpcledger"
    db = Mongo()
    config = Config()
    arrivals = Arrivals()

    @rpc
    def record(self, entry):
        self.db.entries.insert_one({"_id": entry})
        return entry

    @rpc
    @idempotent
    def credit(self, account, amount):
        eventlet.sleep(0.3)  # a window for duplicates to arrive while this one runs
        doc = self.db.accounts.find_one_and_update(
            {"_id": account}, {"$inc": {"balance": amount}}, upsert=True,
            return_document=ReturnDocument.AFTER)
        return {"balance": doc["balance"], "call": uuid.uuid4().hex}

    @rpc
    @idempotent  # waits RPC_TIMEOUT_SECONDS for a call still running
    def slow(self, seconds):
        eventlet.sleep(seconds)
        return uuid.uuid4().hex

    @rpc
    @idempotent(timeout=8)  # its own timeout, longer than RPC_TIMEOUT_SECONDS
    def slow_with_own_timeout(self, seconds):
        eventlet.sleep(seconds)
        return uuid.uuid4().hex


class Caller:
    name = "rpccaller"
    ledger = Rpc("rpcledger", timeout=1)

    @rpc
    def forward(self, entry):
        return self.ledger.record(entry)


class Asker:
    name = "rpcasker"
    ledger = Rpc("rpcledger", timeout=1)
    ghost = Rpc("rpcghost", timeout=1)  # no such service: its requests cannot be published

    @rpc
    def ask_ghost(self):
        with pytest.raises(UnknownService):
            self.ghost.anything()

    @rpc
    def ask_too_slow(self):
        with pytest.raises(RpcTimeout):
            self.ledger.slow(3, idempotency_key=uuid.uuid4().hex)

    @rpc
    def forward(self, entry):
        return self.ledger.record(entry)

    @rpc
    def waiters(self):
        """The calls the service's reply listener still waits for."""
        return len(self.ledger.reply_listener._reply_events)


WORKERS = []  # a weak reference to each WatchedCaller worker's service instance


class ServiceInstances(DependencyProvider):
    def worker_setup(self, worker_ctx):
        WORKERS.append(weakref.ref(worker_ctx.service))


class WatchedCaller:
    name = "rpcwatched"
    ledger = Rpc("rpcledger", timeout=5)
    instances = ServiceInstances()

    @rpc
    def forward(self, entry):
        return self.ledger.record(entry)


def ledger_db(config):
    return client_for(config["MONGO_URI"])[database_name(config, Ledger.name)]


def test_a_request_whose_caller_timed_out_does_not_run_later(config):
    with running(config, Ledger):  # declares the ledger's request queue
        pass
    # the ledger is stopped: both callers give up after their timeout
    with RpcClient(config, timeout=1) as client, pytest.raises(RpcTimeout):
        client.rpcledger.record("stale-from-client")
    with running(config, Caller), RpcClient(config, timeout=10) as client:
        with pytest.raises(RemoteError) as raised:
            client.rpccaller.forward("stale-from-service")
        assert raised.value.exc_type == "RpcTimeout"

    with running(config, Ledger), RpcClient(config, timeout=10) as client:
        # the queue is first in, first out: the stale requests would come before this one
        assert client.rpcledger.record("fresh") == "fresh"
    # the runner has stopped, so every request the ledger took has finished
    assert {doc["_id"] for doc in ledger_db(config).entries.find()} == {"fresh"}


def test_a_retry_with_the_same_key_applies_once(config):
    with running(config, Ledger), RpcClient(config, timeout=10) as client:
        first = client.rpcledger.credit("kas", 100, idempotency_key="k1")
        again = client.rpcledger.credit("kas", 100, idempotency_key="k1")
        other = client.rpcledger.credit("kas", 5, idempotency_key="k2")
    assert again == first and first["balance"] == 100
    assert other["balance"] == 105
    assert ledger_db(config).accounts.find_one({"_id": "kas"})["balance"] == 105


def test_concurrent_duplicates_on_two_replicas_apply_once(config):
    ARRIVALS.clear()
    replicas = [{**config, "REPLICA": name} for name in ("a", "b")]
    calls = 8
    with running(replicas[0], Ledger), running(replicas[1], Ledger):
        def credit(_):
            with RpcClient(config, timeout=20) as client:
                return client.rpcledger.credit("kas", 100, idempotency_key="same")

        results = list(eventlet.GreenPool(calls).imap(credit, range(calls)))
    assert {replica for replica, method in ARRIVALS if method == "credit"} == {"a", "b"}
    assert all(result == results[0] for result in results), results
    assert results[0]["balance"] == 100
    assert ledger_db(config).accounts.find_one({"_id": "kas"})["balance"] == 100


def test_a_failed_call_releases_its_key(config):
    with running(config, Ledger), RpcClient(config, timeout=10) as client:
        with pytest.raises(RemoteError):
            client.rpcledger.credit("kas", "not a number", idempotency_key="k")
        wait_until(lambda: ledger_db(config)[IDEMPOTENCY_COLLECTION].count_documents({}) == 0,
                   message="the failed call's claim released")
        assert client.rpcledger.credit("kas", 7, idempotency_key="k")["balance"] == 7


def test_a_retry_waits_for_a_running_call_no_longer_than_the_rpc_timeout(config):
    def call(method, seconds):  # a client each: one client serves one green thread
        with RpcClient(config, timeout=20) as client:
            return getattr(client.rpcledger, method)(seconds, idempotency_key="k")

    claims = ledger_db(config)[IDEMPOTENCY_COLLECTION]
    with running({**config, "RPC_TIMEOUT_SECONDS": 1}, Ledger):
        first = eventlet.spawn(call, "slow", 4)
        wait_until(lambda: claims.count_documents({}) == 1, message="the first call's claim")
        started = time.monotonic()
        with pytest.raises(CallInProgress, match="still running"):
            call("slow", 4)
        assert time.monotonic() - started < 2.5  # the service's 1 s, not the first call's 4 s
        result = first.wait()
        assert call("slow", 4) == result  # the first call has finished: its result

        # a method's own timeout outlasts the first call here: the retry gets its result
        first = eventlet.spawn(call, "slow_with_own_timeout", 3)
        wait_until(lambda: claims.count_documents({}) == 2, message="the first call's claim")
        assert call("slow_with_own_timeout", 3) == first.wait()


def test_a_call_that_gets_no_reply_leaves_no_waiter_behind(config):
    """A waiter left in the service's reply listener stays there for good: one per call
    whose request could not be published (nameko's own proxy leaves it), or whose reply
    did not come in time."""
    with running(config, Ledger), running(config, Asker), \
            RpcClient(config, timeout=10) as client:
        client.rpcasker.ask_ghost()
        client.rpcasker.ask_too_slow()
        assert client.rpcasker.forward(f"answered-{uuid.uuid4().hex}").startswith("answered-")
        assert client.rpcasker.waiters() == 0


def test_a_worker_with_an_rpc_proxy_is_freed_when_it_ends(config):
    """The proxy holds the worker's context, which holds the service instance, which holds
    the proxy. Without Rpc's teardown that cycle waits for Python's cyclic collector (with
    the worker's event and everything it touched); with it, the worker's objects go by
    reference counting as soon as it ends. The collector is off here, so only that frees it."""
    WORKERS.clear()
    gc.disable()
    try:
        with running(config, Ledger), running(config, WatchedCaller), \
                RpcClient(config, timeout=10) as client:
            assert client.rpcwatched.forward(f"freed-{uuid.uuid4().hex}").startswith("freed-")
            wait_until(lambda: WORKERS and WORKERS[0]() is None, timeout=5,
                       message="the worker's service instance freed without the collector")
    finally:
        gc.enable()
