"""QueueOptions: the arguments each queue of the topology gets per QUEUE_TYPE."""

import pytest

from pamong.config import DEFAULTS
from pamong.events.topology import QueueOptions

pytestmark = pytest.mark.unit


def test_classic_queues_keep_the_arguments_they_always_had():
    options = QueueOptions.from_config(DEFAULTS)
    assert options.type == "classic"
    assert options.main("a.b") == {} and options.parked() == {}
    assert options.delay("a.b") == {"x-dead-letter-exchange": "",
                                     "x-dead-letter-routing-key": "a.b"}


def test_quorum_is_read_from_the_config_case_blind_with_its_delivery_limit():
    options = QueueOptions.from_config({"QUEUE_TYPE": " Quorum ", "QUEUE_DELIVERY_LIMIT": 50})
    assert options.main("a.b")["x-delivery-limit"] == 50
    assert options.main("a.b")["x-dead-letter-routing-key"] == "a.b.dlq"
    assert options.delay("a.b")["x-queue-type"] == "quorum"


@pytest.mark.parametrize("config, message", [
    ({"QUEUE_TYPE": "stream"}, "QUEUE_TYPE must be one of classic, quorum"),
    ({"QUEUE_TYPE": "quorum", "QUEUE_DELIVERY_LIMIT": -1}, "QUEUE_DELIVERY_LIMIT"),
])
def test_a_queue_setting_that_cannot_work_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        QueueOptions.from_config(config)
