"""An ack or a requeue that meets a connection the broker has just reset (a broker restart
while a handler ran) must not raise out of the worker: nameko ignores only amqp's own
ConnectionError there, and a socket reset took the whole service down (found by
tests/reliability/test_day_chaos.py). The broker delivers what was not acknowledged again."""

import pytest
from kombu import Message
from nameko.messaging import QueueConsumer

from pamong.events.consumer import PamongQueueConsumer

pytestmark = pytest.mark.unit


class ResetChannel:
    """A py-amqp channel whose socket the broker reset, before the consumer noticed: its
    connection still looks alive, and writing to it fails."""

    connection = object()
    no_ack_consumers = None

    def basic_ack(self, *args, **kwargs):
        raise ConnectionResetError(104, "Connection reset by peer")

    basic_reject = basic_ack


@pytest.mark.parametrize("settle", ["ack_message", "requeue_message"])
def test_settling_on_a_reset_connection_does_not_raise(settle, caplog):
    with pytest.raises(ConnectionResetError):  # what nameko alone does
        getattr(QueueConsumer(), settle)(Message(b"{}", channel=ResetChannel(), delivery_tag=1))
    message = Message(b"{}", channel=ResetChannel(), delivery_tag=1,
                      properties={"message_id": "e-1"})
    getattr(PamongQueueConsumer(), settle)(message)
    assert "its connection is gone" in caplog.text and "e-1" in caplog.text
