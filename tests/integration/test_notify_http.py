"""The HTTP channels' client (``services/notify/channels/http.py``) against real local
sockets: each way a call can fail gets its result class (refused before sending and a
connect timeout: temporary; a read timeout or a connection dropped after the request went
out: unknown; an invalid URL or header: technical), a reply (by length, in chunks, up to the
close) is read whole and keeps its connection alive unless it ends it, and a proxy from the
environment is used unless ``NO_PROXY`` names the host."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import eventlet
import eventlet.event
import pytest

from pamong.testing import wait_until
from services.notify import domain
from services.notify.channels.http import json_of, post, session

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REPLY = b'{"messages": [{"id": "wamid.1"}]}'
# the reply of each server mode: by length (kept alive), in chunks (kept alive), up to the
# close (no length), saying it closes
REPLIES = {
    "ok": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
          % (len(REPLY), REPLY),
    "chunked": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
               b"\r\n%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n"
               % (10, REPLY[:10], len(REPLY) - 10, REPLY[10:]),
    "until_close": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n%s" % REPLY,
    "says_close": b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: %d"
                  b"\r\n\r\n%s" % (len(REPLY), REPLY),
    "extra_bytes": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s\r\n" % (len(REPLY), REPLY),
    "garbled": b"HTTP/1.1 2\r\nContent-Length: 0\r\n\r\n",
}


class RawServer:
    """A TCP server that reads each request and then, by ``mode``: answers 200 with
    ``REPLY`` on a kept-alive connection (``ok``), answers and then closes it as an idle
    keep-alive runs out (``close_after``), closes the connection (``drop``) or holds it
    without an answer (``hold``). ``requests``: the request heads received;
    ``connections``: how many were accepted."""

    def __init__(self, mode):
        self.mode = mode
        self.requests = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v21.0/1/messages"
        self.released = eventlet.event.Event()  # a held connection is kept until close()
        self.thread = eventlet.spawn(self._accept)

    def _accept(self):
        while True:
            connection, _ = self.sock.accept()
            self.connections += 1
            eventlet.spawn(self._serve, connection)

    def _serve(self, connection):
        buffered = b""
        with connection:
            if self.mode == "speaks_first":  # not TLS: whatever the client says
                connection.sendall(REPLIES["ok"])
                return
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                head, buffered = buffered.split(b"\r\n\r\n", 1)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(buffered) < length:
                    buffered += connection.recv(65536)
                body, buffered = buffered[:length], buffered[length:]
                self.requests.append((head.decode(), body))
                if self.mode == "drop":
                    return
                if self.mode == "hold":
                    self.released.wait()
                    return
                connection.sendall(REPLIES.get(self.mode, REPLIES["ok"]))
                if self.mode in ("close_after", "until_close", "says_close"):
                    return

    def close(self):
        self.released.send()
        self.thread.kill()
        self.sock.close()


@pytest.fixture
def server():
    servers = []

    def start(mode):
        servers.append(RawServer(mode))
        return servers[-1]

    yield start
    for started in servers:
        started.close()


SMALL = {"NOTIFY_SEND_CONCURRENCY": 4}  # a pool of 14 connections


def call(url, timeout=0.5, http=None):
    return post(http or session(SMALL), url, json={"to": "6281234567890", "text": "Halo"},
                headers={"Authorization": "Bearer t"}, timeout=timeout)


def test_a_reply_is_read_and_the_connection_kept_alive(server):
    ok = server("ok")
    http = session(SMALL)
    for _ in range(3):
        reply, failed, latency = call(ok.url, http=http)
        assert failed is None and latency >= 0
        assert reply.status_code == 200 and json_of(reply) == json.loads(REPLY)
    assert ok.connections == 1  # one connection for the three calls
    head, body = ok.requests[0]
    assert json.loads(body) == {"to": "6281234567890", "text": "Halo"}
    lines = head.lower().split("\r\n")
    assert "content-type: application/json" in lines and "authorization: bearer t" in lines


@pytest.mark.parametrize(("mode", "kept"), [("chunked", True), ("until_close", False),
                                            ("says_close", False), ("extra_bytes", False)])
def test_a_reply_in_chunks_up_to_the_close_or_saying_close_is_read_whole(server, mode, kept):
    """A chunked reply (after an informational 100) keeps its connection; one delimited by
    the close, one whose ``Connection`` names ``close``, and one followed by bytes past its
    length (which the next reply would start with) are read whole and their connection let
    go."""
    replying = server(mode)
    http = session(SMALL)
    for n in (1, 2):
        reply, failed, _ = call(replying.url, http=http)
        assert failed is None and reply.status_code == 200
        assert json_of(reply) == json.loads(REPLY)
        assert replying.connections == (1 if kept else n)
        assert len(http.origin(replying.url).idle) == (1 if kept else 0)


def test_a_garbled_reply_is_an_unknown_outcome(server):
    garbled = server("garbled")
    reply, failed, _ = call(garbled.url)
    assert reply is None and failed.kind == domain.UNKNOWN
    assert failed.error == "lost: ProtocolError" and len(garbled.requests) == 1


TLS_CALL = """
import eventlet
eventlet.monkey_patch()  # first, as `pamong serve` does (ssl patched before use)
import json, sys
from services.notify.channels.http import post, session
reply, failed, _ = post(session({"NOTIFY_SEND_CONCURRENCY": 4}), sys.argv[1], json={"to": "1"},
                        headers={}, timeout=2)
print(json.dumps([reply is None, failed and failed.kind, failed and failed.error]))
"""


def test_a_failed_tls_handshake_is_temporary_and_nothing_is_sent(server):
    """An https URL whose server does not speak TLS: the handshake fails before the request
    could go out. (In a process of its own: this one imported ``ssl`` before eventlet
    patched it, and eventlet's TLS then recurses.)"""
    plain = server("speaks_first")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", TLS_CALL, plain.url.replace("http://", "https://")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    wait_until(lambda: process.poll() is not None, timeout=30, interval=0.05,
               message="the TLS call ended")
    out, err = process.communicate()
    assert process.returncode == 0, err.decode()
    assert json.loads(out) == [True, domain.TEMPORARY, "refused: NewConnectionError"]
    assert plain.connections == 1 and plain.requests == []


def test_a_header_with_a_line_break_is_a_technical_failure_and_nothing_is_sent(server):
    ok = server("ok")
    reply, failed, _ = post(session(SMALL), ok.url, json={"to": "1"},
                            headers={"Authorization": "Bearer t\r\nX-Injected: 1"},
                            timeout=0.5)
    assert reply is None and failed.kind == domain.TECHNICAL
    assert failed.error.startswith("config:") and ok.requests == []


def test_concurrent_calls_on_one_pool_each_get_their_own_reply_and_connection(server):
    """Twenty green threads at once (a send per delivering worker): each request goes out
    once, each gets a reply, and a second round reuses the connections the first kept."""
    ok = server("ok")
    http = session(SMALL)  # 14 idle connections kept at most

    def round_of(n):
        pool = eventlet.GreenPool(n)
        return list(pool.imap(lambda _: call(ok.url, http=http), range(n)))

    first = round_of(20)
    assert all(failed is None and reply.status_code == 200 for reply, failed, _ in first)
    assert len(ok.requests) == 20 and ok.connections <= 20
    kept = len(http.origin(ok.url).idle)
    assert 1 <= kept <= 14
    opened = ok.connections
    second = round_of(kept)
    assert all(failed is None for _, failed, _ in second)
    assert ok.connections == opened and len(ok.requests) == 20 + kept


def test_a_kept_connection_the_server_closed_is_not_reused(server):
    """The pool's check before reusing a connection (a real ``poll``, not eventlet's
    select) sees the server's close: the next call opens a new connection and is answered,
    instead of going out on a dead socket and ending as an unknown outcome. The check gives
    no other green thread a turn (eventlet's select would)."""
    closing = server("close_after")
    http = session(SMALL)
    for n in (1, 2, 3):
        reply, failed, _ = call(closing.url, http=http)
        assert failed is None and reply.status_code == 200
        assert closing.connections == n
        kept = list(http.origin(closing.url).idle)
        assert len(kept) == 1
        others_ran = []
        eventlet.spawn_n(others_ran.append, True)
        kept[0].is_connected  # noqa: B018 - the check itself, asked while nothing else may run
        assert not others_ran
        wait_until(lambda kept=kept: not kept[0].is_connected,
                   timeout=5, message="the server's close seen by the pooled connection")
    assert len(closing.requests) == 3


def test_a_refused_connection_is_temporary():
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nobody listens there
    reply, failed, _ = call(f"http://127.0.0.1:{port}/messages")
    assert reply is None and failed.kind == domain.TEMPORARY
    assert failed.error.startswith("refused:")


def test_a_connect_timeout_is_temporary():
    """A server whose accept queue is full: the handshake never completes, so nothing was
    sent."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    try:
        reply, failed, latency = call(f"http://127.0.0.1:{port}/messages", timeout=0.3)
    finally:
        for sock in [*fillers, full]:
            sock.close()
    assert reply is None and failed.kind == domain.TEMPORARY
    assert failed.error == "refused: ConnectTimeoutError" and latency >= 250


def test_a_read_timeout_after_sending_is_an_unknown_outcome(server):
    held = server("hold")
    reply, failed, latency = call(held.url, timeout=0.3)
    assert reply is None and failed.kind == domain.UNKNOWN
    assert failed.error.startswith("timeout:") and latency >= 250
    assert len(held.requests) == 1  # it did go out


def test_a_connection_dropped_after_sending_is_an_unknown_outcome(server):
    dropped = server("drop")
    reply, failed, _ = call(dropped.url)
    assert reply is None and failed.kind == domain.UNKNOWN
    assert failed.error.startswith("lost:")
    assert len(dropped.requests) == 1


@pytest.mark.parametrize("url", ["http:///messages", "ftp://gateway.example/messages",
                                 "gateway.example/messages", "http://127.0.0.1:99999/x"])
def test_an_invalid_url_is_a_technical_failure(url):
    reply, failed, _ = call(url)
    assert reply is None and failed.kind == domain.TECHNICAL
    assert failed.error.startswith("config:")


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(server,
                                                                              monkeypatch):
    provider, proxy = server("ok"), server("ok")
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    reply, failed, _ = call(provider.url)
    assert failed is None and reply.status_code == 200
    [(head, _)] = proxy.requests  # through the proxy, with the absolute URL
    assert head.startswith(f"POST {provider.url} HTTP/1.1")
    assert provider.requests == []

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    reply, failed, _ = call(provider.url)
    assert failed is None and reply.status_code == 200
    assert len(provider.requests) == 1 and len(proxy.requests) == 1
