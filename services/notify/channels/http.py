"""What the HTTP channels share: a pool of kept-alive connections (urllib3 directly: requests
cost about a quarter of notify's CPU per message) and the mapping of failures to result
classes. Refused before sending (also a connect timeout): temporary. A read timeout or a
dropped connection after the request went out: unknown outcome. An invalid URL: our
configuration (technical).

Proxies: ``HTTP_PROXY`` / ``HTTPS_PROXY`` (``urllib.request.getproxies()``), read when the
channel is built, send through a ``urllib3.ProxyManager`` (https through a CONNECT tunnel);
``NO_PROXY`` is honoured per host (``urllib.request.proxy_bypass``), and a user and password
in the proxy's URL are sent to it (basic auth). Not covered (``requests`` was):
``ALL_PROXY`` and SOCKS proxies.
"""

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
    ProxyError,
    ReadTimeoutError,
)

from services.notify import domain
from services.notify.settings import DEFAULT_SEND_CONCURRENCY

SCHEMES = ("http", "https")
HEADERS = {"Content-Type": "application/json", "Accept": "application/json",
           "User-Agent": "pamong-notify"}


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


POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


class Reply(NamedTuple):
    """A provider's answer: its status and body (read whole: the connection goes back to
    the pool at once)."""

    status_code: int
    body: bytes

    def json(self):
        return loads(self.body)


class Pool:
    """Connections kept alive across messages, per host, up to ``pool_size`` each; no
    retries and no redirects (a retry is the delivery run's decision, with its classes)."""

    def __init__(self, pool_size=50):
        self.pool_size = pool_size
        self.origins = {}  # url -> (its origin's pool, the request target): see origin
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
        timeout = urllib3.Timeout(connect=timeout, read=timeout)
        proxy = self.proxy_for(url)
        if proxy is not None:  # the proxy's manager shapes the request itself
            response = proxy.request("POST", url, body=body, headers=headers,
                                     retries=False, redirect=False, timeout=timeout)
        else:
            pool, target = self.origin(url)
            response = pool.urlopen("POST", target, body=body, headers=headers,
                                    retries=False, redirect=False, timeout=timeout,
                                    assert_same_host=False)
        return Reply(response.status, response.data)

    def origin(self, url):
        """The pool of ``url``'s origin and its request target, looked up once per URL (a
        provider's URL comes from the settings). urllib3's ``PoolManager`` looked it up on
        every request, a tenth of a send's CPU, and evicted pools past ``num_pools``
        origins; these are kept (a deployment names a handful)."""
        found = self.origins.get(url)
        if found is None:
            parsed = urllib3.util.parse_url(url)
            pool = POOL_CLASSES[parsed.scheme](parsed.host, parsed.port,
                                                maxsize=self.pool_size, retries=False)
            found = self.origins[url] = (pool, parsed.request_uri)
        return found

    def close(self):
        for pool, _ in self.origins.values():
            pool.close()
        self.origins.clear()
        for manager in self.proxied.values():
            manager.clear()


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
