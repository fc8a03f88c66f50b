"""Who and which request the current worker serves, readable without a ``worker_ctx``.

The route kernel binds these in the worker's greenthread (each greenthread has its own
context, so concurrent requests never see each other's values). Repository code that writes
an outbox event reads them to fill the envelope's ``correlation_id`` and ``actor``. Other
entrypoints (event handlers) bind them with ``bind_request_context`` too.
"""

import contextlib
from contextvars import ContextVar

_correlation_id = ContextVar("pamong_correlation_id", default=None)
_principal = ContextVar("pamong_principal", default=None)
_actor = ContextVar("pamong_actor", default=None)


def current_correlation_id():
    """The correlation id of the request or event being handled, or None outside one."""
    return _correlation_id.get()


def current_principal():
    """The authenticated ``pamong.auth.Principal``, or None (public route, no request)."""
    return _principal.get()


def current_actor():
    """``{"sub", "role"}`` for event envelopes, or None when nobody is authenticated."""
    return _actor.get()


@contextlib.contextmanager
def bind_request_context(correlation_id, principal=None, actor=None):
    tokens = (_correlation_id.set(correlation_id), _principal.set(principal),
              _actor.set(actor))
    try:
        yield
    finally:
        for var, token in zip((_correlation_id, _principal, _actor), tokens, strict=True):
            var.reset(token)
