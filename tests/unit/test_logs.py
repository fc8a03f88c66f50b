import io
import json
import logging
from datetime import datetime

import eventlet
import pytest

from pamong import logs
from pamong.web.context import bind_request_context

pytestmark = pytest.mark.unit


@pytest.fixture
def lines():
    """Configure JSON logging into a buffer; yield a function returning the parsed lines."""
    root = logging.getLogger()
    saved_level = root.level
    stream = io.StringIO()
    handler = logs.configure("permits", level="DEBUG", stream=stream)
    logs.clear()

    def read():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    read.handler = handler
    yield read
    root.removeHandler(handler)
    root.setLevel(saved_level)
    logs.clear()


def test_line_has_the_documented_fields(lines):
    logging.getLogger("pamong.test").info("permit %s approved", 12)
    [line] = lines()
    assert set(line) == {"ts", "level", "logger", "service", "message"}
    assert line["level"] == "INFO"
    assert line["logger"] == "pamong.test"
    assert line["service"] == "permits"
    assert line["message"] == "permit 12 approved"
    assert line["ts"].endswith("Z")
    ts = datetime.fromisoformat(line["ts"].replace("Z", "+00:00"))
    assert ts.utcoffset().total_seconds() == 0


def test_message_is_masked(lines):
    logging.getLogger("x").warning("citizen %s phone %s", "3602041211870001", "0812-3456-7890")
    assert lines()[0]["message"] == "citizen 3602********0001 phone +62812****7890"


def test_exception_traceback_is_masked(lines):
    try:
        raise ValueError("bad NIK 3602041211870001")
    except ValueError:
        logging.getLogger("x").exception("failed for 081234567890")
    [line] = lines()
    assert line["level"] == "ERROR"
    assert line["message"] == "failed for +62812****7890"
    assert "Traceback" in line["exc"]
    assert "ValueError: bad NIK 3602********0001" in line["exc"]
    assert "3602041211870001" not in json.dumps(line)


def test_bound_fields_appear_and_unbind(lines):
    log = logging.getLogger("x")
    with logs.bind(correlation_id="c-1", event_id="e-1"):
        assert logs.current() == {"correlation_id": "c-1", "event_id": "e-1"}
        log.info("inside")
    log.info("outside")
    inside, outside = lines()
    assert inside["correlation_id"] == "c-1" and inside["event_id"] == "e-1"
    assert "correlation_id" not in outside and "event_id" not in outside
    assert logs.current() == {}


def test_bind_as_plain_call_and_none_unbinds(lines):
    logs.bind(correlation_id="c-2", event_id="e-2")
    logs.bind(event_id=None)
    assert logs.current() == {"correlation_id": "c-2"}
    logging.getLogger("x").info("m")
    assert lines()[0]["correlation_id"] == "c-2"


def test_extra_wins_over_bound(lines):
    with logs.bind(correlation_id="bound"):
        logging.getLogger("x").info("m", extra={"correlation_id": "explicit"})
    assert lines()[0]["correlation_id"] == "explicit"


def test_request_context_correlation_id_is_used(lines):
    with bind_request_context("from-http"):
        logging.getLogger("x").info("m")
    assert lines()[0]["correlation_id"] == "from-http"


def test_context_is_per_green_thread(lines):
    log = logging.getLogger("x")
    started = eventlet.event.Event()

    def worker(name):
        logs.bind(correlation_id=f"c-{name}", event_id=f"e-{name}")
        eventlet.sleep(0)  # let the other worker run and bind its own values
        log.info("from %s", name)
        return logs.current()

    a = eventlet.spawn(worker, "a")
    b = eventlet.spawn(worker, "b")
    started.send()
    assert a.wait() == {"correlation_id": "c-a", "event_id": "e-a"}
    assert b.wait() == {"correlation_id": "c-b", "event_id": "e-b"}
    assert logs.current() == {}  # the test's own green thread saw none of it
    by_message = {line["message"]: line for line in lines()}
    assert by_message["from a"]["correlation_id"] == "c-a"
    assert by_message["from b"]["event_id"] == "e-b"


def test_bind_worker_reads_worker_ctx_data(lines):
    class WorkerCtx:
        data = {"correlation_id": "c-w", "event_id": "e-w", "actor": {"sub": "1"}}

    with logs.bind_worker(WorkerCtx()):
        assert logs.current() == {"correlation_id": "c-w", "event_id": "e-w"}
    assert logs.current() == {}


def record(msg, *args):
    return logging.LogRecord("pamong.x", logging.INFO, __file__, 1, msg, args, None)


def test_formatting_errors_never_raise():
    # pytest's own capture handler re-raises formatting errors, so call the formatter directly
    line = json.loads(logs.JsonFormatter("svc").format(record("%d items for %s", "nope")))
    assert line["level"] == "INFO"
    assert line["service"] == "svc"
    assert "format_error" in line
    assert line["message"] == "%d items for %s"


def test_unprintable_arguments_never_raise():
    class Weird:
        def __str__(self):
            raise RuntimeError("cannot print me")

    line = json.loads(logs.JsonFormatter("svc").format(record("obj %s", Weird())))
    assert "RuntimeError" in line["format_error"]


def test_fallback_message_is_masked_too():
    text = logs.JsonFormatter("svc").format(record("NIK 3602041211870001 %d", "x"))
    assert "3602041211870001" not in text and "3602********0001" in text


def test_level_from_environment(monkeypatch):
    root = logging.getLogger()
    saved = root.level
    monkeypatch.setenv("LOG_LEVEL", "warning")
    handler = logs.configure("svc", stream=io.StringIO())
    try:
        assert root.level == logging.WARNING
        handler2 = logs.configure("svc", level="DEBUG", stream=io.StringIO())
        assert root.level == logging.DEBUG
        assert handler not in root.handlers and handler2 in root.handlers  # replaced, not added
        root.removeHandler(handler2)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def test_unknown_level_is_an_error():
    with pytest.raises(ValueError, match="unknown log level"):
        logs.configure("svc", level="LOUD", stream=io.StringIO())


STRAY_OUTPUT = """
import warnings
warnings.filterwarnings("ignore", message=r"\\s*Eventlet is deprecated")  # as pamong.cli does
import eventlet
eventlet.monkey_patch()
import sys
from pamong import logs

logs.configure("strays")
warnings.warn("a library warning")
print("a library's own line", file=sys.stderr)
eventlet.spawn(lambda: 1 / 0)  # nobody waits for it: eventlet reports it on stderr
eventlet.sleep(0.1)
raise RuntimeError("at start-up")
"""


def test_everything_the_process_writes_to_stderr_is_json():
    """Warnings, a library's print, eventlet's report of a failed green thread and an
    uncaught exception: each one JSON line (one parser reads them all)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", STRAY_OUTPUT], capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    by_logger = {line["logger"]: line for line in lines}
    assert len(lines) == 4, result.stderr
    assert "a library warning" in by_logger["py.warnings"]["message"]
    assert by_logger["uncaught"]["level"] == "CRITICAL"
    assert "RuntimeError: at start-up" in by_logger["uncaught"]["exc"]
    strays = [line for line in lines if line["logger"] == "stderr"]
    assert [s["message"] for s in strays][0] == "a library's own line"
    assert "ZeroDivisionError" in strays[1]["message"] and strays[1]["level"] == "ERROR"
    assert {line["service"] for line in lines} == {"strays"}
