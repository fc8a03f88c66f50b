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
"""

import inspect
from dataclasses import dataclass

from kombu import Exchange, Queue

ATTEMPT_HEADER = "x-pamong-attempt"  # deliveries so far (the consumer's count; reset on replay)
REPLAYS_HEADER = "x-pamong-replays"  # times an operator replayed the message
CONFIRM_TIMEOUT = 10.0  # seconds any publish waits for the broker's confirm


def event_exchange(source):
    return Exchange(f"{source}.events", type="topic", durable=True, auto_delete=False)


def retry_queue_name(queue, step):
    return f"{queue}.retry.{step}"


def dlq_name(queue):
    return f"{queue}.dlq"


def unroutable_queue(service):
    return Queue(f"{service}.unroutable", durable=True, auto_delete=False)


@dataclass(frozen=True)
class Binding:
    service: str
    handler: str
    source: str
    event_type: str

    @property
    def queue(self):
        return f"{self.service}.{self.handler}"

    def main_queue(self):
        return Queue(self.queue, exchange=event_exchange(self.source),
                     routing_key=self.event_type, durable=True, auto_delete=False)


def declare(channel, binding, retry_steps):
    """Declare the exchange, the handler queue and binding, its delay queues and its DLQ."""
    event_exchange(binding.source)(channel).declare()
    binding.main_queue()(channel).declare()
    for step in range(1, retry_steps + 1):
        Queue(retry_queue_name(binding.queue, step), durable=True, queue_arguments={
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": binding.queue,
        })(channel).declare()
    Queue(dlq_name(binding.queue), durable=True)(channel).declare()


def bindings_of(service_cls):
    """Every event binding a service class declares with ``@handles`` (its entrypoints answer
    ``event_binding``, so this module need not import the consumer, which imports it)."""
    found = []
    for method_name, method in inspect.getmembers(service_cls, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if hasattr(entrypoint, "event_binding"):
                found.append(entrypoint.event_binding(service_cls.name, method_name))
    return sorted(found, key=lambda b: b.queue)


def declare_service(connection, service_cls, retry_steps):
    """Declare the whole topology of one service (exchanges of its own events included)."""
    channel = connection.channel()
    try:
        event_exchange(service_cls.name)(channel).declare()
        unroutable_queue(service_cls.name)(channel).declare()
        bindings = bindings_of(service_cls)
        for binding in bindings:
            declare(channel, binding, retry_steps)
        return bindings
    finally:
        channel.close()
