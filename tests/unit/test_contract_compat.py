import pytest
from marshmallow import Schema, fields

from pamong.events.compat import breaking_changes, check, describe

pytestmark = pytest.mark.unit


class V1(Schema):
    key = fields.String(required=True)
    amount = fields.Integer(required=True)
    note = fields.String(allow_none=True)


def shape(**declared):
    return describe(Schema.from_dict(declared))


def test_adding_an_optional_field_is_compatible():
    new = shape(key=fields.String(required=True), amount=fields.Integer(required=True),
                note=fields.String(allow_none=True), extra=fields.String())
    assert breaking_changes(describe(V1), new) == []


@pytest.mark.parametrize("new, problem", [
    (dict(key=fields.String(required=True), note=fields.String(allow_none=True)),
     "amount: removed"),
    (dict(key=fields.String(required=True), amount=fields.String(required=True),
          note=fields.String(allow_none=True)), "amount: type changed"),
    (dict(key=fields.String(required=True), amount=fields.Integer(required=True),
          note=fields.String(required=True, allow_none=True)), "note: became required"),
    (dict(key=fields.String(required=True), amount=fields.Integer(required=True),
          note=fields.String()), "note: no longer accepts null"),
    (dict(key=fields.String(required=True), amount=fields.Integer(required=True),
          note=fields.String(allow_none=True), must=fields.String(required=True)),
     "must: new required field"),
])
def test_breaking_changes_are_named(new, problem):
    problems = breaking_changes(describe(V1), shape(**new))
    assert any(p.startswith(problem) for p in problems), problems


def test_published_contracts_are_not_broken():
    """The build fails when code changes a contract that was published (see published.json)."""
    assert check() == []
