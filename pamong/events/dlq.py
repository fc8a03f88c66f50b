"""Operations on dead-letter queues: list, show, replay, purge (``pamong dlq ...``)."""

import json

from amqp.exceptions import NotFound
from kombu import Connection

from pamong.events.topology import dlq_name

PAMONG_HEADERS = ("x-death", "x-pamong-reason", "x-pamong-error", "x-pamong-queue",
                  "x-pamong-attempts", "x-pamong-failed-at", "x-first-death-exchange",
                  "x-first-death-queue", "x-first-death-reason")


def depth(connection, queue):
    try:
        return connection.default_channel.queue_declare(queue, passive=True).message_count
    except NotFound:
        connection.close()
        return None


def list_dlqs(amqp_uri, queues):
    """``[(dlq, depth)]`` for the handler queues given (depth None when not declared)."""
    with Connection(amqp_uri) as connection:
        return [(dlq_name(q), depth(connection, dlq_name(q))) for q in queues]


def _body(message):
    try:
        return json.loads(message.body)
    except (ValueError, TypeError):
        return message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) \
            else message.body


def event_id(message):
    """The event id: the AMQP message id the relay sets, else the envelope's own id."""
    body = _body(message)
    return message.properties.get("message_id") or (body.get("id") if isinstance(body, dict)
                                                    else None)


def _describe(message):
    headers = message.headers or {}
    body = _body(message)
    return {
        "message_id": event_id(message),
        "type": message.properties.get("type"),
        "reason": headers.get("x-pamong-reason"),
        "error": headers.get("x-pamong-error"),
        "attempts": headers.get("x-pamong-attempts"),
        "failed_at": headers.get("x-pamong-failed-at"),
        "queue": headers.get("x-pamong-queue"),
        "body": body,
    }


def show(amqp_uri, queue, limit=20):
    """Peek at up to ``limit`` parked messages without removing them."""
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        seen = []
        for _ in range(limit):
            message = channel.basic_get(dlq_name(queue), no_ack=False)
            if message is None:
                break
            seen.append(_describe(message))
        channel.close()  # unacknowledged messages go back to the queue, in order
        return seen


def replay(amqp_uri, queue, message_id=None):
    """Move parked messages back to ``queue`` with a fresh attempt count; return how many.

    With ``message_id`` only that message moves; the others stay parked.
    """
    moved = 0
    with Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        producer = connection.Producer(channel)
        keep = []
        while True:
            message = channel.basic_get(dlq_name(queue), no_ack=False)
            if message is None:
                break
            if message_id and event_id(message) != message_id:
                keep.append(message)
                continue
            headers = {k: v for k, v in (message.headers or {}).items()
                       if k not in PAMONG_HEADERS}
            headers["x-pamong-replayed"] = int(headers.get("x-pamong-replayed", 0)) + 1
            producer.publish(
                message.body, exchange="", routing_key=queue, headers=headers,
                content_type=message.content_type, content_encoding=message.content_encoding,
                delivery_mode=2, message_id=message.properties.get("message_id"),
                type=message.properties.get("type"),
                correlation_id=message.properties.get("correlation_id"),
            )
            channel.basic_ack(message.delivery_tag)
            moved += 1
        channel.close()  # the messages kept are requeued
    return moved


def purge(amqp_uri, queue):
    with Connection(amqp_uri) as connection:
        return connection.default_channel.queue_purge(dlq_name(queue)) or 0
