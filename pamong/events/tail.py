"""``pamong events tail``: a temporary queue bound to every event of the given sources."""

import json
import uuid

from kombu import Connection, Queue

from pamong.events.topology import event_exchange


def tail(amqp_uri, sources, count=None):
    """Yield one JSON line per event published by ``sources`` (server-named, auto-deleted)."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        name = f"pamong.tail.{uuid.uuid4().hex[:8]}"
        queue = Queue(name, exclusive=True, auto_delete=True, durable=False)(channel)
        queue.declare()
        for source in sources:
            exchange = event_exchange(source)(channel)
            exchange.declare()
            queue.bind_to(exchange.name, routing_key="#")
        seen = 0
        received = []

        def on_message(message):
            received.append(message)

        channel.basic_consume(name, callback=on_message, no_ack=True)
        while count is None or seen < count:
            connection.drain_events()
            while received:
                message = received.pop(0)
                try:
                    envelope = json.loads(message.body)
                except ValueError:
                    envelope = {"undecodable": repr(message.body[:200])}
                seen += 1
                yield json.dumps(envelope, ensure_ascii=False, sort_keys=True)
