"""RFC 9457 problem details: the only shape an error ever takes on the wire.

Raise a ``Problem`` anywhere in request handling (route kernel, auth, service code, domain
adapters); the route kernel renders it as ``application/problem+json``. Anything else that
escapes becomes a generic 500 problem, so no traceback or exception text reaches a client.
"""

import json
from http import HTTPStatus

from werkzeug.wrappers import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """An HTTP error response: ``{type, title, status, detail, errors?}``.

    ``errors`` maps a field name (dotted for nested fields, ``_schema`` for the whole body) to
    a list of messages. ``headers`` are added to the response (e.g. ``WWW-Authenticate``).
    ``extensions`` are extra members of the body (RFC 9457 §3.2), e.g. the distance and radius
    of a refused check-in; they cannot replace the standard members.
    """

    def __init__(self, status, detail=None, *, title=None, type="about:blank", errors=None,
                 headers=None, extensions=None):
        self.status = int(status)
        # with type "about:blank" RFC 9457 wants the title to be the status phrase
        self.title = title or HTTPStatus(self.status).phrase
        self.detail = detail or self.title
        self.type = type
        self.errors = errors
        self.headers = dict(headers or {})
        self.extensions = dict(extensions or {})
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    def to_dict(self):
        body = {**self.extensions, "type": self.type, "title": self.title,
                "status": self.status, "detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        return body

    def to_response(self):
        return Response(json.dumps(self.to_dict()), status=self.status, headers=self.headers,
                        content_type=PROBLEM_CONTENT_TYPE)


def not_found(detail="The resource does not exist or you may not see it."):
    return Problem(404, detail)


def conflict(detail):
    return Problem(409, detail)


def forbidden(detail="Your roles do not allow this operation."):
    return Problem(403, detail)


def unauthorized(detail, error="invalid_token"):
    """401 with the RFC 6750 challenge; ``error=None`` when no credentials were sent at all."""
    challenge = f'Bearer error="{error}"' if error else "Bearer"
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})


def bad_request(detail, errors=None):
    return Problem(400, detail, errors=errors)


def unprocessable(errors, detail="The request did not pass validation."):
    return Problem(422, detail, errors=flatten_errors(errors))


def service_unavailable(detail, errors=None, retry_after=None):
    """503; ``retry_after`` (seconds) tells clients when to try again."""
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return Problem(503, detail, errors=errors, headers=headers)


def flatten_errors(messages, prefix=""):
    """marshmallow's nested error dict -> ``{"a.b": [...], "items.0.name": [...]}``."""
    if isinstance(messages, dict):
        flat = {}
        for key, value in messages.items():
            flat.update(flatten_errors(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(messages, (list, tuple)):
        if all(isinstance(item, str) for item in messages):
            return {prefix or "_schema": list(messages)}
        flat = {}
        for item in messages:  # e.g. a dict raised by a @validates_schema
            for key, value in flatten_errors(item, prefix).items():
                flat.setdefault(key, []).extend(value)
        return flat
    return {prefix or "_schema": [str(messages)]}
