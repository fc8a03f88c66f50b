"""JSON-lines logging with personal data masked and the request/event context attached.

``configure(service_name)`` puts one handler on the root logger; each record becomes one line::

    {"ts": "2024-05-01T03:04:05.123456Z", "level": "INFO", "logger": "pamong.events.consumer",
     "service": "permits", "message": "...", "correlation_id": "...", "event_id": "..."}

``message`` and ``exc`` (the traceback, when there is one) pass through
``pamong.privacy.mask_text``, so a NIK or phone number in a log line comes out masked.

``configure`` without a ``stream`` takes over the process's stderr, so that every line there
is JSON and one parser reads them all: warnings go through logging (``py.warnings``), an
uncaught exception is logged (logger ``uncaught``, with ``exc``), and text that a library
writes straight to ``sys.stderr`` (eventlet's report of a failed green thread, logging's own
errors) becomes a line of logger ``stderr``: one line per message, a whole traceback in one.

Context: ``bind(correlation_id=..., event_id=...)`` stores fields for the current green
thread only (``eventlet.corolocal.local``); every line logged from that green thread carries
them. A nameko worker runs in its own green thread, so binding at the start of a worker is
enough, and the next worker starts empty. Precedence for each field: ``extra={...}`` on the
log call, then ``bind``, then (for ``correlation_id``) the request context the HTTP route
kernel binds (``pamong.web.context.current_correlation_id``).
"""

import io
import json
import logging
import os
import sys
import traceback
from datetime import UTC, datetime

from eventlet.corolocal import local

from pamong.config import DEFAULTS
from pamong.privacy import mask_text

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "bind", "bind_worker", "clear", "configure",
           "current"]

CONTEXT_FIELDS = ("correlation_id", "event_id")
_HANDLER_MARK = "_pamong_json_handler"

_local = local()


def _fields():
    try:
        return _local.fields
    except AttributeError:
        _local.fields = {}
        return _local.fields


class _Bound:
    """Returned by ``bind``: usable as a plain call or as a context manager that restores."""

    def __init__(self, previous):
        self._previous = previous

    def __enter__(self):
        return current()

    def __exit__(self, *exc):
        fields = _fields()
        fields.clear()
        fields.update(self._previous)
        return False


def bind(**fields):
    """Attach ``fields`` to every log line of the current green thread (None unbinds one)."""
    store = _fields()
    previous = dict(store)
    for key, value in fields.items():
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value
    return _Bound(previous)


def current():
    """A copy of the fields bound in the current green thread."""
    return dict(_fields())


def clear():
    _fields().clear()


def bind_worker(worker_ctx):
    """Bind ``correlation_id``/``event_id`` from a nameko ``worker_ctx.data``; call it from the
    worker's own green thread (a DependencyProvider's ``worker_setup`` or the entry wrapper)."""
    data = getattr(worker_ctx, "data", None) or {}
    return bind(**{key: data.get(key) for key in CONTEXT_FIELDS})


def _request_correlation_id():
    try:
        from pamong.web.context import current_correlation_id
    except Exception:  # noqa: BLE001 - logging must work without the web kernel
        return None
    return current_correlation_id()


class JsonFormatter(logging.Formatter):
    def __init__(self, service_name):
        super().__init__()
        self.service_name = service_name

    def format(self, record):
        try:
            return self._format(record)
        except Exception as exc:  # noqa: BLE001 - a log call must never raise
            return self._fallback(record, exc)

    def _format(self, record):
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service_name,
            "message": mask_text(record.getMessage()),
        }
        bound = current()
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None) or bound.get(key)
            if value is None and key == "correlation_id":
                value = _request_correlation_id()
            if value is not None:
                line[key] = str(value)
        if record.exc_info and record.exc_info[0] is not None:
            line["exc"] = mask_text("".join(traceback.format_exception(*record.exc_info)))
        elif record.exc_text:
            line["exc"] = mask_text(record.exc_text)
        if record.stack_info:
            line["stack"] = mask_text(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)

    def _fallback(self, record, exc):
        try:
            message = mask_text(str(getattr(record, "msg", "")))
        except Exception:  # noqa: BLE001
            message = "<unprintable log message>"
        return json.dumps({
            "ts": datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": getattr(record, "levelname", "ERROR"),
            "logger": getattr(record, "name", "?"),
            "service": self.service_name,
            "message": message,
            "format_error": f"{type(exc).__name__}: {exc}"[:500],
        }, ensure_ascii=False, default=str)


class _StrayText(io.TextIOBase):
    """Stands in for ``sys.stderr``: what is written to it comes out on the real stderr as
    JSON lines (logger ``stderr``). A message ends at a newline, or, when it is a traceback,
    at the flush that follows it (Python and eventlet flush after printing one)."""

    def __init__(self, raw, formatter):
        super().__init__()
        self.raw = raw
        self.formatter = formatter
        self._pending = ""

    def writable(self):
        return True

    def write(self, text):
        self._pending += text
        if self._pending.endswith("\n") and not self._pending.startswith("Traceback"):
            self.flush()
        return len(text)

    def flush(self):
        text, self._pending = self._pending.strip("\n"), ""
        if text.strip():
            level = logging.ERROR if "Traceback" in text else logging.WARNING
            record = logging.makeLogRecord({"name": "stderr", "levelno": level, "msg": text,
                                            "levelname": logging.getLevelName(level)})
            self.raw.write(self.formatter.format(record) + "\n")
        self.raw.flush()

    def fileno(self):
        return self.raw.fileno()

    def isatty(self):
        return False  # no colours or progress bars: they would end up inside JSON strings

    @property
    def encoding(self):
        return getattr(self.raw, "encoding", "utf-8")


def _log_uncaught(exc_type, exc, tb):
    logging.getLogger("uncaught").critical("uncaught %s: %s", exc_type.__name__, exc,
                                           exc_info=(exc_type, exc, tb))


def _take_over_stderr(formatter):
    """Every later line on stderr is JSON; returns the real stderr for the log handler."""
    raw = sys.stderr.raw if isinstance(sys.stderr, _StrayText) else sys.stderr
    sys.stderr = _StrayText(raw, formatter)
    sys.excepthook = _log_uncaught
    logging.captureWarnings(True)
    return raw


def configure(service_name, level=None, stream=None):
    """Install the JSON formatter on the root logger (replacing a previous ``configure``).

    ``level`` defaults to ``$LOG_LEVEL`` or INFO. ``stream`` defaults to stderr, and then the
    whole process's stderr becomes JSON lines (see the module's docstring). Returns the
    handler.
    """
    level = level or os.environ.get("LOG_LEVEL") or DEFAULTS["LOG_LEVEL"]
    if isinstance(level, str):
        name = level.strip().upper()
        level = logging.getLevelName(name) if name else logging.INFO
        if not isinstance(level, int):
            raise ValueError(f"unknown log level {name!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    formatter = JsonFormatter(service_name)
    handler = logging.StreamHandler(stream or _take_over_stderr(formatter))
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
