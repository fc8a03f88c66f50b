"""What the HTTP channels share: kept-alive connections per provider URL and the mapping of
failures to result classes. Refused before sending (also a connect timeout or a failed TLS
handshake): temporary. A read timeout, a dropped connection or a garbled reply after the
request went out: unknown outcome. An invalid URL or header: our configuration (technical).

urllib3 opens each connection (its TLS settings and certificate checks, its connect errors);
the request and its reply are written and read here (``_Origin``). Through urllib3 and
``http.client`` a send cost a fifth of notify's CPU per message in the bench, most of it
``http.client`` parsing the reply's headers with the ``email`` package and building response
objects; ``requests`` on top had cost a quarter more. A reply is read whole (a length, chunks,
or up to the close; no compression is asked for); its connection is kept unless a side says
``close``, the reply ran to the close, or bytes came past it.

Proxies: ``HTTP_PROXY`` / ``HTTPS_PROXY`` (``urllib.request.getproxies()``), read when the
channel is built, send through a ``urllib3.ProxyManager`` (https through a CONNECT tunnel);
``NO_PROXY`` is honoured per host (``urllib.request.proxy_bypass``), and a user and password
in the proxy's URL are sent to it (basic auth). Not covered (``requests`` was):
``ALL_PROXY`` and SOCKS proxies.
"""

import re
import time
import urllib.request
from json import dumps, loads
from typing import NamedTuple

import urllib3
from eventlet import patcher
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
)

from services.notify import domain
from services.notify.settings import DEFAULT_SEND_CONCURRENCY

SCHEMES = ("http", "https")
HEADERS = {"Content-Type": "application/json", "Accept": "application/json",
           "Accept-Encoding": "identity", "User-Agent": "pamong-notify"}


_select = patcher.original("select")  # the kernel's poll, not eventlet's green select


class _KeptAlive:
    """A pooled connection asks whether it is still open with a zero-timeout ``poll`` of its
    socket. urllib3 asks before every reuse, and under eventlet its own check (the green
    ``select``: eventlet removes ``poll``) parks the worker for a turn of the hub: 4 % of
    notify's CPU per message in the bench's profile. Same answer: readable (data or the
    peer's close) means dropped."""

    @property
    def is_connected(self):
        if self.sock is None:
            return False
        poller = _select.poll()
        poller.register(self.sock, _select.POLLIN)
        return not poller.poll(0)


class _HTTPConnection(_KeptAlive, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_KeptAlive, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}  # through a proxy (urllib3's)
CONNECTION_CLASSES = {"http": _HTTPConnection, "https": _HTTPSConnection}
MAX_LINE = 65536  # a status or header line, a chunk's size line
MAX_HEADERS = 100
UNSAFE = re.compile(r"[\r\n\x00]")  # what would end a header line early (an injection)
DIGITS = re.compile(r"[0-9]+")
HEX = re.compile(rb"[0-9A-Fa-f]+")


class Reply(NamedTuple):
    """A provider's answer: its status and body (read whole: the connection goes back to
    the pool at once)."""

    status_code: int
    body: bytes

    def json(self):
        return loads(self.body)


class Pool:
    """Connections kept alive across messages, per provider URL, up to ``pool_size`` idle each; no
    retries and no redirects (a retry is the delivery run's decision, with its classes)."""

    def __init__(self, pool_size=50):
        self.pool_size = pool_size
        self.origins = {}  # url -> its _Origin: see origin
        options = {"num_pools": 4, "maxsize": pool_size, "retries": False}
        self.proxied = {scheme: _proxy_manager(url, options)
                        for scheme, url in urllib.request.getproxies().items()
                        if scheme in SCHEMES}
        for manager in self.proxied.values():
            manager.pool_classes_by_scheme = POOL_CLASSES
        self.bypassed = {}  # host -> whether NO_PROXY names it

    def proxy_for(self, url):
        """The proxy's manager ``url`` goes through, or None (direct)."""
        if not self.proxied:  # the usual case: no look at the URL
            return None
        parsed = urllib3.util.parse_url(url)
        proxied = self.proxied.get(parsed.scheme)
        if proxied is None:
            return None
        host = parsed.host or ""
        if host not in self.bypassed:  # once per host: the look walks the environment
            self.bypassed[host] = bool(urllib.request.proxy_bypass(host))
        return None if self.bypassed[host] else proxied

    def post(self, url, body, headers, timeout):
        if not url.lower().startswith(("http://", "https://")):  # urllib3 would guess http
            raise LocationValueError(f"not an http(s) URL: {url!r}")
        proxy = self.proxy_for(url)
        if proxy is not None:  # the proxy's manager shapes the request itself
            response = proxy.request("POST", url, body=body, headers=headers, retries=False,
                                     redirect=False,
                                     timeout=urllib3.Timeout(connect=timeout, read=timeout))
            return Reply(response.status, response.data)
        return self.origin(url).post(url, body, headers, timeout)

    def origin(self, url):
        """The connections of ``url``'s origin, looked up once per URL (a provider's URL
        comes from the settings; a deployment names a handful)."""
        found = self.origins.get(url)
        if found is None:
            found = self.origins[url] = _Origin(url, self.pool_size)
        return found

    def close(self):
        for origin in self.origins.values():
            origin.close()
        self.origins.clear()
        for manager in self.proxied.values():
            manager.clear()


class _Origin:
    """The kept-alive connections to one provider URL's origin (the most recently used reused
    first) and the request head of that URL, built once."""

    def __init__(self, url, pool_size):
        parsed = urllib3.util.parse_url(url)
        if parsed.scheme not in CONNECTION_CLASSES or not parsed.host:
            raise LocationValueError(f"not an http(s) URL with a host: {url!r}")
        self.connection_class = CONNECTION_CLASSES[parsed.scheme]
        self.host, self.port = parsed.host, parsed.port
        self.request_line = f"POST {parsed.request_uri} HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
        self.pool_size = pool_size
        self.idle = []

    def post(self, url, body, headers, timeout):
        head = self._head(headers, len(body))
        connection = self._take(timeout)
        try:
            connection.sock.settimeout(timeout)
            connection.sock.sendall(head + body)
            reader = _Reader(connection.sock)
            status, data, keep = _read_reply(reader)
        except TimeoutError as exc:  # sent, no answer in time: the outcome is unknown
            connection.close()
            raise ReadTimeoutError(None, url, f"read timed out ({timeout} s)") from exc
        except (OSError, ValueError) as exc:  # dropped or garbled after the request went out
            connection.close()
            raise ProtocolError(f"connection lost: {exc!r}") from exc
        except BaseException:  # the worker killed mid-call: the connection is in no state
            connection.close()
            raise
        if keep and reader.drained() and len(self.idle) < self.pool_size:
            self.idle.append(connection)
        else:  # (bytes past the reply would be read as the next one's)
            connection.close()
        return Reply(status, data)

    def _head(self, headers, length):
        lines = [self.request_line]
        for name, value in headers.items():
            if UNSAFE.search(name) or UNSAFE.search(str(value)):
                raise LocationValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {length}\r\n\r\n")
        try:
            return "".join(lines).encode("latin-1")
        except UnicodeEncodeError as exc:
            raise LocationValueError(f"a header is not latin-1: {exc.reason}") from None

    def _take(self, timeout):
        """A kept-alive connection the server has not closed, or a new one. Nothing is sent
        before it is open: urllib3's errors while connecting (refused, unresolved, timed
        out) are raised as they are, a TLS handshake's as a ``NewConnectionError``."""
        while self.idle:
            connection = self.idle.pop()
            if connection.is_connected:
                return connection
            connection.close()
        connection = self.connection_class(self.host, self.port, timeout=timeout)
        try:
            connection.connect()
        except HTTPError:
            connection.close()
            raise
        except (OSError, ValueError) as exc:  # the TLS handshake (urllib3 passes it on)
            connection.close()
            raise NewConnectionError(connection, f"TLS handshake failed: {exc!r}") from exc
        return connection

    def close(self):
        for connection in self.idle:
            connection.close()
        self.idle.clear()


class _Reader:
    """Lines and lengths of a reply, from what the socket received (kept in ``buffer``: what
    is left after the reply tells that the connection cannot be reused)."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray()

    def _receive(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the reply ended")
        self.buffer += chunk

    def line(self):
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > MAX_LINE:
                raise ValueError("reply line too long")
            self._receive()
        if end > MAX_LINE:
            raise ValueError("reply line too long")
        line = bytes(self.buffer[:end + 1])
        del self.buffer[:end + 1]
        return line

    def exactly(self, length):
        while len(self.buffer) < length:
            self._receive()
        data = bytes(self.buffer[:length])
        del self.buffer[:length]
        return data

    def rest(self):
        """Everything up to the close."""
        while chunk := self.sock.recv(65536):
            self.buffer += chunk
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def drained(self):
        """Nothing received past the reply (nor decrypted and waiting, over TLS)."""
        pending = getattr(self.sock, "pending", None)
        return not self.buffer and not (pending and pending())


def _read_reply(reader):
    """``(status, body, keep alive)`` of the next reply (informational 1xx replies skipped).
    Raises ValueError on a malformed reply, ConnectionError when the connection ends before
    the reply does."""
    while True:
        version, status = _status_line(reader.line())
        fields = _fields(reader)
        if not 100 <= status < 200:
            break
    tokens = {token.strip().lower() for token in fields.get("connection", "").split(",")}
    keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
    if status in (204, 304):
        return status, b"", keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        return status, _chunked(reader), keep
    if "content-length" in fields:
        lengths = {value.strip() for value in fields["content-length"].split(",")}
        if len(lengths) != 1 or not DIGITS.fullmatch(next(iter(lengths))):
            raise ValueError(f"bad Content-Length {fields['content-length']!r}")
        return status, reader.exactly(int(lengths.pop())), keep
    return status, reader.rest(), False  # delimited by the close


def _status_line(line):
    version, _, rest = line.decode("latin-1").partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/") or not DIGITS.fullmatch(code) \
            or rest[3:4] not in ("", " ", "\r", "\n") or not 100 <= int(code) <= 599:
        raise ValueError(f"not an HTTP status line: {line[:40]!r}")
    return version, int(code)


def _fields(reader):
    """The header fields up to the blank line, names lowercased; a repeated one joined with
    commas."""
    fields = {}
    for _ in range(MAX_HEADERS):
        line = reader.line()
        if line in (b"\r\n", b"\n"):
            return fields
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    raise ValueError(f"more than {MAX_HEADERS} header lines")


def _chunked(reader):
    parts = []
    while True:
        size = reader.line().split(b";", 1)[0].strip()
        if not HEX.fullmatch(size):
            raise ValueError(f"bad chunk size {size[:20]!r}")
        if int(size, 16) == 0:
            _fields(reader)  # the trailer, up to its blank line
            return b"".join(parts)
        parts.append(reader.exactly(int(size, 16)))
        if reader.line() not in (b"\r\n", b"\n"):
            raise ValueError("a chunk longer than its size")


def _proxy_manager(url, options):
    auth = urllib3.util.parse_url(url).auth
    headers = urllib3.make_headers(proxy_basic_auth=auth) if auth else None
    return urllib3.ProxyManager(url, proxy_headers=headers, **options)


def session(config):
    """The channel's connection pool: one connection per delivering worker and a few more."""
    return Pool(int(config.get("NOTIFY_SEND_CONCURRENCY", DEFAULT_SEND_CONCURRENCY)) + 10)


def post(http, url, *, json, headers, timeout):
    """``(reply | None, Result | None, latency ms)``: the reply (``status_code``, ``json()``),
    or the result class of a call that got none. ``json`` is encoded once here."""
    started = time.monotonic()
    body = dumps(json).encode()
    try:
        response = http.post(url, body, {**HEADERS, **headers}, timeout)
    except ReadTimeoutError as exc:  # the request went out; its answer did not come
        return None, _failure("timeout", exc, started), _ms(started)
    except LocationValueError as exc:  # no host, a bad port, an unknown scheme
        return None, _failure("config", exc, started), _ms(started)
    except HTTPError as exc:
        # refused, unresolved or unreachable before anything was sent (a connect timeout
        # too, urllib3's NewConnectionError is one), or the connection died after
        kind = "refused" if _never_sent(exc) else "lost"
        return None, _failure(kind, exc, started), _ms(started)
    return response, None, _ms(started)


def _never_sent(exc):
    if isinstance(exc, ProxyError):  # the proxy itself could not be reached
        exc = exc.original_error
    return isinstance(exc, ConnectTimeoutError)


def _ms(started):
    return round((time.monotonic() - started) * 1000, 1)


def _failure(kind, exc, started):
    return domain.Result(domain.classify(failure=kind), error=f"{kind}: {type(exc).__name__}",
                         latency_ms=_ms(started))


def json_of(response):
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
