import datetime
import json

import pytest
from bson import ObjectId

from pamong.web import Problem, bad_request, conflict, forbidden, not_found, unauthorized
from pamong.web.encoding import dumps
from pamong.web.problem import flatten_errors, unprocessable

pytestmark = pytest.mark.unit


def body_of(problem):
    response = problem.to_response()
    assert response.content_type == "application/problem+json"
    assert response.status_code == problem.status
    return json.loads(response.get_data())


def test_problem_renders_rfc9457_members():
    body = body_of(conflict("Letter 12 was changed by someone else."))
    assert body == {"type": "about:blank", "title": "Conflict", "status": 409,
                    "detail": "Letter 12 was changed by someone else."}


def test_errors_member_only_when_there_are_errors():
    assert "errors" not in body_of(not_found())
    body = body_of(bad_request("Bad cursor", {"cursor": ["Invalid cursor."]}))
    assert body["status"] == 400
    assert body["errors"] == {"cursor": ["Invalid cursor."]}


def test_helpers_set_status_and_a_human_detail():
    assert forbidden().status == 403 and forbidden().detail
    assert not_found().status == 404 and not_found().detail
    assert Problem(503).detail == "Service Unavailable"


def test_unauthorized_carries_a_bearer_challenge():
    missing = unauthorized("A bearer token is required.", error=None).to_response()
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    invalid = unauthorized("The token has expired.").to_response()
    assert invalid.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert json.loads(invalid.get_data())["detail"] == "The token has expired."


def test_marshmallow_errors_flatten_to_dotted_field_names():
    messages = {"name": ["Missing data for required field."],
                "address": {"city": ["Not a valid string."]},
                "items": {0: {"qty": ["Must be positive."]}},
                "_schema": ["Unknown field."]}
    assert flatten_errors(messages) == {
        "name": ["Missing data for required field."],
        "address.city": ["Not a valid string."],
        "items.0.qty": ["Must be positive."],
        "_schema": ["Unknown field."],
    }
    assert unprocessable(messages).status == 422


def test_json_encoding_writes_datetimes_as_utc_iso8601():
    wib = datetime.timezone(datetime.timedelta(hours=7))
    payload = {"at": datetime.datetime(2024, 3, 1, 8, 0, tzinfo=wib),
               "naive": datetime.datetime(2024, 3, 1, 1, 0),
               "day": datetime.date(2024, 3, 1),
               "id": ObjectId("65e1a0000000000000000000")}
    assert json.loads(dumps(payload)) == {"at": "2024-03-01T01:00:00+00:00",
                                          "naive": "2024-03-01T01:00:00+00:00",
                                          "day": "2024-03-01",
                                          "id": "65e1a0000000000000000000"}


def test_json_encoding_refuses_unknown_types():
    with pytest.raises(TypeError):
        dumps({"x": object()})
