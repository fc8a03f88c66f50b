"""The HTTP kernel: routes, problem+json errors, pagination, request context."""

from pamong.web.context import (
    bind_request_context,
    current_actor,
    current_correlation_id,
    current_principal,
)
from pamong.web.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageQuery,
    decode_cursor,
    encode_cursor,
    find_page,
    page,
    page_of,
)
from pamong.web.problem import (
    Problem,
    bad_request,
    conflict,
    forbidden,
    not_found,
    service_unavailable,
    unauthorized,
    unprocessable,
)
from pamong.web.route import HttpRoute, route, routes_of

__all__ = [
    "DEFAULT_LIMIT", "MAX_LIMIT", "HttpRoute", "PageQuery", "Problem", "bad_request",
    "bind_request_context", "conflict", "current_actor", "current_correlation_id",
    "current_principal", "decode_cursor", "encode_cursor", "find_page", "forbidden",
    "not_found", "page",
    "page_of", "route", "routes_of", "service_unavailable", "unauthorized", "unprocessable",
]
