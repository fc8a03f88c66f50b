import pytest

import tests.kernel_services  # noqa: F401 - registers the probe.recorded contract
from pamong.events.asyncapi import build

pytestmark = pytest.mark.unit


def test_asyncapi_document_describes_each_contract_inside_the_envelope():
    document = build()
    assert document["asyncapi"] == "3.0.0"
    message = document["components"]["messages"]["probe_recorded_v1"]
    payload = message["payload"]
    assert set(payload["required"]) >= {"id", "type", "version", "source", "data"}
    data = payload["properties"]["data"]
    assert data["properties"]["amount"]["type"] == "integer"
    assert set(data["required"]) == {"key", "amount"}
    channel = document["channels"]["probe_recorded_v1"]
    assert channel["address"] == "probe.recorded"
