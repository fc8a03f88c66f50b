"""The contract fast path gives marshmallow's answer whenever it answers, and answers for plain
data. Compared on generated data for every registered contract, the envelope, and a schema
with every supported field type."""

import math
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from pamong.events import contracts
from pamong.events.compat import load_all_contracts
from pamong.events.envelope import ENVELOPE, FAST_ENVELOPE, load_envelope, new_event
from pamong.events.fastschema import Unsure, compile_schema

pytestmark = pytest.mark.unit


class Item(Schema):
    label = fields.String(required=True, validate=validate.Length(min=1, max=5))
    weight = fields.Float(required=True, allow_nan=True)


class EveryType(Schema):
    text = fields.String(required=True, validate=validate.Regexp(r"^[a-c]+$"))
    choice = fields.String(required=True, allow_none=True, validate=validate.OneOf(("x", "y")))
    count = fields.Integer(required=True, validate=validate.Range(min=0, max=9))
    strict_count = fields.Integer(strict=True)
    ratio = fields.Float(required=True)
    flag = fields.Boolean(required=True)
    day = fields.Date(required=True)
    moment = fields.AwareDateTime(required=True)
    local = fields.NaiveDateTime()
    any_time = fields.DateTime()
    ident = fields.UUID(required=True)
    extra = fields.Dict(required=True)
    items = fields.List(fields.Nested(Item), required=True, validate=validate.Length(max=2))
    tags = fields.List(fields.String(allow_none=True))
    item = fields.Nested(Item, allow_none=True)


def schemas():
    """The published language (test modules register probe contracts of their own, some
    broken on purpose, in the same registry)."""
    load_all_contracts()
    found = [(f"{t} v{v}", contracts.schema_for(t, v)) for t, v in sorted(contracts.registered())
             if type(contracts.schema_for(t, v)).__module__.startswith("pamong.contracts.")]
    return [*found, ("envelope", ENVELOPE), ("every type", EveryType(unknown=RAISE))]


SCHEMAS = schemas()
IDS = [name for name, _ in SCHEMAS]
JUNK = [None, True, False, 0, 7, -1, 10**400, 1.5, float("nan"), float("inf"), "", "x", "y",
        "2023-02-30", "2023-02-03", "2026-11-28T07:00:00+07:00", "2026-11-28T07:00:00",
        "12345678-1234-5678-1234-567812345678", "3510.01", b"x", [], {}, (), {"label": "a"},
        date(2020, 1, 1), datetime(2020, 1, 1), datetime(2020, 1, 1, tzinfo=UTC),
        uuid.UUID(int=5)]
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3))])


def plain(field, for_dump):
    """Values of the type the fast path takes (they may still fail a validator)."""
    kind = type(field)
    if kind is fields.String:
        for validator in field.validators:
            if isinstance(validator, validate.OneOf):
                return st.sampled_from(list(validator.choices) + ["other"])
            if isinstance(validator, validate.Regexp):
                matching = st.from_regex(validator.regex, fullmatch=True)
                return st.one_of(matching, st.text(max_size=4))
        return st.text(max_size=8)
    if kind is fields.Integer:
        return st.integers(min_value=-3, max_value=12)
    if kind is fields.Float:
        return st.one_of(st.floats(), st.integers(-200, 200))
    if kind is fields.Boolean:
        return st.booleans()
    if kind is fields.Date:
        days = st.dates()
        return days if for_dump else st.one_of(days.map(date.isoformat), days)
    if kind in (fields.DateTime, fields.AwareDateTime, fields.NaiveDateTime):
        moments = st.datetimes(timezones=st.one_of(st.none(), ZONES))
        return moments if for_dump else st.one_of(moments.map(datetime.isoformat), moments)
    if kind is fields.UUID:
        return st.one_of(st.uuids().map(str), st.uuids())
    if kind is fields.Dict:
        return st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3),
                               max_size=3)
    if kind is fields.List:
        return st.lists(value(field.inner, for_dump, junk=False), max_size=3)
    if kind is fields.Nested:
        return document(field.schema, for_dump, junk=False)
    raise AssertionError(f"no strategy for {kind.__name__}")


def value(field, for_dump, junk):
    values = plain(field, for_dump)
    if field.allow_none:
        values = st.one_of(values, st.none())
    if junk:
        values = st.one_of(values, st.sampled_from(JUNK))
    return values


def document(schema, for_dump, junk):
    """A dict for the schema: every field plain (``junk``: any field may be junk, missing, or
    joined by an unknown key)."""
    shape = {name: value(field, for_dump, junk) for name, field in schema.fields.items()}
    if not junk:
        return st.fixed_dictionaries(shape)
    optional = st.fixed_dictionaries({}, optional=shape)
    return st.one_of(st.fixed_dictionaries(shape), optional,
                     st.fixed_dictionaries(shape).map(lambda d: {**d, "unknown": 1}))


def marshmallow_load(schema, data):
    try:
        return schema.load(data)
    except ValidationError:
        return None


def marshmallow_dump_data(schema, data):
    """What contracts.dump_data does with marshmallow alone."""
    try:
        dumped = schema.dump(data)
        schema.load(dumped)
        return dumped
    except (ValidationError, TypeError, ValueError, OverflowError, AttributeError):
        return None


def fast_answer(call, data):
    try:
        return call(data)
    except Unsure:
        return None


def same(a, b):
    """Equal, with types (1 is not 1.0) and NaN equal to itself."""
    return repr(a) == repr(b) and (a is None) == (b is None)


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=IDS)
def test_every_schema_used_here_compiles(name, schema):
    assert compile_schema(schema) is not None, name


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_plain_data_is_answered_as_marshmallow_answers(name, schema, data):
    fast = compile_schema(schema)
    loadable = data.draw(document(schema, for_dump=False, junk=False))
    expected = marshmallow_load(schema, loadable)
    answer = fast_answer(fast.load, loadable)
    assert same(answer, expected)  # accepted: the same result; refused: the fast path is unsure
    dumpable = data.draw(document(schema, for_dump=True, junk=False))
    expected = marshmallow_dump_data(schema, dumpable)
    assert same(fast_answer(fast.dump, dumpable), expected)


@pytest.mark.parametrize(("name", "schema"), SCHEMAS, ids=IDS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_any_answer_on_odd_data_is_marshmallows(name, schema, data):
    fast = compile_schema(schema)
    for for_dump, call, reference in ((False, fast.load, marshmallow_load),
                                      (True, fast.dump, marshmallow_dump_data)):
        odd = data.draw(document(schema, for_dump, junk=True))
        answer = fast_answer(call, odd)
        if answer is not None:
            assert same(answer, reference(schema, odd))


def test_a_refused_value_gets_marshmallows_messages():
    with pytest.raises(ValidationError) as refused:
        contracts.load_data("employee.upserted", 1, {"nip": "12"})
    assert "nip" in refused.value.messages and "name" in refused.value.messages
    with pytest.raises(ValidationError) as refused:
        contracts.dump_data("unit.deactivated", 1, {"code": "3510", "version": 0})
    assert refused.value.messages == {"version": ["Must be greater than or equal to 1."]}


def test_the_envelope_takes_the_fast_path_and_keeps_its_id_a_string():
    body = new_event("directory", "unit.deactivated", {"code": "3510.01", "version": 2},
                     actor={"sub": "199001012020121001", "role": "admin"})
    assert FAST_ENVELOPE is not None
    loaded = load_envelope(body)
    assert loaded["id"] == body["id"] and isinstance(loaded["id"], str)
    assert loaded["occurred_at"] == datetime.fromisoformat(body["occurred_at"])
    assert FAST_ENVELOPE.load(body)["data"] == body["data"]


@pytest.mark.parametrize("schema", [
    type("Hooked", (Schema,), {"a": fields.String(),
                               "check": validates("a")(lambda self, value, **kwargs: None)}),
    type("Keyed", (Schema,), {"a": fields.String(data_key="A")}),
    type("Defaulted", (Schema,), {"a": fields.String(load_default="x")}),
    type("Email", (Schema,), {"a": fields.Email()}),
    type("Many", (Schema,), {"a": fields.Nested(Item, many=True)}),
    type("Excluding", (Schema,), {"a": fields.Nested(Item, unknown="exclude")}),
    type("FieldHooks", (Schema,), {"a": fields.String(post_load=str.upper)}),
    type("OwnGetter", (Schema,), {"a": fields.String(),
                                  "get_attribute": lambda self, obj, attr, default: "X"}),
], ids=lambda s: s.__name__)
def test_what_the_fast_path_does_not_know_stays_with_marshmallow(schema):
    assert compile_schema(schema()) is None


def test_nan_is_refused_unless_allowed():
    fast = compile_schema(Item())
    assert math.isnan(fast.load({"label": "a", "weight": float("nan")})["weight"])
    with pytest.raises(Unsure):
        compile_schema(EveryType()).load({"ratio": float("nan")})
