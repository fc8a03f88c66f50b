"""OpenAPI 3.1 documents built from a service class's ``@route`` declarations.

Serve it from the service (``GET /api/<service>/v1/openapi.json``, public) and write it to
``docs/`` with ``make docs``; both call ``spec_for``.
"""

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from pamong.web.route import route, routes_of

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "object",
            "description": "Messages per field (dotted path for nested fields)",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}

_PATH_VARIABLE = re.compile(r"<(?:(?P<converter>[a-zA-Z_]+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
_CONVERTER_TYPES = {"int": "integer", "float": "number"}


def _openapi_path(url):
    """werkzeug ``/things/<int:thing_id>`` -> ``/things/{thing_id}`` plus its parameters."""
    parameters = [
        {"in": "path", "name": match["name"], "required": True,
         "schema": {"type": _CONVERTER_TYPES.get(match["converter"], "string")}}
        for match in _PATH_VARIABLE.finditer(url)
    ]
    return _PATH_VARIABLE.sub(lambda m: "{" + m["name"] + "}", url), parameters


def _problem(description):
    return {"description": description,
            "content": {"application/problem+json": {"schema": "Problem"}}}


def _refusal(errors, status, text):
    """Document ``status``; a second reason for a status already there joins the first."""
    key = str(status)
    errors[key] = f"{errors[key]}; or: {text}" if key in errors else text


def _access_note(entry):
    if entry.public:
        return "Public: no token needed."
    if entry.any_staff:
        return "Any staff role (every role but `pemohon`)."
    return "Roles: " + ", ".join(f"`{role}`" for role in entry.roles) + "."


def _operation(method_name, entry, path_parameters):
    operation = {
        "operationId": method_name,
        "summary": entry.summary or method_name.replace("_", " "),
        "description": "\n\n".join(filter(None, [entry.description, _access_note(entry)])),
        "tags": entry.tags,
        "x-roles": list(entry.roles),
        "parameters": list(path_parameters),
        "responses": {},
    }
    success = {"description": "Success"}
    if entry.response is not None:
        success["content"] = {"application/json": {"schema": entry.response}}
    for media_type in entry.media_types:
        success.setdefault("content", {})[media_type] = {
            "schema": {"type": "string", "format": "binary"}}
    operation["responses"][str(entry.status)] = success
    if entry.replay_status is not None:
        operation["responses"][str(entry.replay_status)] = {
            **success, "description": "A repeat of the request: the first result"}

    # every handler answers 503 with Retry-After when the database is unreachable (route.py)
    errors = {"500": "Internal error", "503": "The database is unavailable; retry after "
                                              "`Retry-After` seconds"}
    if entry.query is not None:
        operation["parameters"].append({"in": "query", "schema": entry.query})
    if entry.body is not None:
        operation["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": entry.body}}}
        errors.update({"400": "Body is not JSON", "413": "Body too large",
                       "415": "Body is not application/json"})
    if entry.body is not None or entry.query is not None:
        errors["422"] = "Validation failed; `errors` names the fields"
    if entry.max_body is not None:  # a raw upload (a CSV, a PDF) has a limit too
        errors["413"] = "Body too large"
    if entry.public:
        operation["security"] = []
    else:
        operation["security"] = [{"bearerAuth": []}]
        errors.update({"401": "Missing, expired or invalid token",
                       "403": "The caller's roles do not allow this"})
    if path_parameters:
        errors["404"] = "Not found, or outside the caller's OPD"
    if entry.query is not None and "cursor" in entry.query.fields:
        _refusal(errors, 400, "The `cursor` is invalid (edited, or from another list)")
    for status, text in entry.problems.items():
        _refusal(errors, status, text)
    operation["responses"].update(
        {status: _problem(text) for status, text in sorted(errors.items())})
    if not operation["tags"]:
        del operation["tags"]
    return operation


def spec_for(service_cls, title, version, description=None):
    """The OpenAPI 3.1 document (a dict) of every documented ``@route`` of ``service_cls``."""
    spec = APISpec(title=title, version=version, openapi_version="3.1.0",
                   plugins=[MarshmallowPlugin()],
                   info={"description": description} if description else {})
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Problem", PROBLEM_SCHEMA)
    for method_name, entry in routes_of(service_cls):
        if not entry.document:
            continue
        path, path_parameters = _openapi_path(entry.url)
        methods = [m.strip().lower() for m in entry.method.split(",")]
        operations = {}
        for method in methods:
            operation = _operation(method_name, entry, path_parameters)
            if len(methods) > 1:  # operationId must be unique in the document
                operation["operationId"] = f"{method_name}_{method}"
            operations[method] = operation
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def openapi_endpoint(name):
    """A mixin for service ``name``: ``GET /api/<name>/v1/openapi.json`` (public) answers
    the document ``make docs`` writes to ``docs/openapi-<name>.json``, built from the
    service's own routes (so a client of a running module reads what that version serves)."""

    class OpenApiEndpoint:
        @route("GET", f"/api/{name}/v1/openapi.json", public=True, document=False)
        def openapi(self, request, principal):
            return spec_for(type(self), title=f"pamong {name}", version="1")

    return OpenApiEndpoint
