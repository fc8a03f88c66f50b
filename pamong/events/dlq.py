"""Operations on parked messages: list, show, replay, purge (``pamong dlq ...``).

Two kinds of parking queue: ``<queue>.dlq`` of a handler queue (named by the handler queue),
and ``<service>.unroutable``, the events of a service no queue took (named as it is).
"""

import json

from amqp import Message
from amqp.exceptions import NotFound
from kombu import Connection

from pamong.events.outbox import ConfirmingPublisher
from pamong.events.topology import ATTEMPT_HEADER, REPLAYS_HEADER, dlq_name, unroutable_queue

# what a replay strips: where and why it was parked, and the broker's and our attempt counts
# (a replayed message starts a fresh set of attempts)
PAMONG_HEADERS = ("x-death", "x-pamong-reason", "x-pamong-error", "x-pamong-queue",
                  "x-pamong-attempts", "x-pamong-failed-at", "x-first-death-exchange",
                  "x-first-death-queue", "x-first-death-reason", "x-pamong-exchange",
                  "x-pamong-routing-key", "x-delivery-count", ATTEMPT_HEADER)
UNROUTABLE_SUFFIX = ".unroutable"


def parked_queue(queue):
    """The queue holding what is parked for ``queue`` (a handler queue or an unroutable one)."""
    return queue if queue.endswith(UNROUTABLE_SUFFIX) else dlq_name(queue)


def depth(connection, queue):
    try:
        return connection.default_channel.queue_declare(queue, passive=True).message_count
    except NotFound:
        connection.close()
        return None


def list_dlqs(amqp_uri, queues, services=()):
    """``[(queue, depth)]``: the DLQs of the handler queues given, then the unroutable queues
    of ``services`` (depth None when not declared)."""
    names = [dlq_name(q) for q in queues] + [unroutable_queue(s).name for s in services]
    with Connection(amqp_uri) as connection:
        return [(name, depth(connection, name)) for name in names]


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
        # the broker's reason when it parked the message itself (a quorum queue's
        # delivery limit: "delivery_limit")
        "reason": headers.get("x-pamong-reason") or headers.get("x-first-death-reason"),
        "error": headers.get("x-pamong-error"),
        "attempts": headers.get("x-pamong-attempts"),
        "replays": headers.get(REPLAYS_HEADER, 0),
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
            message = channel.basic_get(parked_queue(queue), no_ack=False)
            if message is None:
                break
            seen.append(_describe(message))
        channel.close()  # unacknowledged messages go back to the queue, in order
        return seen


def _target(queue, message):
    """(exchange, routing key) a replay sends to: the handler queue, or for an unroutable
    event the exchange and type it was first published with."""
    if not queue.endswith(UNROUTABLE_SUFFIX):
        return "", queue
    headers = message.headers or {}
    return headers["x-pamong-exchange"], headers["x-pamong-routing-key"]


def _replay_copy(message):
    headers = {k: v for k, v in (message.headers or {}).items() if k not in PAMONG_HEADERS}
    headers[REPLAYS_HEADER] = int(headers.get(REPLAYS_HEADER, 0)) + 1
    properties = {key: message.properties.get(key)
                  for key in ("message_id", "correlation_id", "type")}
    return Message(message.body, application_headers=headers, delivery_mode=2,
                   content_type=message.content_type or "application/octet-stream",
                   content_encoding=message.content_encoding or "binary",
                   **{k: v for k, v in properties.items() if v is not None})


def replay(amqp_uri, queue, message_id=None):
    """Send parked messages back (mandatory, confirmed); return ``(replayed, refused)``
    event ids.

    Takes at most the messages parked when it starts (one that fails again and is parked
    anew is not replayed twice), or with ``message_id`` only that one. A message no queue
    takes (the target queue is missing) stays parked and is listed as refused.
    """
    replayed, refused = [], []
    publisher = ConfirmingPublisher(amqp_uri)
    try:
        with Connection(amqp_uri) as connection:
            channel = connection.channel()
            parked = parked_queue(queue)
            for _ in range(channel.queue_declare(parked, passive=True).message_count):
                message = channel.basic_get(parked, no_ack=False)
                if message is None:
                    break
                if message_id and event_id(message) != message_id:
                    continue  # held unacknowledged, so not fetched again; requeued at close
                exchange, routing_key = _target(queue, message)
                if publisher.send([(exchange, routing_key, _replay_copy(message))]):
                    refused.append(event_id(message))  # stays parked (requeued at close)
                    continue
                channel.basic_ack(message.delivery_tag)
                replayed.append(event_id(message))
            channel.close()
    finally:
        publisher.close()
    return replayed, refused


def purge(amqp_uri, queue):
    with Connection(amqp_uri) as connection:
        return connection.default_channel.queue_purge(parked_queue(queue)) or 0
