"""What the HTTP channels share: a pooled session and the mapping of ``requests``' failures to
result classes (refused before sending: temporary; a timeout or a dropped connection after
the request went out: unknown outcome)."""

import time
import urllib.request

import requests
from requests.adapters import HTTPAdapter

from services.notify import domain


def session(pool_size=50):
    """A pooled session: connections kept alive across messages."""
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    # with no proxy configured, skip requests' per-call look at the environment (it walks
    # the whole environment on every request: a tenth of a send's CPU); behind a proxy,
    # requests keeps honouring HTTPS_PROXY / NO_PROXY itself
    s.trust_env = bool(urllib.request.getproxies())
    return s


def post(http, url, *, json, headers, timeout):
    """``(response | None, Result | None, latency ms)``: the reply, or the result class of a
    call that got none."""
    started = time.monotonic()
    try:
        response = http.post(url, json=json, headers=headers, timeout=timeout)
    except requests.exceptions.ConnectTimeout as exc:
        return None, _failure("refused", exc, started), _ms(started)
    except requests.exceptions.ConnectionError as exc:
        # refused / unreachable before anything was sent, or the connection died after
        if _never_sent(exc):
            return None, _failure("refused", exc, started), _ms(started)
        return None, _failure("lost", exc, started), _ms(started)
    except requests.exceptions.Timeout as exc:
        return None, _failure("timeout", exc, started), _ms(started)
    except requests.exceptions.InvalidURL as exc:
        return None, _failure("config", exc, started), _ms(started)
    except requests.exceptions.RequestException as exc:
        return None, _failure("lost", exc, started), _ms(started)
    return response, None, _ms(started)


def _never_sent(exc):
    text = repr(exc)
    return any(marker in text for marker in (
        "NewConnectionError", "Connection refused", "Failed to establish", "NameResolution",
        "Name or service not known", "No route to host"))


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
