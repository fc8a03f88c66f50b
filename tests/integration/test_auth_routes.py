"""Routes against callers the declarations do not name: a token without roles, a citizen, a
service configured for two verifiers or for JWKS without an audience; and the directory's
lists agreeing with its single reads for every scope, the Pemda root (``opd: 3510``) included."""

import pytest
from nameko.containers import ServiceContainer

from pamong.config import ConfigError
from pamong.testing import free_port
from tests.integration.httpkernel_service import HttpKernelService
from tests.integration.test_directory_api import API, NIP_OTHER, NIP_STAFF, seed
from tests.integration.test_directory_auth import scratch_acting
from tests.integration.test_http_kernel import start_service

pytestmark = pytest.mark.integration

WHOAMI = "/api/things/v1/whoami"


def test_any_staff_refuses_a_token_without_roles_and_a_citizen(request, config):
    kernel = start_service(request, config)
    assert kernel.as_staff("GET", WHOAMI, roles=("pegawai",)).status_code == 200
    for roles in ((), ("pemohon",)):
        response = kernel.as_staff("GET", WHOAMI, roles=roles)
        assert response.status_code == 403, (roles, response.text)
    # a route with roles refuses an empty role list too
    assert kernel.as_staff("GET", "/api/things/v1/things", roles=()).status_code == 403


@pytest.mark.parametrize("settings, reason", [
    ({"JWT_AUDIENCE": "pamong"}, "JWT_SECRET"),                    # both verifiers
    ({"JWT_SECRET": None}, "without JWT_AUDIENCE"),                # JWKS for any client
])
def test_a_misconfigured_verifier_does_not_start(config, settings, reason):
    settings = {**config, "JWT_JWKS_URL": "http://127.0.0.1:9/certs", **settings,
                "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}
    container = ServiceContainer(HttpKernelService, settings)
    try:
        with pytest.raises(ConfigError, match=reason):
            container.start()
    finally:
        container.kill()


# (roles, opd claim) of callers whose scope is not the whole Pemda by role
SCOPED = {
    "opd_admin of the Pemda root": (("opd_admin",), "3510"),
    "pegawai of the Pemda root": (("pegawai",), "3510"),
    "opd_admin of an OPD": (("opd_admin",), "3510.03"),
    "pegawai of a bidang": (("pegawai",), "3510.03.01"),
    "pegawai of another OPD": (("pegawai",), "3510.04"),
}
# list path, single-read path of an item, the item's key
COLLECTIONS = [("/units", "/units/{}", "code"), ("/positions", "/positions/{}", "id"),
               ("/employees", "/employees/{}", "nip")]


def test_lists_hold_exactly_what_single_reads_show(directory):
    client = directory
    seed(client)
    scratch_acting(client, "3510.03.01", NIP_STAFF)
    scratch_acting(client, "3510.04", NIP_OTHER)
    admin = client.token(("admin",), "3510")
    for caller, (roles, opd) in SCOPED.items():
        token = client.token(roles, opd, sub="caller")
        for list_path, item_path, key in COLLECTIONS:
            everything = [item[key] for item in _items(client, admin, list_path)]
            visible = {item[key] for item in _items(client, token, list_path)}
            for record in everything:
                status = client.request("GET", API + item_path.format(record),
                                        token=token).status_code
                assert status == (200 if record in visible else 404), (caller, record)
            if opd == "3510":  # the Pemda root's scope is the whole Pemda tree
                assert visible == set(everything), (caller, list_path)
        # acting assignments have no single read: their list follows the same scope
        scope = opd if opd == "3510" else ".".join(opd.split(".")[:2])
        acting = {a["id"] for a in _items(client, token, "/acting")}
        assert acting == {a["id"] for a in _items(client, admin, "/acting")
                          if a["unit"] == scope or a["unit"].startswith(scope + ".")}, caller


def _items(client, token, path):
    response = client.request("GET", f"{API}{path}?limit=200", token=token)
    assert response.status_code == 200, response.text
    return response.json()["items"]
