"""Auth rules that refuse rather than guess: configurations mixing development and production
verification, numeric ``opd`` claims, and routes that do not say who may call them."""

import jwt
import pytest

from pamong.auth import STAFF_ROLES, authenticate, check_auth_config, mint_token
from pamong.config import ConfigError
from pamong.modules import installed
from pamong.web import Problem, route, routes_of
from tests.unit.test_auth_tokens import CONFIG, SECRET, UNREACHABLE_JWKS, bearer, claims

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("config, reason", [
    ({"JWT_SECRET": SECRET, "JWT_JWKS_URL": UNREACHABLE_JWKS, "JWT_AUDIENCE": "pamong"},
     "both set"),
    ({"JWT_JWKS_URL": UNREACHABLE_JWKS}, "without JWT_AUDIENCE"),
])
def test_configurations_that_must_not_serve_are_refused(config, reason):
    # a service checks it once, when it starts (tests/integration/test_auth_routes.py)
    with pytest.raises(ConfigError, match=reason):
        check_auth_config(config)


@pytest.mark.parametrize("config", [CONFIG, {"JWT_JWKS_URL": UNREACHABLE_JWKS,
                                             "JWT_AUDIENCE": "pamong"}, {}])
def test_one_verifier_configurations_are_accepted(config):
    check_auth_config(config)


@pytest.mark.parametrize("opd", [3510, 3510.1, ["3510.01"], True])
def test_an_opd_claim_that_is_not_a_string_is_refused(opd):
    token = jwt.encode(claims(opd=opd), SECRET, algorithm="HS256")
    with pytest.raises(Problem) as raised:
        authenticate(bearer(token), CONFIG)
    assert raised.value.status == 401
    with pytest.raises(ValueError):
        mint_token(CONFIG, "u1", ["pegawai"], opd=opd)


def test_a_string_opd_claim_is_kept_as_written():
    token = jwt.encode(claims(opd="3510.10"), SECRET, algorithm="HS256")
    assert authenticate(bearer(token), CONFIG).opd == "3510.10"


def handler(self, request, principal):
    return {}


@pytest.mark.parametrize("options", [
    {},                                            # says nothing: any token would do
    {"roles": ()},
    {"public": True, "roles": ("admin",)},         # contradictions
    {"public": True, "any_staff": True},
    {"any_staff": True, "roles": ("pegawai",)},
    {"roles": ("admn",)},                          # a typo must not lock everyone out
    {"roles": "admin"},                            # a string, not a tuple of roles
])
def test_a_route_that_does_not_say_who_may_call_it_fails_at_declaration(options):
    with pytest.raises(TypeError, match="route /x"):
        route("GET", "/x", **options)(handler)


def test_any_staff_means_every_role_but_the_citizens():
    class Service:
        name = "s"
        staff = route("GET", "/staff", any_staff=True)(handler)

    [(_, entry)] = routes_of(Service)
    assert set(entry.roles) == STAFF_ROLES and "pemohon" not in entry.roles


def test_every_installed_route_is_public_or_names_its_roles():
    services = installed()
    assert services, "no installed module found"
    for service_cls in services.values():
        for name, entry in routes_of(service_cls):
            assert entry.public or entry.roles, f"{service_cls.name}.{name}"
