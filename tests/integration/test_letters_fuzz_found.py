"""Inputs the API fuzzer (tests/fuzz) found answered with a status the letters OpenAPI document
did not name; each is now documented, and stays so."""

import pytest

from tests.integration.fuzz_found_support import assert_documented_refusal
from tests.integration.letters_support import API, NIP_STAFF, call

pytestmark = pytest.mark.integration


def test_a_garbage_cursor_is_a_documented_400(letters):
    # found: GET /inbox?cursor=%C3%B9..., /search?cursor=..., /dispositions/mine?cursor=...
    for path, roles in (("/inbox", ("sekretariat",)), ("/search", ("pegawai",)),
                        ("/dispositions/mine", ("pegawai",))):
        r = call(letters.client, "GET", path, NIP_STAFF, roles=roles,
                 params={"cursor": "\u00f9\u00b2r"})
        assert_documented_refusal(r, "letters", f"{API}{path}", 400)


def test_a_unit_list_outside_the_callers_opd_is_a_documented_404(letters):
    # found: GET /outbox?limit=2 with a token naming no unit; /archive/due?opd=<another>
    for path in ("/outbox", "/inbox"):
        r = call(letters.client, "GET", path, roles=("admin",), opd=None)
        assert_documented_refusal(r, "letters", f"{API}{path}", 404)
    r = call(letters.client, "GET", "/archive/due", roles=("sekretariat",), opd="3510.03",
             params={"opd": "0845.59.27", "until": "1323-02-13"})
    assert_documented_refusal(r, "letters", f"{API}/archive/due", 404)
    r = call(letters.client, "GET", "/numbering/register", roles=("admin",), opd="3510",
             params={"counter": ""})
    assert_documented_refusal(r, "letters", f"{API}/numbering/register", 404)


def test_a_reservation_without_a_numbering_template_is_a_documented_409(letters):
    # found: POST /numbering/reservations {"count": 1, "reason": "000", "unit": "0000"}
    r = call(letters.client, "POST", "/numbering/reservations", roles=("admin",), opd="3510",
             json={"count": 1, "reason": "000", "unit": "0000"})
    assert_documented_refusal(r, "letters", f"{API}/numbering/reservations", 409)


def test_uploads_without_a_file_are_a_documented_422(letters):
    # found: POST /verify and POST /classifications/import with an empty body
    r = letters.client.request("POST", f"{API}/verify")
    assert_documented_refusal(r, "letters", f"{API}/verify", 422)
    r = call(letters.client, "POST", "/classifications/import", roles=("admin",), opd="3510")
    assert_documented_refusal(r, "letters", f"{API}/classifications/import", 422)
