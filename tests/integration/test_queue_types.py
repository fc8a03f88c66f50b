"""Quorum queues for production (QUEUE_TYPE=quorum): what the topology declares, where a
message returned past its delivery limit goes, and why a type cannot change in place.

The event-kernel tests run with both queue types as well (tests/integration/conftest.py)."""

from urllib.parse import quote

import pytest
import requests
from kombu import Connection
from kombu.exceptions import ChannelError

from pamong.cli.main import main as pamong_cli
from pamong.events import dlq
from pamong.events.envelope import new_event
from pamong.events.topology import QueueOptions, declare_service
from pamong.testing import broker, publish_raw, wait_until
from tests.kernel_services import Consumer, Producer

pytestmark = pytest.mark.integration

QUEUE = "probesink.on_recorded"


def queue_info(vhost, name):
    url, auth = broker._api(f"/queues/{quote(vhost, safe='')}/{quote(name, safe='')}")
    response = requests.get(url, auth=auth, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize("queue_type", ["quorum"], indirect=True)
def test_bus_declare_makes_every_queue_of_the_topology_a_quorum_queue(config, vhost,
                                                                      monkeypatch):
    monkeypatch.setenv("AMQP_URI", config["AMQP_URI"])
    for spec in ("tests.kernel_services:Consumer", "tests.kernel_services:Producer"):
        assert pamong_cli(["bus", "declare", "--service", spec]) == 0
    main = queue_info(vhost, QUEUE)
    assert main["type"] == "quorum"
    assert main["arguments"] == {
        "x-queue-type": "quorum", "x-delivery-limit": 500, "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": f"{QUEUE}.dlq", "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish"}
    for step in (1, 2):  # the test config's two retry delays
        delay = queue_info(vhost, f"{QUEUE}.retry.{step}")
        assert delay["type"] == "quorum"
        assert delay["arguments"]["x-dead-letter-routing-key"] == QUEUE
        assert delay["arguments"]["x-dead-letter-strategy"] == "at-least-once"
    for parked in (f"{QUEUE}.dlq", "probe.unroutable"):
        info = queue_info(vhost, parked)
        assert info["type"] == "quorum" and info["arguments"]["x-delivery-limit"] >= 10**6


@pytest.mark.parametrize("queue_type", ["quorum"], indirect=True)
def test_a_message_returned_past_the_delivery_limit_is_parked_in_its_dlq_and_replayable(config):
    options = QueueOptions(type="quorum", delivery_limit=2)
    with Connection(config["AMQP_URI"]) as connection:
        declare_service(connection, Consumer, len(config["RETRY_DELAYS"]), options)
    event = new_event("probe", "probe.recorded", {"key": "bounced", "amount": 1})
    publish_raw(config, "probe", "probe.recorded", event)
    returns = 0
    with Connection(config["AMQP_URI"]) as connection:
        channel = connection.channel()
        # a consumer that keeps giving it back (held back through an outage, or killed with
        # it again and again): the broker counts each return
        while (message := channel.basic_get(QUEUE, no_ack=False)) is not None:
            channel.basic_reject(message.delivery_tag, requeue=True)
            returns += 1
            assert returns <= 5, "the delivery limit did not apply"
        channel.close()
    assert returns == 3  # delivered 3 times: the third return passes the limit of 2
    wait_until(lambda: dlq.list_dlqs(config["AMQP_URI"], [QUEUE])[0][1] == 1,
               message="parked by the broker")
    [shown] = dlq.show(config["AMQP_URI"], QUEUE)
    assert (shown["message_id"], shown["reason"]) == (event["id"], "delivery_limit")
    assert dlq.replay(config["AMQP_URI"], QUEUE) == ([event["id"]], [])
    with Connection(config["AMQP_URI"]) as connection:
        channel = connection.channel()
        again = wait_until(lambda: channel.basic_get(QUEUE, no_ack=True),
                           message="replayed to the handler queue")
        headers = again.headers or {}
        # a fresh message: no returns counted (3.x sets the count to 0), no broker history
        assert headers.get("x-delivery-count", 0) == 0 and "x-death" not in headers
        assert headers["x-pamong-replays"] == 1
        channel.close()


def test_classic_is_the_default_and_the_broker_refuses_to_change_a_queue_type_in_place(config):
    assert config["QUEUE_TYPE"] == "classic" and QueueOptions.from_config(config).main(QUEUE) \
        == {}
    with Connection(config["AMQP_URI"]) as connection:
        declare_service(connection, Producer, 2)
        declare_service(connection, Consumer, 2)
    assert queue_info(config["AMQP_URI"].rsplit("/", 1)[1], QUEUE)["type"] == "classic"
    # what an operator meets who sets QUEUE_TYPE=quorum on a broker with the classic
    # topology: a refusal, never a silent mix (deploy/README.md: move to a new vhost)
    with pytest.raises(ChannelError, match="PRECONDITION_FAILED|inequivalent"):
        with Connection(config["AMQP_URI"]) as connection:
            declare_service(connection, Consumer, 2, QueueOptions(type="quorum"))
