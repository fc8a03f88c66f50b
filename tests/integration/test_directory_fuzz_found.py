"""Inputs the API fuzzer (tests/fuzz) found answered with a status the directory's OpenAPI
document did not name; each is now documented, and stays so."""

import pytest

from tests.integration.fuzz_found_support import assert_documented_refusal
from tests.integration.test_directory_api import API
from tests.integration.test_directory_import import import_sample

pytestmark = pytest.mark.integration


def test_a_garbage_cursor_is_a_documented_400(directory):
    # found: GET /units?cursor=~p... (any string that is not a cursor the API gave)
    for path in ("/units", "/acting"):
        r = directory.as_staff("GET", f"{API}{path}", roles=("admin",), opd="3510",
                               params={"cursor": "~p\x10"})
        assert_documented_refusal(r, "directory", f"{API}{path}", 400)
        assert r.json()["errors"] == {"cursor": ["Invalid cursor."]}


def test_a_tree_below_an_unknown_root_is_a_documented_404(directory):
    import_sample(directory)
    r = directory.as_staff("GET", f"{API}/tree", roles=("admin",), opd="3510",
                           params={"root": "\u00ec>"})
    assert_documented_refusal(r, "directory", f"{API}/tree", 404)


def test_deactivating_a_unit_people_still_work_in_is_a_documented_422(directory):
    import_sample(directory)
    r = directory.as_staff("POST", f"{API}/units/3510.06.02/deactivate", roles=("admin",),
                           opd="3510")
    assert_documented_refusal(r, "directory", f"{API}/units/{{code}}/deactivate", 422)
    assert "active employees still work in the unit" in r.json()["errors"]["active"]


def test_a_put_of_another_opds_key_is_a_documented_409(directory):
    import_sample(directory)
    # an opd_admin of the BKPSDM giving the Bupati's position key to one of its own units
    r = directory.as_staff("PUT", f"{API}/positions/BUPATI", roles=("opd_admin",),
                           opd="3510.06", json={"title": "Analis", "kind": "fungsional",
                                                "unit": "3510.06.02"})
    assert_documented_refusal(r, "directory", f"{API}/positions/{{position_id}}", 409)
