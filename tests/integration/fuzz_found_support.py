"""What the tests of inputs found by the API fuzzer (tests/fuzz) share: an answer is a
problem+json refusal with the status its operation documents in the module's OpenAPI
document (the one ``make docs`` writes, built from the code here)."""

import functools

from pamong.modules import installed
from pamong.web.openapi import spec_for
from pamong.web.problem import PROBLEM_CONTENT_TYPE


@functools.cache
def _document(module):
    return spec_for(installed(only=module)[module], title=module, version="1")


def documented_statuses(module, method, template):
    """The statuses the OpenAPI document of ``module`` declares for ``method template``."""
    operation = _document(module)["paths"][template][method.lower()]
    return {int(status) for status in operation["responses"]}


def assert_documented_refusal(response, module, template, status):
    """``response`` is a ``status`` problem+json, and that status is in the document."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["status"] == status
    statuses = documented_statuses(module, response.request.method, template)
    assert status in statuses, f"{status} is not documented for {template}: {statuses}"


def assert_documented_success(response, module, template, status):
    """``response`` is a ``status`` success, and that status is in the document."""
    assert response.status_code == status, response.text
    statuses = documented_statuses(module, response.request.method, template)
    assert status in statuses, f"{status} is not documented for {template}: {statuses}"
