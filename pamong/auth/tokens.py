"""Bearer JWT verification and development tokens.

Which algorithm is accepted follows from configuration, never from the token alone:
HS256 only when ``JWT_SECRET`` is set (local, tests), RS256 only when ``JWT_JWKS_URL`` is set
(production: Keycloak or any OIDC provider). The secret is used only for HS256 and JWKS keys
only for RS256, so ``alg: none`` and HS256-signed-with-the-public-key tokens are refused.

Exactly one of the two: a service configured with both refuses to start (a development
secret left in production would let anyone holding it mint tokens), and a JWKS provider needs
``JWT_AUDIENCE`` (one identity provider signs tokens for many clients; only those issued for
us are accepted).

Config: JWT_SECRET, JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE (checked when set),
JWT_LEEWAY_SECONDS (clock skew, default 30), JWT_JWKS_TIMEOUT_SECONDS (default 5),
JWT_JWKS_CACHE_SECONDS (default 300), JWT_JWKS_REFRESH_COOLDOWN_SECONDS (minimum time between
refetches triggered by an unknown ``kid``, default 30: a flood of random kids must not become
a flood of requests to the identity provider), JWT_VERIFIED_CACHE_SECONDS (how long a verified
token is taken as verified, default 60; 0: verify every request).
"""

import logging
import time

import jwt
from jwt import PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWKSetError

from pamong.auth.principal import Principal
from pamong.config import DEFAULTS, ConfigError
from pamong.web.problem import not_found, service_unavailable, unauthorized

_log = logging.getLogger(__name__)

_jwks_clients = {}
VERIFIED_CACHE_SIZE = 4096
_verified = {}  # (token, the settings that judged it) -> (its claims, kept until: monotonic)


def check_auth_config(config):
    """Raise ``ConfigError`` for a configuration that must not serve requests."""
    if config.get("JWT_JWKS_URL"):
        if config.get("JWT_SECRET"):
            raise ConfigError("JWT_SECRET (development tokens) and JWT_JWKS_URL are both set: "
                              "unset JWT_SECRET in production")
        if not config.get("JWT_AUDIENCE"):
            raise ConfigError("JWT_JWKS_URL is set without JWT_AUDIENCE: set it to this "
                              "suite's client id at the identity provider")


def _jwks_client(config):
    url = config["JWT_JWKS_URL"]
    settings = (url, float(config.get("JWT_JWKS_TIMEOUT_SECONDS", 5)),
                float(config.get("JWT_JWKS_CACHE_SECONDS", 300)),
                float(config.get("JWT_JWKS_REFRESH_COOLDOWN_SECONDS", 30)))
    # one client (one key cache) per process and setting
    if settings not in _jwks_clients:
        _, timeout, lifespan, cooldown = settings
        _jwks_clients[settings] = PyJWKClient(url, timeout=timeout, lifespan=lifespan,
                                              cooldown_duration=cooldown)
    return _jwks_clients[settings]


def _header(headers, name):
    value = headers.get(name)
    if value is None and isinstance(headers, dict):  # a plain dict is case-sensitive
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def bearer_token(headers):
    value = _header(headers, "Authorization")
    if not value:
        raise unauthorized("A bearer token is required.", error=None)
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("The Authorization header must be 'Bearer <token>'.",
                           error="invalid_request")
    return token.strip()


def _signing_key(token, alg, config):
    if alg == "HS256" and config.get("JWT_SECRET"):
        return config["JWT_SECRET"]
    if alg == "RS256" and config.get("JWT_JWKS_URL"):
        try:
            return _jwks_client(config).get_signing_key_from_jwt(token)
        except (PyJWKClientConnectionError, PyJWKSetError) as exc:
            # our identity provider is down or misconfigured: not the client's fault
            _log.error("cannot fetch JWKS from %s: %s", config["JWT_JWKS_URL"], exc)
            raise service_unavailable("The identity provider cannot be reached.") from exc
        except PyJWKClientError as exc:
            raise unauthorized("The token was signed with an unknown key.") from exc
    raise unauthorized("The token's signing algorithm is not accepted.")


def verify_token(token, config):
    """The verified claims of ``token``, or a 401 ``Problem``. ``config`` has passed
    ``check_auth_config`` (a route checks it when its service starts).

    A client sends the same token with every request for as long as it lives, and verifying
    it (two JSON documents, base64, the signature) took 0.1 ms alone and up to 0.3 ms inside
    a busy service, of the 2-3 ms of CPU a letter's signing costs there. So a token verified
    in the last ``JWT_VERIFIED_CACHE_SECONDS`` under the same settings is not verified
    again, unless it has expired since; only successes are kept,
    at most ``VERIFIED_CACHE_SIZE`` of them, by the token's full text (signature included)."""
    leeway = float(config.get("JWT_LEEWAY_SECONDS", 30))
    key = (token, config.get("JWT_SECRET"), config.get("JWT_JWKS_URL"),
           config.get("JWT_ISSUER"), config.get("JWT_AUDIENCE"), leeway)
    cached = _verified.get(key)
    if cached is not None:
        claims, until = cached
        if time.monotonic() < until and claims["exp"] > time.time() - leeway:
            return dict(claims)
        del _verified[key]
    claims = _verify(token, config, leeway)
    lifetime = float(config.get("JWT_VERIFIED_CACHE_SECONDS",
                                DEFAULTS["JWT_VERIFIED_CACHE_SECONDS"]))
    if lifetime > 0:
        if len(_verified) >= VERIFIED_CACHE_SIZE:
            del _verified[next(iter(_verified))]  # the oldest
        _verified[key] = (dict(claims), time.monotonic() + lifetime)
    return claims


def _verify(token, config, leeway):
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.InvalidTokenError as exc:
        raise unauthorized("The token is malformed.") from exc
    key = _signing_key(token, alg, config)
    audience = config.get("JWT_AUDIENCE") or None
    try:
        return jwt.decode(
            token, key, algorithms=[alg],
            issuer=config.get("JWT_ISSUER") or None, audience=audience,
            leeway=leeway,
            # development tokens (HS256) may carry no audience; JWKS ones must (see above)
            options={"require": ["exp", "sub"], "verify_aud": audience is not None},
        )
    except jwt.ExpiredSignatureError as exc:
        raise unauthorized("The token has expired.") from exc
    except jwt.InvalidTokenError as exc:
        _log.info("rejected token: %s", exc)
        raise unauthorized("The token is invalid.") from exc


def authenticate(headers, config):
    """The ``Principal`` for the request's bearer token (headers: werkzeug Headers or dict)."""
    claims = verify_token(bearer_token(headers), config)
    try:
        return Principal.from_claims(claims)
    except (TypeError, ValueError, AttributeError) as exc:
        raise unauthorized("The token's claims are not usable.") from exc


def mint_token(config, sub, roles, opd=None, name=None, nip=None, nik=None, ttl_seconds=3600):
    """An HS256 token signed with ``JWT_SECRET``, for development and tests only."""
    secret = config.get("JWT_SECRET")
    if not secret:
        raise ValueError("JWT_SECRET is not configured; cannot mint development tokens")
    if opd is not None and not isinstance(opd, str):
        raise ValueError("opd must be a unit code string such as '3510.01'")
    now = int(time.time())
    claims = {"sub": sub, "roles": list(roles), "iat": now, "exp": now + int(ttl_seconds)}
    optional = {"opd": opd, "name": name, "nip": nip, "nik": nik,
                "iss": config.get("JWT_ISSUER"), "aud": config.get("JWT_AUDIENCE")}
    claims.update({key: value for key, value in optional.items() if value})
    return jwt.encode(claims, secret, algorithm="HS256")


def scope_check(principal, unit_code):
    """404 (never 403) when the record's OPD is outside the caller's view: do not reveal it."""
    if principal is None or not principal.can_read(unit_code):
        raise not_found()
