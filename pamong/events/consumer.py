"""``@handles(source, event_type)``: the only way pamong services consume events.

On top of nameko's consumer it adds (DESIGN §4):
- envelope and contract validation; an invalid or undecodable message goes to
  ``<queue>.dlq`` at once with the reason, and the queue moves on;
- idempotency by event id: an inbox claim per (queue, event) is inserted before the handler
  runs (``_inbox``) and a done mark after it succeeds (``_inbox_done``), so a redelivered or
  twice-published event runs once; a claim left by a crashed worker expires after
  ``INBOX_LEASE_SECONDS``. Both are plain inserts, group-committed across concurrent workers
  (``GroupInsert``), and both run in the worker's own green thread, not in the thread that
  receives messages, so claims of concurrent deliveries share one write;
- retries: a failed message is republished to ``<queue>.retry.<n>`` with an exponential,
  jittered expiration and dead-letters back to the queue; the attempt count comes from the
  ``x-death`` header; after the last attempt it goes to ``<queue>.dlq`` with the error.
The original delivery is acknowledged only after its retry/DLQ copy is confirmed by the
broker; if that publish fails the message is requeued, so nothing is lost.

Handlers should still make their effect idempotent by ``event.id`` (or a version compare):
a crash after the effect but before the inbox is marked done runs the handler again.
"""

import functools
import logging
import random
import time
import traceback
from datetime import UTC, datetime
from functools import partial

from kombu import Connection
from kombu.pools import producers
from marshmallow import ValidationError
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer, QueueConsumer

from pamong import logs, metrics
from pamong.events import contracts
from pamong.events.envelope import Event, load_envelope
from pamong.events.topology import Binding, declare, dlq_name, retry_queue_name
from pamong.storage import GroupInsert, mongo_of
from pamong.web.context import bind_request_context

log = logging.getLogger(__name__)

INBOX = "_inbox"
INBOX_DONE = "_inbox_done"
ERROR_HEADER_LIMIT = 2000


def attempts_so_far(headers, queue):
    """Deliveries already made: 1 + the times the message passed through our delay queues."""
    deaths = (headers or {}).get("x-death") or []
    prefix = f"{queue}.retry."
    passes = (int(d.get("count", 1)) for d in deaths if str(d.get("queue", "")).startswith(prefix))
    return 1 + sum(passes)


def backoff_seconds(delays, attempt, jitter):
    """Delay before the next attempt after ``attempt`` failed (attempt counts from 1)."""
    base = delays[min(attempt, len(delays)) - 1]
    return base * (1 + random.uniform(-jitter, jitter))


class Inbox:
    """Who handles an event, per (queue, event id) key, in a service's database.

    ``claim(key)`` answers ``"run"`` (this worker handles it), ``"done"`` (handled before: ack
    the duplicate) or ``"busy"`` (a live worker holds it: look again later). A claim is a plain
    insert; a claim whose worker died (its lease ran out) is taken over with a compare-and-set
    on its expiry, which relies on the database's single-document atomicity (exactly one of
    several workers racing for it wins; ``tests/database`` checks the database keeps that).
    """

    def __init__(self, db, lease):
        self.db = db
        self.lease = lease
        self.claims = GroupInsert(db[INBOX])
        self.done_marks = GroupInsert(db[INBOX_DONE])

    def claim(self, key):
        now = time.time()
        if self.claims.insert({"_id": key, "until": now + self.lease}):
            return "run"
        if self.db[INBOX_DONE].find_one({"_id": key}, {"_id": 1}):
            return "done"
        existing = self.db[INBOX].find_one({"_id": key})
        if existing is None:  # released between our insert and read
            return self.claim(key)
        if existing["until"] < now:  # the worker that claimed it died; take over
            taken = self.db[INBOX].update_one({"_id": key, "until": existing["until"]},
                                              {"$set": {"until": now + self.lease}})
            return "run" if taken.modified_count else "busy"
        return "busy"

    def done(self, key):
        # a False return means a concurrent duplicate already marked it: done either way
        self.done_marks.insert({"_id": key, "at": datetime.now(UTC)})

    def release(self, key):
        self.db[INBOX].delete_one({"_id": key})


class PamongQueueConsumer(QueueConsumer):
    """nameko's queue consumer, but an undecodable message is dead-lettered, not fatal."""

    def get_consumers(self, consumer_cls, channel):
        consumers = super().get_consumers(consumer_cls, channel)
        for provider, consumer in self._consumers.items():
            consumer.on_decode_error = partial(self._decode_error, provider)
        return consumers

    def _decode_error(self, provider, message, exc):
        self.container.spawn_managed_thread(
            partial(provider.reject_undecodable, message, exc), identifier="decode-error"
        )


class EventConsumer(Consumer):
    queue_consumer = PamongQueueConsumer()

    def __init__(self, source, event_type, version=1, **kwargs):
        self.source = source
        self.event_type = event_type
        self.version = version
        super().__init__(queue=None, **kwargs)

    def setup(self):
        config = self.container.config
        self.binding = Binding(self.container.service_name, self.method_name,
                               self.source, self.event_type)
        self.queue = self.binding.main_queue()
        self.delays = [float(d) for d in config.get("RETRY_DELAYS", [1, 5, 30])]
        self.jitter = float(config.get("RETRY_JITTER", 0.2))
        self.lease = float(config.get("INBOX_LEASE_SECONDS", 60))
        self.amqp = Connection(config["AMQP_URI"], transport_options={"confirm_publish": True})
        self.mongo = mongo_of(self.container, "@handles")
        with Connection(config["AMQP_URI"]) as connection:
            declare(connection.default_channel, self.binding, len(self.delays))
        super().setup()

    def start(self):
        self.inbox = Inbox(self.mongo.db, self.lease)
        super().start()

    @property
    def label(self):
        return self.binding.queue

    # -- receiving --------------------------------------------------------------------

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
        claim_and_run = partial(self._claim_and_run, message, Event(**envelope))
        self.container.spawn_managed_thread(claim_and_run, identifier=f"{self.label}.claim")

    def _claim_and_run(self, message, event):
        try:
            claim = self._claim(event.id)
        except Exception as exc:  # noqa: BLE001 - database down: try again later
            self._retry_or_park(message, event.type, f"inbox unavailable: {exc}")
            return
        if claim == "done":
            metrics.EVENTS_CONSUMED.labels(self.label, event.type, "duplicate").inc()
            self.queue_consumer.ack_message(message)
            return
        if claim == "busy":  # another worker holds it: look again after a delay
            self._retry_or_park(message, event.type, "event is being handled by another worker")
            return
        context = {"correlation_id": event.correlation_id, "actor": event.actor,
                   "event_id": event.id}
        try:
            self.container.spawn_worker(
                self, (event,), {}, context_data=context,
                handle_result=partial(self.handle_event_result, message, event, time.monotonic()),
            )
        except ContainerBeingKilled:
            self._release(event.id)
            self.queue_consumer.requeue_message(message)

    def reject_undecodable(self, message, exc):
        self._park(message, "undecodable", f"cannot decode message: {exc}")

    def handle_event_result(self, message, event, started, worker_ctx, result=None,
                            exc_info=None):
        metrics.HANDLER_LATENCY.labels(self.label, event.type).observe(time.monotonic() - started)
        if exc_info is None:
            try:
                self._done(event.id)
            except Exception:  # noqa: BLE001 - the effect happened; the claim's lease still guards
                log.exception("could not mark event %s done", event.id)
            metrics.EVENTS_CONSUMED.labels(self.label, event.type, "ok").inc()
            self.queue_consumer.ack_message(message)
        else:
            self._release(event.id)
            error = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()
            metrics.EVENTS_CONSUMED.labels(self.label, event.type, "error").inc()
            self._retry_or_park(message, event.type, error)
        return result, exc_info

    # -- idempotency ------------------------------------------------------------------

    def _inbox_key(self, event_id):
        return f"{self.binding.queue}:{event_id}"

    def _claim(self, event_id):
        return self.inbox.claim(self._inbox_key(event_id))

    def _done(self, event_id):
        self.inbox.done(self._inbox_key(event_id))

    def _release(self, event_id):
        self.inbox.release(self._inbox_key(event_id))

    # -- retry and dead-lettering -------------------------------------------------------

    def _retry_or_park(self, message, event_type, error):
        attempt = attempts_so_far(message.headers, self.binding.queue)
        if attempt > len(self.delays):
            self._park(message, "exhausted", error, event_type, attempt)
            return
        delay = backoff_seconds(self.delays, attempt, self.jitter)
        headers = dict(message.headers or {}, **{"x-pamong-error": error[:ERROR_HEADER_LIMIT]})
        if self._republish(message, retry_queue_name(self.binding.queue, attempt), headers,
                           expiration=delay):
            metrics.EVENTS_RETRIED.labels(self.label, event_type).inc()

    def _park(self, message, reason, detail, event_type=None, attempt=None):
        event_type = event_type or (message.properties.get("type") or "unknown")
        headers = dict(message.headers or {}, **{
            "x-pamong-reason": reason,
            "x-pamong-error": detail[:ERROR_HEADER_LIMIT],
            "x-pamong-queue": self.binding.queue,
            "x-pamong-attempts": attempt or attempts_so_far(message.headers, self.binding.queue),
            "x-pamong-failed-at": datetime.now(UTC).isoformat(),
        })
        if self._republish(message, dlq_name(self.binding.queue), headers):
            metrics.EVENTS_DEAD_LETTERED.labels(self.label, event_type, reason).inc()
            log.error("event parked in %s (%s): %s", dlq_name(self.binding.queue), reason,
                      detail[:300], extra={"event_id": message.properties.get("message_id"),
                                           "correlation_id": message.properties.get(
                                               "correlation_id")})

    def _republish(self, message, queue, headers, expiration=None):
        """Copy the raw message to ``queue`` (confirmed), then ack the original."""
        properties = {"message_id": message.properties.get("message_id"),
                      "correlation_id": message.properties.get("correlation_id"),
                      "type": message.properties.get("type")}
        if expiration is not None:
            properties["expiration"] = expiration  # seconds; kombu sends milliseconds
        try:
            with producers[self.amqp].acquire(block=True, timeout=10) as producer:
                producer.publish(
                    message.body, exchange="", routing_key=queue, headers=headers,
                    content_type=message.content_type or "application/octet-stream",
                    content_encoding=message.content_encoding or "binary",
                    delivery_mode=2, retry=True, retry_policy={"max_retries": 3},
                    **{k: v for k, v in properties.items() if v is not None},
                )
        except Exception:  # noqa: BLE001 - keep the message: the broker redelivers it
            log.exception("could not move message to %s; requeueing it", queue)
            self.queue_consumer.requeue_message(message)
            return False
        self.queue_consumer.ack_message(message)
        return True


def handles(source, event_type, version=1, **kwargs):
    """Decorate a service method ``(self, event)`` to consume ``source``'s ``event_type``."""
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
