import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pamong.auth import Principal, authenticate, mint_token
from pamong.testing import wait_until
from pamong.web import Problem

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"
CONFIG = {"JWT_SECRET": SECRET}
# never contacted: every token in these tests is refused before a key would be fetched
UNREACHABLE_JWKS = "http://127.0.0.1:9/jwks.json"
JWKS_CONFIG = {"JWT_JWKS_URL": UNREACHABLE_JWKS, "JWT_AUDIENCE": "pamong"}


def b64(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_made_token(header, claims, sign=lambda signing_input: b""):
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def claims(**extra):
    return {"sub": "u1", "roles": ["pegawai"], "exp": int(time.time()) + 600, **extra}


def rejected(headers, config=CONFIG):
    with pytest.raises(Problem) as raised:
        authenticate(headers, config)
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")
    return raised.value


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_minted_token_authenticates_to_its_principal():
    token = mint_token(CONFIG, "198001012005011001", ["pegawai", "verifikator"], opd="3510.01",
                       name="Siti", nip="198001012005011001")
    assert authenticate(bearer(token), CONFIG) == Principal(
        sub="198001012005011001", name="Siti", roles=("pegawai", "verifikator"),
        opd="3510.01", nip="198001012005011001")


def test_header_name_is_case_insensitive_in_a_plain_dict():
    token = mint_token(CONFIG, "u1", ["pegawai"])
    assert authenticate({"authorization": f"bearer {token}"}, CONFIG).sub == "u1"


def test_missing_bearer():
    problem = rejected({})
    assert problem.headers["WWW-Authenticate"] == "Bearer"
    rejected({"Authorization": "Basic dXNlcjpwYXNz"})
    rejected({"Authorization": "Bearer "})


def test_malformed_token():
    assert "malformed" in rejected(bearer("not-a-jwt")).detail


def test_expired_token():
    token = mint_token(CONFIG, "u1", ["pegawai"], ttl_seconds=-3600)
    assert "expired" in rejected(bearer(token)).detail


def test_token_without_expiry_is_refused():
    rejected(bearer(jwt.encode({"sub": "u1", "roles": []}, SECRET, algorithm="HS256")))


def test_forged_signature():
    forged = jwt.encode(claims(roles=["admin"]), "another-secret-that-is-long-enough-too!",
                        algorithm="HS256")
    rejected(bearer(forged))
    # a valid token whose payload was swapped for a more privileged one
    good = mint_token(CONFIG, "u1", ["pegawai"]).split(".")
    swapped = ".".join([good[0], b64(json.dumps(claims(roles=["admin"])).encode()), good[2]])
    rejected(bearer(swapped))


def test_alg_none_is_refused():
    token = hand_made_token({"alg": "none", "typ": "JWT"}, claims(roles=["admin"]))
    rejected(bearer(token))
    rejected(bearer(token), JWKS_CONFIG)


def test_hs256_signed_with_the_rsa_public_key_is_refused():
    public_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key() \
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = hand_made_token(
        {"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(roles=["admin"]),
        lambda signing_input: hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    # production config: only RS256 through JWKS, so HS256 is not even considered
    assert "algorithm" in rejected(bearer(token), JWKS_CONFIG).detail
    # development config: HS256 is checked with the secret only, never with a public key
    rejected(bearer(token))


def test_rs256_is_refused_when_no_jwks_is_configured():
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), private_key, algorithm="RS256", headers={"kid": "k1"})
    rejected(bearer(token))


def test_issuer_and_audience_are_checked_when_configured():
    config = {**CONFIG, "JWT_ISSUER": "https://sso.example.go.id/realms/pemda",
              "JWT_AUDIENCE": "pamong"}
    assert authenticate(bearer(mint_token(config, "u1", ["pegawai"])), config).sub == "u1"
    rejected(bearer(mint_token(CONFIG, "u1", ["pegawai"])), config)  # neither claim
    wrong_audience = jwt.encode(claims(iss=config["JWT_ISSUER"], aud="other"), SECRET,
                                algorithm="HS256")
    rejected(bearer(wrong_audience), config)


def test_audience_is_ignored_when_not_configured():
    token = jwt.encode(claims(aud="account"), SECRET, algorithm="HS256")
    assert authenticate(bearer(token), CONFIG).sub == "u1"


def test_mint_token_needs_a_secret():
    with pytest.raises(ValueError):
        mint_token({}, "u1", ["admin"])


def test_a_verified_token_is_not_verified_again_while_cached(monkeypatch):
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    token = mint_token(CONFIG, "cached-once", ["pegawai"])
    assert authenticate(bearer(token), CONFIG).sub == "cached-once"
    assert authenticate(bearer(token), CONFIG).sub == "cached-once"
    assert len(decoded) == 1
    never = CONFIG | {"JWT_VERIFIED_CACHE_SECONDS": 0}
    fresh = mint_token(CONFIG, "never-cached", ["pegawai"])
    authenticate(bearer(fresh), never)
    authenticate(bearer(fresh), never)
    assert len(decoded) == 3


def test_a_cached_token_is_refused_once_it_expires():
    config = CONFIG | {"JWT_LEEWAY_SECONDS": 0}
    token = mint_token(config, "short-lived", ["pegawai"], ttl_seconds=1)
    assert authenticate(bearer(token), config).sub == "short-lived"

    def refused():
        try:
            authenticate(bearer(token), config)
        except Problem as problem:
            return problem.detail
        return None

    # refused within seconds of its expiry, not kept for the cache's minute
    assert wait_until(refused, timeout=5, interval=0.1,
                      message="the cached token refused") == "The token has expired."


def test_a_token_verified_under_one_secret_is_refused_under_another():
    token = mint_token(CONFIG, "rotated", ["pegawai"])
    assert authenticate(bearer(token), CONFIG).sub == "rotated"
    rejected(bearer(token), {"JWT_SECRET": "another-secret-after-a-rotation-long-enough"})
