"""RPC between services that gives up cleanly: requests expire, state changes apply once.

A caller that times out has given up, so its request must not run later (when a stopped
target comes back, say): every request is published with a message TTL equal to the caller's
timeout, and the broker drops it unread once it is stale. Use these instead of nameko's
proxies:

    class Letters:
        directory = Rpc("directory", timeout=5)      # in a service: self.directory.method(...)

    with RpcClient(config, timeout=5) as rpc:        # outside one (CLI, tests)
        rpc.directory.method(...)

and ``@rpc`` from here for a method other services call (nameko's, on our queue consumer).

A request already running when the caller gives up still finishes, and the caller cannot tell
whether it did, so it retries with the same key: a state-changing method is ``@idempotent``
and called with ``idempotency_key=`` (one key per intended change, e.g. ``uuid4().hex``, reused
for every retry of that change). A retry that arrives while the first call still runs raises
``CallInProgress`` after the RPC timeout: retry again later, with the same key. A reply the
broker cannot take (it went away while the request ran) is lost like one the caller stopped
waiting for: the caller times out and retries; the service keeps running.

``RPC_TIMEOUT_SECONDS`` (default 10) is the timeout when none is given. Keep RPC off hot paths
(DESIGN §11): shared data travels as events.
"""

import functools
import inspect
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import eventlet
import pymongo.errors
from amqp.exceptions import ConnectionError as AmqpConnectionError
from kombu.exceptions import OperationalError
from kombu.utils import json
from nameko.dependency_providers import Config
from nameko.exceptions import RpcTimeout, deserialize_to_instance
from nameko.rpc import MethodProxy, ReplyListener, RpcConsumer, RpcProxy, ServiceProxy
from nameko.rpc import Rpc as RpcEntrypoint
from nameko.standalone.rpc import ClusterProxy, ClusterRpcProxy
from pymongo.database import Database

from pamong.config import DEFAULTS
from pamong.events.consumer import PamongQueueConsumer

_log = logging.getLogger(__name__)

IDEMPOTENCY_COLLECTION = "_rpc_idempotency"
# a claim not renewed for this long belongs to a dead process: a retry may take it over
IDEMPOTENCY_LEASE_SECONDS = 30
_POLL_SECONDS = 0.05


def _timeout(config, timeout):
    return float(timeout or config.get("RPC_TIMEOUT_SECONDS", DEFAULTS["RPC_TIMEOUT_SECONDS"]))


class _ExpiringMethodProxy(MethodProxy):
    """nameko's method proxy, publishing with ``expiration`` and waiting at most that long."""

    def __init__(self, worker_ctx, service_name, method_name, reply_listener, timeout):
        self.timeout = timeout
        super().__init__(worker_ctx, service_name, method_name, _Waiters(reply_listener),
                         expiration=timeout)

    def __call__(self, *args, **kwargs):
        waited = None
        try:
            reply = self._call(*args, **kwargs)
            with eventlet.Timeout(self.timeout) as waited:
                return reply.result()
        except eventlet.Timeout as timeout:
            if timeout is not waited:
                raise
            raise RpcTimeout(self.timeout) from None
        finally:
            self.reply_listener.forget()


class _Waiters:
    """The reply listener as a method proxy uses it, remembering which correlation id each
    green thread's call waits on. A reply takes its waiter from the listener; when none
    came (a timeout) or none can (publishing the request failed: the broker away, no such
    service), nameko left the waiter there for good: ``forget`` takes it."""

    def __init__(self, listener):
        self.listener = listener
        self.waiting = {}  # green thread -> the correlation id of its call

    @property
    def routing_key(self):
        return self.listener.routing_key

    def get_reply_event(self, correlation_id):
        self.waiting[eventlet.getcurrent()] = correlation_id
        return self.listener.get_reply_event(correlation_id)

    def forget(self):
        correlation_id = self.waiting.pop(eventlet.getcurrent(), None)
        self.listener._reply_events.pop(correlation_id, None)


class _ExpiringServiceProxy(ServiceProxy):
    def __init__(self, worker_ctx, service_name, reply_listener, timeout):
        super().__init__(worker_ctx, service_name, reply_listener)
        self.timeout = timeout

    def __getattr__(self, name):
        return _ExpiringMethodProxy(self.worker_ctx, self.service_name, name,
                                    self.reply_listener, self.timeout)


# nameko's RPC entrypoint and reply listener on the queue consumer our event handlers use
# (one per container, as nameko shares its own): it stops in a tenth of a second, not 2 s
class _RpcConsumer(RpcConsumer):
    queue_consumer = PamongQueueConsumer()

    def handle_result(self, message, result, exc_info):
        """nameko's reply, but a broker out of reach while it is sent costs the reply, not
        the service: nameko let the error end the worker's thread, which kills the container
        (a broker restart during a request stopped the whole module). The request ran, so
        it is acknowledged (if that connection is gone too, the broker delivers it again
        until its TTL lapses); the caller times out and retries, as after any lost reply."""
        try:
            return super().handle_result(message, result, exc_info)
        except (OperationalError, AmqpConnectionError, OSError) as exc:
            routing_key = message.delivery_info.get("routing_key")
            _log.warning("could not send the reply to %s, the broker is out of reach (%s): "
                         "its caller times out", routing_key, exc)
            self.queue_consumer.ack_message(message)
            return result, exc_info


class _RpcEntrypoint(RpcEntrypoint):
    rpc_consumer = _RpcConsumer()


rpc = _RpcEntrypoint.decorator


class _ReplyListener(ReplyListener):
    queue_consumer = PamongQueueConsumer()


class Rpc(RpcProxy):
    """A service's proxy to ``target_service``: requests expire after ``timeout`` seconds,
    and a call raises ``nameko.exceptions.RpcTimeout`` after that long."""

    rpc_reply_listener = _ReplyListener()

    def __init__(self, target_service, timeout=None):
        super().__init__(target_service)
        self.timeout = timeout

    def get_dependency(self, worker_ctx):
        return _ExpiringServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener,
                                     _timeout(self.container.config, self.timeout))

    def worker_teardown(self, worker_ctx):
        # The proxy holds the worker's context, which holds the service instance, which holds
        # the proxy: a cycle that only Python's cyclic collector would free, with the event
        # and everything the worker touched (a tenth of notify's CPU per message went to
        # those collections). The worker is done: let its objects go with it.
        worker_ctx.service.__dict__.pop(self.attr_name, None)


class _ExpiringClusterProxy(ClusterProxy):
    def __init__(self, worker_ctx, reply_listener, timeout):
        self._timeout = timeout
        super().__init__(worker_ctx, reply_listener)

    def __getattr__(self, name):
        if name not in self._proxies:
            # nameko's ServiceProxy hands these options to the publisher of each request
            self._proxies[name] = ServiceProxy(self._worker_ctx, name, self._reply_listener,
                                               expiration=self._timeout)
        return self._proxies[name]


class RpcClient(ClusterRpcProxy):
    """``with RpcClient(config, timeout=5) as rpc: rpc.<service>.<method>(...)`` from outside
    a service; requests expire after ``timeout`` and a call raises ``RpcTimeout`` then."""

    def __init__(self, config, timeout=None, context_data=None):
        timeout = _timeout(config, timeout)
        super().__init__(config, context_data=context_data, timeout=timeout)
        self._proxy = _ExpiringClusterProxy(self._worker_ctx, self._reply_listener, timeout)


@deserialize_to_instance  # the caller gets this type back, not a RemoteError
class CallInProgress(Exception):
    """An earlier call with the same idempotency key is still running: retry later with the
    same key (it returns that call's result once it has finished)."""


def idempotent(method=None, *, timeout=None):
    """Run a state-changing service method once per ``idempotency_key``.

        config = Config()
        db = Mongo()

        @rpc
        @idempotent
        def transfer(self, nip, unit): ...       # called as transfer(nip, unit, idempotency_key=k)

    The first call with a key claims it with one insert of ``{_id: "<method>:<key>"}`` into
    the service's database (``_rpc_idempotency``): the unique ``_id`` gives one winner even
    between replicas, and the finished call stores its result (as JSON, exactly what the
    caller received) in the same document. A repeat returns that result, waiting while the
    first call still runs, but no longer than the RPC timeout (``timeout`` seconds, else the
    service's ``RPC_TIMEOUT_SECONDS``, read through its ``Config`` dependency): its caller has
    given up by then, and waiting on a hung first call would fill the worker pool with
    retries. It then raises ``CallInProgress``. A call that raises releases its key, so a
    retry runs again. The claim is renewed while the call runs; a process that dies mid-call
    leaves it to lapse after ``IDEMPOTENCY_LEASE_SECONDS``, and a retry then runs the method
    again: an effect that must never repeat even then records the key in its own
    single-document write.
    """
    if method is None:  # @idempotent(timeout=...)
        return functools.partial(idempotent, timeout=timeout)

    @functools.wraps(method)
    def wrapper(self, *args, idempotency_key, **kwargs):
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise ValueError("idempotency_key must be a non-empty string")
        claims = _database_of(self)[IDEMPOTENCY_COLLECTION]
        wait = _timeout(_config_of(self), timeout)
        key, token = f"{method.__name__}:{idempotency_key}", uuid.uuid4().hex
        done = _acquire(claims, key, token, wait)
        if done is not None:
            return json.loads(done["result"])
        renewer = eventlet.spawn(_renew, claims, key, token)
        try:
            result = method(self, *args, **kwargs)
        except BaseException:
            renewer.kill()
            claims.delete_one({"_id": key, "token": token})
            raise
        renewer.kill()
        stored = claims.update_one({"_id": key, "token": token},
                                   {"$set": {"state": "done", "result": json.dumps(result),
                                             "done_at": _now()}})
        if not stored.matched_count:
            _log.error("idempotency claim %s was taken over while its call ran", key)
        return result

    return wrapper


def _acquire(claims, key, token, wait):
    """None once this call holds ``key``; the finished call's document if there is one;
    ``CallInProgress`` when another call still holds it after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        try:
            claims.insert_one({"_id": key, "state": "running", "token": token,
                               "lease_until": _lease_end()})
            return None
        except pymongo.errors.DuplicateKeyError:
            pass
        found = claims.find_one({"_id": key})
        if found is None:  # released by a call that failed meanwhile
            continue
        if found["state"] == "done":
            return found
        if found["lease_until"] < _now():  # its process died: take the claim over
            taken = claims.update_one(
                {"_id": key, "state": "running", "token": found["token"]},
                {"$set": {"token": token, "lease_until": _lease_end()}})
            if taken.modified_count:
                return None
            continue
        if time.monotonic() >= deadline:
            raise CallInProgress(f"a call with idempotency key {key!r} is still running; "
                                 f"retry later with the same key")
        eventlet.sleep(_POLL_SECONDS)


def _renew(claims, key, token):
    while True:
        eventlet.sleep(IDEMPOTENCY_LEASE_SECONDS / 3)
        try:
            claims.update_one({"_id": key, "token": token},
                              {"$set": {"lease_until": _lease_end()}})
        except pymongo.errors.PyMongoError as exc:  # the next renewal may succeed
            _log.warning("cannot renew idempotency claim %s: %r", key, exc)


def _database_of(service):
    # nameko injects dependencies as instance attributes: the one Mongo provider's Database
    found = [value for value in vars(service).values() if isinstance(value, Database)]
    if len(found) != 1:
        raise RuntimeError("@idempotent needs exactly one Mongo dependency on the service")
    return found[0]


def _config_of(service):
    # nameko injects the container's config where the class declares ``Config()``
    found = [name for name, _ in inspect.getmembers(type(service),
                                                    lambda value: isinstance(value, Config))]
    if len(found) != 1:
        raise RuntimeError("@idempotent needs exactly one Config dependency on the service")
    return getattr(service, found[0])


def _now():
    return datetime.now(UTC)


def _lease_end():
    return _now() + timedelta(seconds=IDEMPOTENCY_LEASE_SECONDS)
