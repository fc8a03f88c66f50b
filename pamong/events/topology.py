"""Names and declarations of the bus: exchanges, handler queues, delay queues, DLQs.

- ``<source>.events``: durable topic exchange per publishing service (nameko's convention).
- ``<service>.<handler>``: one durable queue per event handler, bound by event type.
- ``<queue>.retry.<n>``: delay queue for attempt n+1; messages carry their own expiration
  (backoff with jitter) and dead-letter back to ``<queue>`` through the default exchange.
- ``<queue>.dlq``: where a message lands after its last attempt, or at once when invalid.
- ``<service>.unroutable``: where the relay parks the service's events that no queue took
  (the broker returned them), so they stay visible and can be replayed.

Declaring is idempotent, so ``pamong bus declare`` (install time) and each consumer's start-up
both run it: events published before a consumer first starts are already queued.

Queue type (``QUEUE_TYPE``): ``classic`` (the local default, RabbitMQ 3.10+) or ``quorum``
(production, RabbitMQ 4.x, where classic queues are no longer replicated). Every queue above
is declared with the same type; a quorum handler queue also gets an explicit delivery limit
(``QUEUE_DELIVERY_LIMIT``: RabbitMQ 4 otherwise drops a message returned 20 times) and
dead-letters what passes it into its own ``.dlq``; delay queues dead-letter back
``at-least-once``; parked queues (DLQs, unroutable) are never limited in practice, as
``pamong dlq show`` returns what it peeks at. A queue's type cannot change once declared:
switching a running broker means a new vhost (deploy/README.md, "Queues").
"""

import inspect
from dataclasses import dataclass

from kombu import Exchange, Queue

ATTEMPT_HEADER = "x-pamong-attempt"  # deliveries so far (the consumer's count; reset on replay)
REPLAYS_HEADER = "x-pamong-replays"  # times an operator replayed the message
CONFIRM_TIMEOUT = 10.0  # seconds any publish waits for the broker's confirm


QUEUE_TYPES = ("classic", "quorum")
# returns of a parked message (each `pamong dlq show` returns what it peeked at) never reach it
PARKED_DELIVERY_LIMIT = 1_000_000


@dataclass(frozen=True)
class QueueOptions:
    """How the queues of the topology are declared (``QueueOptions.from_config(config)``)."""

    type: str = "classic"
    delivery_limit: int = 500

    def __post_init__(self):
        if self.type not in QUEUE_TYPES:
            raise ValueError(f"QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, "
                             f"not {self.type!r}")
        if int(self.delivery_limit) < 1:
            raise ValueError("QUEUE_DELIVERY_LIMIT must be a positive number of deliveries")

    @classmethod
    def from_config(cls, config):
        return cls(type=str(config.get("QUEUE_TYPE") or "classic").strip().lower(),
                   delivery_limit=int(config.get("QUEUE_DELIVERY_LIMIT") or 500))

    @property
    def quorum(self):
        return self.type == "quorum"

    def main(self, queue):
        """Arguments of a handler queue: a quorum one parks what passes its delivery limit in
        its DLQ (a message returned that often: held back through a long outage, or taken
        down with its consumer again and again) instead of dropping it."""
        if not self.quorum:
            return {}
        return {"x-queue-type": "quorum", "x-delivery-limit": int(self.delivery_limit),
                "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq_name(queue),
                "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}

    def delay(self, queue):
        """Arguments of a delay queue: expired messages go back to the handler queue."""
        arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}
        if self.quorum:
            # at-least-once: kept in the delay queue until the handler queue confirms it
            arguments.update({"x-queue-type": "quorum",
                              "x-dead-letter-strategy": "at-least-once",
                              "x-overflow": "reject-publish"})
        return arguments

    def parked(self):
        """Arguments of a DLQ or ``<service>.unroutable``."""
        if not self.quorum:
            return {}
        return {"x-queue-type": "quorum", "x-delivery-limit": PARKED_DELIVERY_LIMIT}


CLASSIC = QueueOptions()


def event_exchange(source):
    return Exchange(f"{source}.events", type="topic", durable=True, auto_delete=False)


def retry_queue_name(queue, step):
    return f"{queue}.retry.{step}"


def dlq_name(queue):
    return f"{queue}.dlq"


def unroutable_queue(service, options=CLASSIC):
    return Queue(f"{service}.unroutable", durable=True, auto_delete=False,
                 queue_arguments=options.parked() or None)


@dataclass(frozen=True)
class Binding:
    service: str
    handler: str
    source: str
    event_type: str

    @property
    def queue(self):
        return f"{self.service}.{self.handler}"

    def main_queue(self, options=CLASSIC):
        return Queue(self.queue, exchange=event_exchange(self.source),
                     routing_key=self.event_type, durable=True, auto_delete=False,
                     queue_arguments=options.main(self.queue) or None)


def declare(channel, binding, retry_steps, options=CLASSIC):
    """Declare the exchange, the handler queue and binding, its delay queues and its DLQ
    (the DLQ first: a quorum handler queue dead-letters into it)."""
    event_exchange(binding.source)(channel).declare()
    Queue(dlq_name(binding.queue), durable=True,
          queue_arguments=options.parked() or None)(channel).declare()
    binding.main_queue(options)(channel).declare()
    for step in range(1, retry_steps + 1):
        Queue(retry_queue_name(binding.queue, step), durable=True,
              queue_arguments=options.delay(binding.queue))(channel).declare()


def bindings_of(service_cls):
    """Every event binding a service class declares with ``@handles`` (its entrypoints answer
    ``event_binding``, so this module need not import the consumer, which imports it)."""
    found = []
    for method_name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if hasattr(entrypoint, "event_binding"):
                found.append(entrypoint.event_binding(service_cls.name, method_name))
    return sorted(found, key=lambda b: b.queue)


def declare_service(connection, service_cls, retry_steps, options=CLASSIC):
    """Declare the whole topology of one service (exchanges of its own events included)."""
    channel = connection.channel()
    try:
        event_exchange(service_cls.name)(channel).declare()
        unroutable_queue(service_cls.name, options)(channel).declare()
        bindings = bindings_of(service_cls)
        for binding in bindings:
            declare(channel, binding, retry_steps, options)
        return bindings
    finally:
        channel.close()
