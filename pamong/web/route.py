"""HTTP entrypoints for pamong services: ``@route`` on top of nameko's ``HttpRequestHandler``.

    @route("GET", "/api/things/v1/things/<thing_id>", roles=("admin", "opd_admin"),
           response=ThingSchema(), summary="One thing")
    def get_thing(self, request, principal, thing_id):
        ...

Calling convention: the service method is called as
``method(self, request, principal, [body=...], [query=...], **path_args)`` where

- ``request`` is the werkzeug ``Request`` (``request.correlation_id`` is set);
- ``principal`` is the authenticated ``pamong.auth.Principal``, or None on ``public=True``;
- ``body`` is the dict loaded by the ``body=`` schema, passed only when the route declares one;
- ``query`` is the dict loaded by the ``query=`` schema, passed only when declared;
- path variables of the URL template arrive as keyword arguments by name.

It returns ``payload`` (status ``status=``, default 200), ``(status, payload)``,
``(status, payload, headers)`` or a werkzeug ``Response``, or raises ``Problem``. A payload is
dumped with the ``response=`` schema (2xx only) when given, then JSON-encoded (datetimes as
ISO-8601 UTC). Status 204 sends no body.

Before the method runs, in this order: correlation id (``X-Request-ID`` or a new uuid4 hex,
echoed back), body size (``max_body=`` of the route, else ``HTTP_MAX_BODY_BYTES``, default
1 MiB -> 413), authentication
(401) and roles (403), query validation (422),
body content type (415), JSON (400), body validation with unknown fields rejected (422). So a
caller without a valid token learns nothing about the endpoint's schema.

Inside the worker, ``worker_ctx.data`` holds ``correlation_id`` and ``actor`` (``{"sub",
"role"}``; nameko forwards both in RPC and event headers) and ``pamong.web.context`` exposes
``current_correlation_id()``, ``current_principal()`` and ``current_actor()``.

Use ``@route`` for every HTTP endpoint of a service, not nameko's ``@http`` as well: they run
separate web servers and would both bind ``WEB_SERVER_ADDRESS``.
"""

import functools
import inspect
import json
import logging
import re
import time
import uuid

import pymongo.errors
from eventlet.event import Event
from marshmallow import ValidationError, fields
from nameko.exceptions import ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from pamong import auth  # module, not names: pamong.auth imports pamong.web.problem
from pamong.config import DEFAULTS
from pamong.metrics import HTTP_LATENCY, HTTP_REQUESTS
from pamong.web.context import bind_request_context
from pamong.web.encoding import dumps
from pamong.web.problem import (
    Problem,
    bad_request,
    forbidden,
    service_unavailable,
    unprocessable,
)

_log = logging.getLogger(__name__)

# what a client is told to wait when a dependency (the database) is unreachable
UNAVAILABLE_RETRY_AFTER_SECONDS = 5
# accept a caller's id only if it cannot forge log lines or headers
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_NO_BODY_STATUSES = (204, 304)
_in_flight = 0  # requests this process is answering now


def requests_in_flight():
    """How many HTTP requests this process is answering now: background work (a letter's
    seal) may let a burst of them pass first."""
    return _in_flight


class _ProblemWsgiApp(WsgiApp):
    """nameko's WSGI app, but unknown paths and wrong methods answer problem+json too."""

    def __call__(self, environ, start_response):
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
        except HTTPException as exc:
            if (exc.code or 0) < 400:  # a redirect, e.g. to add a trailing slash
                return exc(environ, start_response)
            request.correlation_id = _correlation_id(request)
            response = _problem_from_http(exc).to_response()
            from pamong.web import pages  # pages builds on this module

            if pages.wants_html(request):  # a browser on an unknown page: the HTML one
                response = pages.finish(request, pages.error_page(
                    request, response.status_code,
                    headers={k: v for k, v in response.headers.items() if k == "Allow"}))
            response.headers["X-Request-ID"] = request.correlation_id
        else:
            request.path_values = values
            response = provider.handle_request(request)
        return response(environ, start_response)


def _problem_from_http(exc):
    headers = {}
    if getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(exc.valid_methods)
    return Problem(exc.code, exc.description, headers=headers)


class ProblemWebServer(WebServer):
    def get_wsgi_app(self):
        return _ProblemWsgiApp(self)


class HttpRoute(HttpRequestHandler):
    server = ProblemWebServer()

    def __init__(self, method, url, roles=(), body=None, query=None, response=None, status=200,
                 summary=None, description=None, public=False, any_staff=False, tags=(),
                 document=True, max_body=None, problems=None, media_types=(),
                 replay_status=None, **kwargs):
        _check_access(url, tuple(roles), public, any_staff)
        # any_staff: every role but the citizen's; a token without roles is never enough
        self.roles = tuple(sorted(auth.STAFF_ROLES)) if any_staff else tuple(roles)
        self.any_staff = any_staff
        self.body = body
        self.query = query
        self.response = response
        self.status = status
        self.summary = summary
        self.description = description
        self.public = public
        self.tags = list(tags)
        self.document = document  # False keeps it out of the OpenAPI document
        self.max_body = max_body  # bytes; overrides HTTP_MAX_BODY_BYTES (e.g. file uploads)
        # {status: when}: the refusals the handler itself answers, for the OpenAPI document
        self.problems = {int(status): text for status, text in (problems or {}).items()}
        # what a success may be besides JSON (a CSV or XLSX export), for the OpenAPI document
        self.media_types = tuple(media_types)
        # the status of a repeat answered with the first result (200 where a create is 201)
        self.replay_status = replay_status
        super().__init__(method, url, **kwargs)

    def setup(self):
        super().setup()
        auth.check_auth_config(self.container.config)
        self._check_handler_signature()

    def _check_handler_signature(self):
        """Fail at container start, not on the first request, when the method cannot take
        what this route will pass."""
        rule = Rule(self.url)
        Map([rule])  # compiling the rule fills rule.arguments
        kwargs = dict.fromkeys(rule.arguments)
        if self.body is not None:
            kwargs["body"] = None
        if self.query is not None:
            kwargs["query"] = None
        handler = inspect.unwrap(getattr(self.container.service_cls, self.method_name))
        try:
            inspect.signature(handler).bind(None, None, None, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.container.service_name}.{self.method_name} cannot be "
                            f"called as (self, request, principal, **{sorted(kwargs)}): {exc}"
                            ) from None

    def handle_request(self, request):
        global _in_flight
        started = time.perf_counter()
        request.shallow = False
        request.correlation_id = _correlation_id(request)
        request.actor = None
        _in_flight += 1
        try:
            response = self._respond(request)
        except Problem as problem:
            response = problem.to_response()
        except ContainerBeingKilled:
            response = service_unavailable("The service is shutting down.").to_response()
        except Exception as exc:
            response = self.response_from_exception(exc, request)
        finally:
            _in_flight -= 1
        response.headers["X-Request-ID"] = request.correlation_id
        self._observe(request, response.status_code, time.perf_counter() - started)
        return response

    def _respond(self, request):
        config = self.container.config
        limit = self.max_body or int(config.get("HTTP_MAX_BODY_BYTES",
                                                DEFAULTS["HTTP_MAX_BODY_BYTES"]))
        # refuse by the declared length before reading a byte (or checking a token)
        if (request.content_length or 0) > limit:
            raise _too_large(limit)

        principal = None
        if not self.public:
            principal = auth.authenticate(request.headers, config)
            if not principal.has_any(self.roles):
                raise forbidden()
            request.actor = principal.actor(self.roles)

        kwargs = dict(request.path_values)
        if self.query is not None:
            kwargs["query"] = _load(self.query, _query_data(request.args, self.query))
        if self.body is not None:
            kwargs["body"] = _load(self.body, _read_json(request, limit))

        context_data = {"correlation_id": request.correlation_id}
        if request.actor:
            context_data["actor"] = request.actor
        event = Event()
        self.container.spawn_worker(self, (request, principal), kwargs,
                                    context_data=context_data,
                                    handle_result=functools.partial(self.handle_result, event))
        return self.response_from_result(event.wait())

    def response_from_result(self, result):
        if isinstance(result, Response):
            return result
        if isinstance(result, Problem):
            return result.to_response()
        status, payload, headers = self.status, result, None
        if isinstance(result, tuple):
            status, payload, *rest = result
            headers = rest[0] if rest else None
        if status in _NO_BODY_STATUSES:
            return Response(status=status, headers=headers)
        if self.response is not None and 200 <= status < 300 and payload is not None:
            payload = self.response.dump(payload)
        return Response(dumps(payload), status=status, headers=headers,
                        content_type="application/json")

    def response_from_exception(self, exc, request=None):
        """Any exception that is not a Problem: log it with the correlation id, tell the
        client only that it happened."""
        correlation_id = getattr(request, "correlation_id", None)
        _log.error("unhandled error in %s %s (correlation_id=%s)",
                   getattr(request, "method", "?"), self.url, correlation_id,
                   exc_info=exc, extra={"correlation_id": correlation_id})
        return Problem(500, "An internal error occurred. Quote the X-Request-ID response "
                            "header when reporting it.").to_response()

    def _observe(self, request, status, seconds):
        service = self.container.service_name
        # the route template, never the raw path: one time series per endpoint
        HTTP_REQUESTS.labels(service, self.url, request.method, str(status)).inc()
        HTTP_LATENCY.labels(service, self.url, request.method).observe(seconds)


def _check_access(url, roles, public, any_staff):
    """Every route says who may call it: ``public``, ``any_staff`` or its ``roles``."""
    if public + any_staff + bool(roles) != 1:
        raise TypeError(f"route {url}: declare exactly one of roles=(...), any_staff=True or "
                        "public=True")
    unknown = set(roles) - auth.ROLES
    if unknown:
        raise TypeError(f"route {url}: unknown roles {sorted(unknown)}")


def _correlation_id(request):
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _too_large(limit):
    return Problem(413, f"The request body is larger than {limit} bytes.",
                   extensions={"limit": limit})


def _query_data(args, schema):
    """werkzeug's MultiDict -> dict, keeping repeated values only for List fields."""
    list_keys = {field.data_key or name for name, field in schema.fields.items()
                 if isinstance(field, fields.List)}
    return {key: args.getlist(key) if key in list_keys else args.get(key) for key in args}


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def read_body(request, limit):
    """The raw request body, at most ``limit`` bytes (413 above it, by the declared length
    before reading a byte, or by counting a chunked one)."""
    if (request.content_length or 0) > limit:
        raise _too_large(limit)
    if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
        # eventlet ends a chunked body itself but does not say so; without this flag werkzeug
        # reads such a body as empty
        request.environ["wsgi.input_terminated"] = True
    # werkzeug stops reading at max_content_length; one byte more tells "too large" apart
    request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    except ClientDisconnected:
        raise bad_request("The request body ended early.") from None
    if len(raw) > limit:
        raise _too_large(limit)
    return raw


def _read_json(request, limit):
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem(415, "The request body must be application/json.")
    raw = read_body(request, limit)
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except ValueError:  # includes bad UTF-8
        raise bad_request("The request body is not valid JSON.") from None


def _load(schema, data):
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise unprocessable(exc.messages) from None


def _entry_for(fn):
    """Wrap the service method so it runs with the request context bound in the worker's own
    greenthread, and so a raised Problem is a result (a client error) rather than a worker
    failure that nameko would log with a traceback. An unreachable database is a 503 with
    ``Retry-After``. A read may simply be repeated; a write that timed out may or may not
    have been applied, so its retry is safe only where an idempotency key or a version check
    makes a second application a no-op or a conflict."""

    @functools.wraps(fn)
    def entry(self, request, principal, **kwargs):
        # getattr: tests may call the method directly with a bare request
        with bind_request_context(getattr(request, "correlation_id", None), principal,
                                  getattr(request, "actor", None)):
            try:
                return fn(self, request, principal, **kwargs)
            except Problem as problem:
                return problem
            except pymongo.errors.ConnectionFailure as exc:
                _log.warning("database unavailable in %s: %r", fn.__name__, exc)
                return service_unavailable("The database is unavailable; try again later.",
                                           retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS)

    entry.pamong_route_entry = True
    return entry


def route(method, url, **options):
    """Declare an HTTP endpoint; see the module docstring for options and calling convention.

    Options: roles, any_staff, public (exactly one of the three), body, query, response
    (marshmallow schema instances), status (default success status), summary, description,
    tags, document, max_body, problems (``{409: "when"}``: refusals the handler raises
    besides those the kernel documents), media_types (a success's other content types, e.g.
    ``("text/csv",)`` for an export), replay_status (the status of a repeated request answered
    with the first result, e.g. 200 where the first answer is 201).
    """

    def decorate(fn):
        entry = fn if getattr(fn, "pamong_route_entry", False) else _entry_for(fn)
        return HttpRoute.decorator(method, url, **options)(entry)

    return decorate


def routes_of(service_cls):
    """``(method_name, HttpRoute)`` for every route declared on ``service_cls`` (inherited
    ones included), in a stable order."""
    found = []
    for name, member in inspect.getmembers(service_cls, callable):
        for entrypoint in getattr(member, "nameko_entrypoints", ()):
            if isinstance(entrypoint, HttpRoute):
                found.append((name, entrypoint))
    return sorted(found, key=lambda item: (item[1].url, item[1].method, item[0]))
