import uuid
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields

from pamong.events import contracts
from pamong.events.consumer import attempt_of, backoff_seconds, copied_headers
from pamong.events.envelope import load_envelope, new_event
from pamong.events.topology import ATTEMPT_HEADER

pytestmark = pytest.mark.unit

QUEUE = "notify.on_permit_status_changed"


def death(queue, count, reason="expired"):
    """An ``x-death`` entry as RabbitMQ writes it."""
    return {
        "count": count, "reason": reason, "queue": queue, "time": datetime(2024, 5, 1, 3, 0),
        "exchange": "", "routing-keys": [queue], "original-expiration": "1000",
    }


# -- attempt_of: our own header, never x-death ----------------------------------------------


@pytest.mark.parametrize("headers", [None, {}, {ATTEMPT_HEADER: None}, {ATTEMPT_HEADER: "x"},
                                     {ATTEMPT_HEADER: 0}])
def test_first_delivery_is_attempt_one(headers):
    assert attempt_of(headers) == 1


def test_the_attempt_comes_from_our_header():
    assert attempt_of({ATTEMPT_HEADER: 3}) == 3


def test_x_death_does_not_count():
    # RabbitMQ 4 rewrites x-death at each dead-lettering: it cannot be trusted to count
    headers = {"x-death": [death(f"{QUEUE}.retry.2", 4), death(f"{QUEUE}.retry.1", 4)]}
    assert attempt_of(headers) == 1
    assert attempt_of({**headers, ATTEMPT_HEADER: 2}) == 2


def test_copies_leave_the_brokers_dead_letter_headers_behind():
    headers = {"x-death": [death(f"{QUEUE}.retry.1", 1)], "x-first-death-queue": QUEUE,
               "x-first-death-reason": "expired", "x-last-death-queue": QUEUE,
               ATTEMPT_HEADER: 2, "x-pamong-replays": 1}
    assert copied_headers(headers) == {ATTEMPT_HEADER: 2, "x-pamong-replays": 1}
    assert copied_headers(None) == {}


# -- backoff_seconds ----------------------------------------------------------------------

DELAYS = [1, 5, 30, 120, 600]


@given(st.integers(min_value=1, max_value=20), st.floats(min_value=0, max_value=0.9))
def test_backoff_is_within_jitter_of_its_step(attempt, jitter):
    step = DELAYS[min(attempt, len(DELAYS)) - 1]
    delay = backoff_seconds(DELAYS, attempt, jitter)
    assert step * (1 - jitter) - 1e-9 <= delay <= step * (1 + jitter) + 1e-9


def test_backoff_steps_without_jitter():
    assert [backoff_seconds(DELAYS, a, 0) for a in range(1, 8)] == [1, 5, 30, 120, 600, 600, 600]


def test_backoff_jitter_actually_varies():
    assert len({backoff_seconds(DELAYS, 2, 0.2) for _ in range(20)}) > 1


# -- envelope -----------------------------------------------------------------------------


def event(**changes):
    body = new_event("permits", "permit.status_changed", {"permit_id": "p-1"}, opd="DINKES",
                     actor={"sub": "199001012015011001", "role": "verifier"})
    body.update(changes)
    return body


def test_new_event_passes_load_envelope():
    body = event()
    loaded = load_envelope(body)
    assert loaded["id"] == body["id"]
    assert uuid.UUID(loaded["id"]).version == 4
    assert loaded["occurred_at"].tzinfo is not None
    assert loaded["occurred_at"].utcoffset().total_seconds() == 0
    assert loaded["correlation_id"] == body["correlation_id"]
    assert loaded["data"] == {"permit_id": "p-1"}


def test_new_event_defaults():
    body = new_event("directory", "unit.upserted", {}, correlation_id="c-1")
    assert body["version"] == 1 and body["opd"] is None and body["actor"] is None
    assert body["correlation_id"] == "c-1"
    assert load_envelope(body)["source"] == "directory"


def field_errors(body):
    with pytest.raises(ValidationError) as info:
        load_envelope(body)
    return info.value.messages


@pytest.mark.parametrize("missing", ["id", "type", "version", "source", "occurred_at", "opd",
                                     "correlation_id", "actor", "data"])
def test_missing_field_is_named(missing):
    body = event()
    del body[missing]
    assert missing in field_errors(body)


@pytest.mark.parametrize("field, value", [
    ("id", "not-a-uuid"),
    ("type", "PermitStatusChanged"),
    ("type", "permit"),
    ("type", "permit.status changed"),
    ("version", 0),
    ("version", "1"),
    ("occurred_at", "2024-05-01T03:04:05"),  # naive
    ("occurred_at", "yesterday"),
    ("source", ""),
    ("actor", {"sub": "x"}),
    ("data", [1, 2]),
])
def test_bad_value_is_named(field, value):
    assert field in field_errors(event(**{field: value}))


def test_unknown_field_is_named():
    assert "priority" in field_errors(event(priority="high"))


def test_body_must_be_an_object():
    assert "_schema" in field_errors(["not", "a", "dict"])


# -- contracts ----------------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the contract registry, so test contracts do not leak."""
    monkeypatch.setattr(contracts, "_registry", dict(contracts._registry))
    return contracts


def test_dump_load_round_trip(registry):
    @registry.contract("test.thing_happened", 1)
    class ThingHappened(Schema):
        thing_id = fields.String(required=True)
        on = fields.Date(required=True)
        at = fields.AwareDateTime(required=True)
        count = fields.Integer(load_default=0)

    data = {"thing_id": "t-1", "on": date(2024, 5, 1),
            "at": datetime(2024, 5, 1, 3, 4, 5, tzinfo=UTC), "count": 2}
    dumped = registry.dump_data("test.thing_happened", 1, data)
    assert dumped == {"thing_id": "t-1", "on": "2024-05-01", "at": "2024-05-01T03:04:05+00:00",
                      "count": 2}
    assert registry.load_data("test.thing_happened", 1, dumped) == data
    assert registry.registered()[("test.thing_happened", 1)] is ThingHappened


def test_load_rejects_unknown_and_missing_fields(registry):
    @registry.contract("test.thing_happened", 1)
    class ThingHappened(Schema):
        thing_id = fields.String(required=True)

    with pytest.raises(ValidationError) as info:
        registry.load_data("test.thing_happened", 1, {"nik": "3602041211870001"})
    assert set(info.value.messages) == {"thing_id", "nik"}


def test_dump_rejects_data_that_breaks_the_contract(registry):
    @registry.contract("test.thing_happened", 1)
    class ThingHappened(Schema):
        thing_id = fields.String(required=True)

    with pytest.raises(ValidationError) as info:
        registry.dump_data("test.thing_happened", 1, {"other": 1})
    assert "thing_id" in info.value.messages


def test_unknown_contract(registry):
    with pytest.raises(contracts.UnknownContract) as info:
        registry.load_data("test.never_registered", 1, {})
    assert "test.never_registered v1" in info.value.messages["type"][0]
    with pytest.raises(ValidationError):
        registry.dump_data("test.never_registered", 1, {})


def test_versions_are_separate_contracts(registry):
    @registry.contract("test.thing_happened", 1)
    class V1(Schema):
        thing_id = fields.String(required=True)

    with pytest.raises(contracts.UnknownContract):
        registry.load_data("test.thing_happened", 2, {"thing_id": "t"})


def test_second_schema_for_same_type_and_version_raises(registry):
    @registry.contract("test.thing_happened", 1)
    class First(Schema):
        thing_id = fields.String(required=True)

    with pytest.raises(ValueError, match="test.thing_happened v1 is already registered"):
        @registry.contract("test.thing_happened", 1)
        class Second(Schema):
            thing_id = fields.String(required=True)

    registry.contract("test.thing_happened", 1)(First)  # re-registering the same class is fine
    assert registry.registered()[("test.thing_happened", 1)] is First
