"""Every module's HTTP API fuzzed from its OpenAPI document (``docs/openapi-<module>.json``,
kept equal to the code by tests/unit/test_docs_fresh.py) against the real module process.

Each operation gets schemathesis' explicit examples and a bounded number of generated inputs,
valid and invalid, each sent with the token of one of the roles the operation declares
(``x-roles``; the role is drawn with the input, so a failure replays with the same role).
Every answer must: not be a 5xx; have a documented status code, content type and body
schema; and, when it is a refusal (4xx), be RFC 9457 problem+json. A request with a token
is never a 401 (the tokens are valid), and every module must answer some requests 2xx (see
conftest.py): a fuzzer stopped at the door would otherwise pass. Parameters named like the
seeded Pemda's keys (``KNOWN``) often carry its values, to reach past "not found".
Derandomized: the same inputs on every run, so CI does not flake and a failure found once is
found again. Answers per module and status are printed at the end of the run.
"""

import json
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pamong.localtime import local_today
from pamong.web.problem import PROBLEM_CONTENT_TYPE
from tests.fuzz.conftest import NIP_HEAD, NIP_STAFF, OPD

pytestmark = pytest.mark.reliability

DOCS = Path(__file__).resolve().parents[2] / "docs"
MAX_EXAMPLES = 25  # per operation: bounds the run (about 90 s on 2 cores)
PROBLEM_FIELDS = {"type": str, "title": str, "status": int, "detail": str}


def refusals_are_problems(ctx, response, case):
    """A 4xx or 5xx is problem+json with the problem members and the response's status."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert content_type == PROBLEM_CONTENT_TYPE, \
        f"{response.status_code} answered as {content_type!r}, not {PROBLEM_CONTENT_TYPE}"
    body = json.loads(response.content)
    for name, kind in PROBLEM_FIELDS.items():
        assert isinstance(body.get(name), kind), f"problem member {name!r} missing or not {kind}"
    assert body["status"] == response.status_code, "problem status differs from the response's"
    return True


CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          content_type_conformance, refusals_are_problems]

CONFIG = SchemathesisConfig.from_dict({
    "seed": 20261206,
    # the token is ours (a role's, below): schemathesis neither makes one up nor, for a
    # negative case, drops it (every request then reaches the handler, not only the 401)
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                   "with-security-parameters": False},
    "phases": {"examples": {"enabled": True}, "fuzzing": {"enabled": True},
               "coverage": {"enabled": False}, "stateful": {"enabled": False}},
})

SESSION = requests.Session()

# half the time a parameter of one of these names holds a value of the seeded Pemda instead of
# a generated one, so the fuzzer gets past "no such unit" into the handlers behind it
_today = local_today()
KNOWN = {
    "unit": [OPD, f"{OPD}.02", "3510"], "opd": [OPD], "under": [OPD], "root": [OPD],
    "parent": [OPD], "code": [OPD, f"{OPD}.02"], "nip": [NIP_STAFF, NIP_HEAD],
    "person": [NIP_STAFF], "month": [f"{_today:%Y-%m}"], "year": [_today.year],
    "employees": [[NIP_STAFF]],
}


def _known_values(case, data):
    for name, where in (("path", case.path_parameters), ("query", case.query),
                        ("body", case.body)):
        if not isinstance(where, dict):
            continue
        for key in sorted(set(where) & set(KNOWN)):
            if data.draw(st.booleans(), label=f"{name}.{key} known"):
                where[key] = data.draw(st.sampled_from(KNOWN[key]), label=f"{name}.{key}")


def fuzz(module):
    """The fuzz test of one module: one pytest item per operation of its document."""
    schema = schemathesis.openapi.from_dict(
        json.loads((DOCS / f"openapi-{module}.json").read_text()), config=CONFIG)

    @schema.parametrize()
    @schema.given(data=st.data())
    def test(case, data, suite):
        operation = case.operation.definition.raw
        headers = {}
        if operation.get("security"):  # a staff or citizen route: a token of a role it names
            role = data.draw(st.sampled_from(operation["x-roles"]), label="role")
            headers["Authorization"] = f"Bearer {suite.tokens[role]}"
        _known_values(case, data)
        response = case.call_and_validate(base_url=suite.urls[module], session=SESSION,
                                          headers=headers, checks=CHECKS, timeout=30)
        suite.answered[module][response.status_code] += 1
        # every token minted here is valid: a 401 would mean the fuzzer only knocked on doors
        assert not (headers and response.status_code == 401), response.text

    return test


test_directory = fuzz("directory")
test_attendance = fuzz("attendance")
test_letters = fuzz("letters")
test_permits = fuzz("permits")
test_notify = fuzz("notify")
