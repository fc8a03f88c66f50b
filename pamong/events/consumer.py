"""``@handles(source, event_type)``: the only way pamong services consume events.

On top of nameko's consumer it adds (DESIGN §4):
- envelope and contract validation; an invalid or undecodable message, or one whose contract
  check itself breaks, goes to ``<queue>.dlq`` at once with the reason, and the queue moves on;
- idempotency by event id: the ``Inbox`` claims the event for one worker before the handler
  runs and turns the claim into a done mark after it succeeds, so a redelivered or
  twice-published event runs once. A live worker's claim is renewed while it works; a claim
  left by a crashed worker expires after ``INBOX_LEASE_SECONDS``;
- retries: a failed message is republished to ``<queue>.retry.<n>`` with an exponential,
  jittered expiration and dead-letters back to the queue; the attempt count travels in our own
  ``ATTEMPT_HEADER`` (RabbitMQ 4 rewrites ``x-death``, so it cannot count); after the last
  attempt it goes to ``<queue>.dlq`` with the error;
- outages: when the database or the broker fails us (not the handler's fault), the message is
  given back to the queue after a pause, without counting an attempt, and the service stays up.
The original delivery is acknowledged only after its retry/DLQ copy is confirmed by the
broker and routed to its queue (``mandatory``: a missing queue is a failure, not a loss).

A crash after the handler's effect but before the done mark runs the handler again: make a
single-document effect exactly-once with ``apply_once``.

``inbox=False`` is for a handler whose own effect is idempotent by the event id (DESIGN §4:
"the id stored in the document changed"): it skips the inbox's claim and done mark (two
writes per event), so a redelivered or twice-published event, or two deliveries at once,
run the handler again. Everything else (validation, retries, delay queues, the DLQ, the ack
after success, the requeue while the container is killed) is the same.
"""

import functools
import logging
import random
import time
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import NamedTuple

import eventlet
import pymongo.errors
from kombu import Connection, Producer
from kombu.pools import connections
from marshmallow import ValidationError
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer, QueueConsumer

from pamong import logs, metrics
from pamong.config import DEFAULTS
from pamong.events import contracts
from pamong.events.envelope import Event, load_envelope
from pamong.events.topology import (
    ATTEMPT_HEADER,
    CONFIRM_TIMEOUT,
    Binding,
    QueueOptions,
    declare,
    dlq_name,
    retry_queue_name,
)
from pamong.privacy import mask_text
from pamong.storage import GroupInsert, mongo_of
from pamong.web.context import bind_request_context

log = logging.getLogger(__name__)

INBOX_BUCKET = "_inbox_"  # + the UTC day the event occurred: _inbox_20250131
ERROR_HEADER_LIMIT = 2000
MAX_HOLD_SECONDS = 30  # longest pause before an outage-struck message is tried again
PURGE_EVERY_SECONDS = 3600
APPLIED_KEEP = 100  # event ids a document remembers in apply_once


def attempt_of(headers):
    """Which delivery of the message this is (1 for the first), from our own header."""
    try:
        return max(1, int((headers or {}).get(ATTEMPT_HEADER, 1)))
    except (TypeError, ValueError):
        return 1


def copied_headers(headers):
    """The message's headers without the ones the broker writes on dead-lettering."""
    return {k: v for k, v in (headers or {}).items()
            if k != "x-death" and not k.startswith(("x-first-death-", "x-last-death-"))}


def backoff_seconds(delays, attempt, jitter):
    """Delay before the next attempt after ``attempt`` failed (attempt counts from 1)."""
    base = delays[min(attempt, len(delays)) - 1]
    return base * (1 + random.uniform(-jitter, jitter))


def describe(exc):
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def masked(error):
    """An error for a broker header: anyone with the management UI or ``pamong dlq show``
    reads those, so personal data is masked (before the cut, which could leave a NIK
    too short to be recognised)."""
    return mask_text(error)[:ERROR_HEADER_LIMIT]


def is_outage(exc):
    """The database is unreachable or timed out: nothing the message can be blamed for."""
    return isinstance(exc, pymongo.errors.ConnectionFailure) or (
        isinstance(exc, pymongo.errors.PyMongoError) and exc.timeout)


# -- exactly-once single-document effects ---------------------------------------------------


def apply_once(collection, filter, update, event, upsert=False):
    """Apply ``update`` to the one document ``filter`` selects unless ``event`` was applied to
    it already; True when applied.

    The event id is recorded in the document's ``_applied`` list by the same atomic write as
    the effect, and the filter requires its absence, so a handler that runs again after a
    crash (effect written, done mark not) changes nothing. False also when ``filter`` matches
    no document (or, with ``upsert``, when the document exists but the filter excludes it, as
    a version compare does). Events racing to upsert one new document each apply: the losers
    of the insert update the winner's document. The list keeps at least the last
    ``APPLIED_KEEP`` ids (at most twice that: cut back by a second write once per
    ``APPLIED_KEEP`` effects, as FerretDB has no ``$push``/``$slice``): far more than can be
    redelivered at once.
    """
    guarded = {**filter, "_applied": {"$ne": event.id}}
    recorded = {**update, "$push": {**update.get("$push", {}), "_applied": event.id},
                "$inc": {**update.get("$inc", {}), "_applied_n": 1}}

    def write(upsert):
        return collection.find_one_and_update(  # no projection: FerretDB has none here
            guarded, recorded, upsert=upsert, return_document=pymongo.ReturnDocument.AFTER)

    try:
        after = write(upsert)
    except pymongo.errors.DuplicateKeyError:
        # the document exists now (a racing upsert inserted it, or it was there and the filter
        # excludes it): MongoDB retries a losing upsert itself only when its filter is equality
        # on the unique key, and ours has `_applied: {$ne}`. Update it; no match then means
        # the event was applied before or the filter excludes the document.
        after = write(upsert=False)
    if after is None:
        return False
    n = after["_applied_n"]
    if n >= 2 * APPLIED_KEEP:
        # one trimming write per APPLIED_KEEP effects, not one per effect (a hot aggregate
        # paid two writes for every event); a concurrent effect in between changes the count,
        # skips this cut and makes the next one
        collection.update_one({"_id": after["_id"], "_applied_n": n},
                              {"$set": {"_applied": after["_applied"][-APPLIED_KEEP:],
                                        "_applied_n": APPLIED_KEEP}})
    return True


# -- the inbox ------------------------------------------------------------------------------


class InboxKey(NamedTuple):
    bucket: str  # collection: the day the event occurred
    id: str  # "<queue>:<event id>"


def inbox_key(queue, event_id, occurred_at):
    """Duplicates carry the same envelope, so they land in the same day bucket."""
    return InboxKey(f"{INBOX_BUCKET}{occurred_at.astimezone(UTC):%Y%m%d}", f"{queue}:{event_id}")


class GroupMarkDone(GroupInsert):
    """``insert(claim_id)`` turns ``owner``'s claim into a done mark; the marks of concurrent
    workers share one ``update_many`` (the same group commit as GroupInsert's inserts)."""

    def __init__(self, collection, owner):
        super().__init__(collection)
        self.owner = owner

    def _write(self, claim_ids):
        self.collection.update_many({"_id": {"$in": claim_ids}, "owner": self.owner},
                                    {"$set": {"at": datetime.now(UTC)}})
        return [True] * len(claim_ids)


class Inbox:
    """Who handles an event, per ``InboxKey``, in a service's database.

    One document per (queue, event) in the collection of the day the event occurred: a claim
    ``{until, owner}`` while a worker runs it, a done mark ``{at}`` once handled. ``claim(key)``
    answers ``"run"`` (this worker handles it), ``"done"`` (handled before: ack the duplicate)
    or ``"busy"`` (a live worker holds it: look again later). A claim is a plain insert; a
    claim whose worker died (its lease ran out) is taken over with a compare-and-set on its
    expiry, which relies on the database's single-document atomicity (exactly one of several
    workers racing for it wins; ``tests/database`` checks the database keeps that). The claims
    this process holds are renewed by ``renew()`` until done or released, so a live worker's
    claim never expires under it. Renewal, release and the done mark touch a claim only while
    it names this inbox as its ``owner``: a worker whose claim was taken over (its renewals
    failed) cannot extend, delete or complete the new worker's claim. Done marks go away a
    whole day at a time (``purge``): that is one ``drop`` per day, where deleting by date would
    scan every mark on FerretDB.
    """

    def __init__(self, db, lease):
        self.db = db
        self.lease = lease
        self.owner = uuid.uuid4().hex
        self.claims = {}  # bucket -> GroupInsert
        self.marks = {}  # bucket -> GroupMarkDone
        self.held = set()

    def _grouped(self, writers, make, bucket):
        if bucket not in writers:
            writers[bucket] = make(self.db[bucket])
        return writers[bucket]

    def claim(self, key):
        now = time.time()
        if self._grouped(self.claims, GroupInsert, key.bucket).insert(
                {"_id": key.id, "until": now + self.lease, "owner": self.owner}):
            self.held.add(key)
            return "run"
        existing = self.db[key.bucket].find_one({"_id": key.id})
        if existing is None:  # released between our insert and read
            return self.claim(key)
        if "at" in existing:
            return "done"
        if existing["until"] < now:  # the worker that claimed it died; take over
            taken = self.db[key.bucket].update_one({"_id": key.id, "until": existing["until"]},
                                                   {"$set": {"until": now + self.lease,
                                                             "owner": self.owner}})
            if taken.modified_count:
                self.held.add(key)
                return "run"
        return "busy"

    def done(self, key):
        self.held.discard(key)
        self._grouped(self.marks, partial(GroupMarkDone, owner=self.owner),
                      key.bucket).insert(key.id)

    def release(self, key):
        self.held.discard(key)
        self.db[key.bucket].delete_one({"_id": key.id, "owner": self.owner,
                                        "at": {"$exists": False}})

    def renew(self):
        """Push back the expiry of every claim this process holds."""
        by_bucket = {}
        for key in list(self.held):
            by_bucket.setdefault(key.bucket, []).append(key.id)
        for bucket, ids in by_bucket.items():
            self.db[bucket].update_many({"_id": {"$in": ids}, "owner": self.owner},
                                        {"$set": {"until": time.time() + self.lease}})

    def purge(self, retention_hours):
        """Drop the day buckets whose events all occurred more than ``retention_hours`` ago."""
        oldest_kept = f"{INBOX_BUCKET}{datetime.now(UTC) - timedelta(hours=retention_hours):%Y%m%d}"
        dropped = []
        for name in self.db.list_collection_names():
            if name.startswith(INBOX_BUCKET) and len(name) == len(oldest_kept) \
                    and name < oldest_kept:
                self.db.drop_collection(name)
                self.claims.pop(name, None)
                self.marks.pop(name, None)
                dropped.append(name)
        return dropped


# -- the entrypoint -------------------------------------------------------------------------


# kombu's drain loop notices a stop only when its wait for a message times out, and nameko's
# stop needs two such turns (consumers cancelled, then the loop ends): at kombu's 1 s, every
# container stop (a rolling update, each test) took 2-3 s. An idle wake-up costs nothing.
STOP_CHECK_SECONDS = 0.1


class PamongQueueConsumer(QueueConsumer):
    """nameko's queue consumer, but an undecodable message is dead-lettered, not fatal, and
    an ack or a requeue on a connection the broker just reset is not fatal either."""

    # nameko ignores only amqp's ConnectionError there; a socket reset (a broker restart
    # while a handler ran) raised out of the worker's result handler and killed the
    # service. The broker requeues what a dead connection left unacknowledged: the
    # redelivery finds the inbox's done mark (acked as a duplicate) or runs again.
    def ack_message(self, message):
        self._settle(super().ack_message, message, "ack")

    def requeue_message(self, message):
        self._settle(super().requeue_message, message, "requeue")

    @staticmethod
    def _settle(settle, message, what):
        try:
            settle(message)
        except OSError as exc:
            log.warning("could not %s message %s, its connection is gone (%s): the broker "
                        "delivers it again", what, message.properties.get("message_id"), exc)

    def consume(self, limit=None, timeout=None, safety_interval=STOP_CHECK_SECONDS, **kwargs):
        return super().consume(limit, timeout, safety_interval, **kwargs)

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(self._decode_error, provider)
            # every consumer sets its own: a qos applies to all consumers started after it
            prefetch = getattr(provider, "concurrency", None) or self.prefetch_count
            consumer.consume = partial(_consume_with_prefetch, consumer, consumer.consume,
                                       prefetch)
        return consumers

    def _decode_error(self, provider, message, exc):
        if not hasattr(provider, "reject_undecodable"):  # an RPC request or reply
            log.warning("dropped an undecodable message on %s: %s", type(provider).__name__,
                        exc)
            message.reject(requeue=False)
            return
        self.container.spawn_managed_thread(
            partial(provider.reject_undecodable, message, exc), identifier="decode-error"
        )


def _consume_with_prefetch(consumer, consume, prefetch, *args, **kwargs):
    """Start consuming with a prefetch of this consumer's own: RabbitMQ applies a
    ``basic.qos`` (not global) to the consumers started after it on the channel, so each
    consumer's qos right before its ``basic.consume`` bounds its own unacknowledged
    messages, hence the workers its handler holds at once."""
    consumer.qos(prefetch_count=prefetch)
    return consume(*args, **kwargs)


class Unroutable(Exception):
    """The broker returned a copy: its queue does not exist."""


class EventConsumer(Consumer):
    queue_consumer = PamongQueueConsumer()

    def __init__(self, source, event_type, version=1, concurrency=None, inbox=True, **kwargs):
        self.source = source
        self.event_type = event_type
        self.version = version
        self.concurrency = concurrency
        self.use_inbox = inbox
        super().__init__(queue=None, **kwargs)

    def event_binding(self, service_name, method_name):
        """What ``topology.bindings_of`` declares for this entrypoint."""
        return Binding(service_name, method_name, self.source, self.event_type)

    def setup(self):
        config = self.container.config
        self.binding = self.event_binding(self.container.service_name, self.method_name)
        self.queue_options = QueueOptions.from_config(config)
        self.queue = self.binding.main_queue(self.queue_options)
        self.delays = [float(d) for d in config.get("RETRY_DELAYS", DEFAULTS["RETRY_DELAYS"])]
        self.jitter = float(config.get("RETRY_JITTER", DEFAULTS["RETRY_JITTER"]))
        self.lease = float(config.get("INBOX_LEASE_SECONDS", 60))
        self.retention_hours = float(config.get("INBOX_DONE_RETENTION_HOURS", 168))
        retry_window = sum(self.delays) * (1 + self.jitter) + self.lease
        if self.retention_hours * 3600 <= retry_window:
            raise ValueError(f"INBOX_DONE_RETENTION_HOURS must outlast the retries and the "
                             f"lease ({retry_window:.0f} s), or duplicates could run twice")
        self.setbacks = 0  # outage pauses in a row: the next pause grows with them
        self.amqp = Connection(config["AMQP_URI"], transport_options={"confirm_publish": True})
        self.mongo = mongo_of(self.container, "@handles")
        with Connection(config["AMQP_URI"]) as connection:
            declare(connection.default_channel, self.binding, len(self.delays),
                    self.queue_options)
        super().setup()

    def start(self):
        self.inbox = Inbox(self.mongo.db, self.lease)
        if self.use_inbox:  # (without one: no claim to renew, and the day buckets are
            # dropped by the service's handlers that have an inbox)
            # not stopped in stop(): nameko waits for running workers after the entrypoints
            # stopped, and a draining handler's claim must stay renewed until then; the
            # container kills its managed threads once the workers are done
            self.container.spawn_managed_thread(self._upkeep, identifier=f"{self.label}.inbox")
        super().start()

    @property
    def label(self):
        return self.binding.queue

    def _upkeep(self):
        """Renew this process's claims every third of a lease; purge old done marks hourly."""
        purged_at = None
        while True:
            try:
                self.inbox.renew()
                if purged_at is None or time.monotonic() - purged_at > PURGE_EVERY_SECONDS:
                    self.inbox.purge(self.retention_hours)
                    purged_at = time.monotonic()
            except Exception:  # noqa: BLE001 - an outage: the claims' lease covers a few misses
                log.warning("inbox upkeep of %s failed", self.label, exc_info=True)
            eventlet.sleep(self.lease / 3)

    # -- receiving (nameko runs each message in a managed thread of its own) ---------------

    def handle_message(self, body, message):
        try:
            envelope = load_envelope(body)
            if (envelope["source"], envelope["type"]) != (self.source, self.event_type):
                raise ValidationError({"type": [f"queue expects {self.source}/{self.event_type}"]})
            envelope["data"] = contracts.load_data(envelope["type"], envelope["version"],
                                                   envelope["data"])
        except ValidationError as exc:
            self._park(message, "invalid", f"contract violation: {exc.messages}")
            return
        except Exception as exc:  # noqa: BLE001 - a contract that breaks cannot take this message
            self._park(message, "invalid", f"contract check failed: {describe(exc)}")
            return
        self._claim_and_run(message, Event(**envelope))

    def _claim_and_run(self, message, event):
        key = None  # no inbox: nothing to claim, mark or release
        if self.use_inbox:
            key = inbox_key(self.binding.queue, event.id, event.occurred_at)
            try:
                claim = self.inbox.claim(key)
            except Exception as exc:  # noqa: BLE001 - database down: try again later
                self._requeue_later(message, f"inbox unavailable: {describe(exc)}")
                return
        else:
            claim = "run"
        if claim == "done":
            metrics.EVENTS_CONSUMED.labels(self.label, self.event_type, "duplicate").inc()
            self.queue_consumer.ack_message(message)
            return
        if claim == "busy":  # another worker holds it: look again after a pause
            self._requeue_later(message, "event is being handled by another worker")
            return
        context = {"correlation_id": event.correlation_id, "event_id": event.id}
        if event.actor is not None:  # nameko cannot put None in the headers of an RPC call
            context["actor"] = event.actor
        try:
            self.container.spawn_worker(
                self, (event,), {}, context_data=context,
                handle_result=partial(self.handle_event_result, message, key, time.monotonic()),
            )
        except ContainerBeingKilled:
            self._release(key)
            self.queue_consumer.requeue_message(message)

    def reject_undecodable(self, message, exc):
        self._park(message, "undecodable", f"cannot decode message: {exc}")

    def handle_event_result(self, message, key, started, worker_ctx, result=None,
                            exc_info=None):
        metrics.HANDLER_LATENCY.labels(self.label, self.event_type).observe(
            time.monotonic() - started)
        if exc_info is None:
            if key is not None:
                try:
                    self.inbox.done(key)
                except Exception:  # noqa: BLE001 - the effect happened; the claim's lease guards
                    log.exception("could not mark event %s done", key.id)
            metrics.EVENTS_CONSUMED.labels(self.label, self.event_type, "ok").inc()
            self.setbacks = 0
            self.queue_consumer.ack_message(message)
            return result, exc_info
        metrics.EVENTS_CONSUMED.labels(self.label, self.event_type, "error").inc()
        error = describe(exc_info[1])
        if self._release(key) and not is_outage(exc_info[1]):
            self._retry_or_park(message, error)
        else:  # the database fails us, not the message: no attempt is counted
            self._requeue_later(message, error)
        return result, exc_info

    def _release(self, key):
        """Give up this worker's claim; False when the database could not be reached."""
        if key is None:
            return True  # nothing claimed (no inbox)
        try:
            self.inbox.release(key)
            return True
        except Exception:  # noqa: BLE001 - the claim then expires after its lease
            log.warning("could not release the claim on %s", key.id, exc_info=True)
            return False

    # -- retry, dead-lettering and pauses -------------------------------------------------

    def _requeue_later(self, message, why):
        """Give the message back to its queue after a pause that grows while failures last
        (a managed thread holds it meanwhile, so a stopping service is not held up)."""
        self.setbacks += 1
        metrics.EVENTS_HELD_BACK.labels(self.label).inc()
        pause = min(backoff_seconds(self.delays, self.setbacks, self.jitter), MAX_HOLD_SECONDS)
        log.warning("%s: message requeued in %.1fs: %s", self.label, pause, why[:300])

        def requeue():
            eventlet.sleep(pause)
            self.queue_consumer.requeue_message(message)

        self.container.spawn_managed_thread(requeue, identifier=f"{self.label}.requeue")

    def _retry_or_park(self, message, error):
        attempt = attempt_of(message.headers)
        if attempt > len(self.delays):
            self._park(message, "exhausted", error, attempt)
            return
        headers = dict(copied_headers(message.headers), **{
            ATTEMPT_HEADER: attempt + 1, "x-pamong-error": masked(error)})
        if self._move(message, retry_queue_name(self.binding.queue, attempt), headers,
                      expiration=backoff_seconds(self.delays, attempt, self.jitter)):
            metrics.EVENTS_RETRIED.labels(self.label, self.event_type).inc()

    def _park(self, message, reason, detail, attempt=None):
        headers = dict(copied_headers(message.headers), **{
            "x-pamong-reason": reason,
            "x-pamong-error": masked(detail),
            "x-pamong-queue": self.binding.queue,
            "x-pamong-attempts": attempt or attempt_of(message.headers),
            "x-pamong-failed-at": datetime.now(UTC).isoformat(),
        })
        if self._move(message, dlq_name(self.binding.queue), headers):
            metrics.EVENTS_DEAD_LETTERED.labels(self.label, self.event_type, reason).inc()
            log.error("event parked in %s (%s): %s", dlq_name(self.binding.queue), reason,
                      detail[:300], extra={"event_id": message.properties.get("message_id"),
                                           "correlation_id": message.properties.get(
                                               "correlation_id")})

    def _move(self, message, queue, headers, expiration=None):
        """Copy the raw message to ``queue``, then ack the original; on any failure keep the
        original (requeued after a pause) and answer False."""
        try:
            self._publish_copy(message, queue, headers, expiration)
        except Exception as exc:  # noqa: BLE001 - keep the message: it comes back later
            self._requeue_later(message, f"could not move it to {queue}: {describe(exc)}")
            return False
        self.queue_consumer.ack_message(message)
        return True

    def _publish_copy(self, message, queue, headers, expiration):
        properties = {"message_id": message.properties.get("message_id"),
                      "correlation_id": message.properties.get("correlation_id"),
                      "type": message.properties.get("type"),
                      "expiration": expiration}  # seconds; kombu sends milliseconds
        returned = []
        with connections[self.amqp].acquire(block=True, timeout=CONFIRM_TIMEOUT) as connection:
            with connection.channel() as channel:  # one channel: its confirm is ours alone
                producer = Producer(channel, on_return=lambda exc, *_: returned.append(exc))
                producer.publish(
                    message.body, exchange="", routing_key=queue, headers=headers,
                    content_type=message.content_type or "application/octet-stream",
                    content_encoding=message.content_encoding or "binary",
                    delivery_mode=2, mandatory=True, timeout=CONFIRM_TIMEOUT,
                    **{k: v for k, v in properties.items() if v is not None},
                )
        if returned:  # the broker sends basic.return before the confirm it waited for
            raise Unroutable(f"queue {queue} does not exist (run `pamong bus declare`)")


def handles(source, event_type, version=1, **kwargs):
    """Decorate a service method ``(self, event)`` to consume ``source``'s ``event_type``.

    ``concurrency=N`` runs at most N of its events at once in a process (its own prefetch):
    a slow or CPU-bound handler then holds at most N of the container's ``max_workers``, so
    a backlog of its events cannot starve the HTTP entrypoints and the other handlers.

    ``inbox=False``: the handler's own effect is idempotent by the event id (a document
    keyed by it, a compare-and-set it survives), so the kernel writes no inbox claim and no
    done mark for it. A redelivered or twice-published event, or one delivered to two
    workers at once, then runs the handler again, concurrently too: the handler must make
    that harmless by itself (``apply_once`` does for a single-document effect). Failures
    are retried and parked, and the message acknowledged or requeued, as with the inbox."""
    register = EventConsumer.decorator(source, event_type, version, **kwargs)

    def decorate(method):
        @functools.wraps(method)
        def entry(self, event):
            # bound in the worker's own green thread: its log lines carry the ids, and events
            # it publishes through the outbox keep the correlation id and actor
            logs.bind(correlation_id=event.correlation_id, event_id=event.id)
            with bind_request_context(event.correlation_id, actor=event.actor):
                return method(self, event)

        return register(entry)

    return decorate
