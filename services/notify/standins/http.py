"""The threaded HTTP server the WhatsApp and SMS stand-ins share.

A stand-in subclasses ``StandinHttpServer`` and implements ``handle(request)`` returning
``(status, body)`` (a dict is sent as JSON) or ``HOLD`` (keep the client waiting, then drop
the connection without an answer: what a provider timeout looks like from our side).
Every stand-in also answers ``GET /_standin/messages`` (what it received, newest last) and
``POST /_standin/config`` (``{"webhook_url": ...}``/``{"report_url": ...}``: where its
callbacks go), so a developer under ``make run`` can look and ``seed`` can point it at
notify once notify's port is known.
"""

import json
import logging
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("pamong.standins")

HOLD = object()


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the listen backlog: many senders at once are not refused


class StandinHttpServer:
    """Start with ``start()`` (127.0.0.1 and a free port unless given), stop with ``stop()``."""

    name = "standin"

    def __init__(self, host="127.0.0.1", port=0):
        self.host, self.port = host, port
        self._server = None
        self._thread = None
        self._released = threading.Event()  # set on stop: held requests give up
        self.hold_seconds = 5.0
        self._lock = threading.Lock()

    # -- life cycle ---------------------------------------------------------------------
    def start(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: with Nagle's algorithm the body waits
            # for the client's delayed ACK (40 ms a response on a kept-alive connection)
            disable_nagle_algorithm = True

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                request = Request(self.command, path, query,
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                try:
                    result = standin._dispatch(request)
                except Exception:  # a bug of the stand-in: answer 500, keep serving
                    log.exception("%s stand-in failed on %s %s", standin.name, request.method,
                                  request.path)
                    result = (500, {"error": "stand-in failure"})
                if result is HOLD:
                    standin._released.wait(standin.hold_seconds)
                    self.close_connection = True
                    return
                status, payload = result
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                ctype = "text/plain" if isinstance(payload, bytes) else "application/json"
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, fmt, *args):
                log.debug("%s stand-in: " + fmt, standin.name, *args)

        self._released.clear()
        self._server = _Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=f"{self.name}-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    # -- requests -----------------------------------------------------------------------
    def _dispatch(self, request):
        if request.path == "/_standin/messages" and request.method == "GET":
            return 200, self.messages_view()
        if request.path == "/_standin/config" and request.method == "POST":
            return 200, self.configure(request.json() or {})
        return self.handle(request)

    def handle(self, request):  # pragma: no cover - every stand-in overrides it
        return 404, {"error": "not found"}

    def messages_view(self):
        return []

    def configure(self, settings):
        return {}


def bearer(request):
    """The bearer token of ``request`` or None."""
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def next_outcome(queue, lock):
    """Pop the next planned outcome (``"ok"`` when none is planned)."""
    with lock:
        return queue.pop(0) if queue else "ok"
