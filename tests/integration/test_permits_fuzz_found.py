"""Inputs the API fuzzer (tests/fuzz) found: year 0000 took the open data to a 500, and
refusals answered with a status the permits OpenAPI document did not name (now documented)."""

import pytest

from tests.integration.fuzz_found_support import assert_documented_refusal
from tests.integration.permits_support import API, OPD, admin, officer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["permits.json", "permits.csv"])
def test_open_data_of_years_before_2000_is_refused_not_a_500(permits, name):
    # found: GET /open-data/permits.json?from=0000-01 (Python's dates start at year 1); then
    # ?to=0001-12, whose default `from` (the year before) is year 0
    for params in ({"from": "0000-01"}, {"to": "0001-12"}, {"from": "0001-01", "to": "0001-12"}):
        r = permits.client.request("GET", f"{API}/open-data/{name}", params=params)
        assert r.status_code == 422, r.text
        assert set(r.json()["errors"]) <= {"from", "to"}
    r = permits.client.request("GET", f"{API}/open-data/{name}",
                               params={"from": "2000-01", "to": "2000-12"})
    assert r.status_code == 200, r.text


def test_an_opd_outside_the_callers_scope_is_a_documented_404(permits):
    # found: GET /dashboard?opd=9882.38.03, /dashboard/stream?opd=4535, /skm?opd=4644...,
    # /applications?opd=<not an OPD>
    client, tok = permits.client, officer(permits.client)
    for path, params in (("/dashboard", {}), ("/dashboard/stream", {}),
                         ("/skm", {"period": "2026"}), ("/applications", {})):
        r = client.request("GET", f"{API}{path}", token=tok, params={"opd": "9882.38", **params})
        assert_documented_refusal(r, "permits", f"{API}{path}", 404)


def test_tracking_an_unknown_number_is_a_documented_404(permits):
    # found: GET /track?last4=0000&number=REG-0000-000000
    r = permits.client.request("GET", f"{API}/track",
                               params={"number": "REG-0000-000000", "last4": "0000"})
    assert_documented_refusal(r, "permits", f"{API}/track", 404)


def test_withdrawing_a_holiday_that_is_no_date_is_a_documented_422(permits):
    # found: DELETE /holidays/0
    r = permits.client.request("DELETE", f"{API}/holidays/0", token=admin(permits.client))
    assert_documented_refusal(r, "permits", f"{API}/holidays/{{day}}", 422)
    r = permits.client.request("DELETE", f"{API}/holidays/2026-08-17",
                               token=admin(permits.client))
    assert_documented_refusal(r, "permits", f"{API}/holidays/{{day}}", 409)


def test_a_work_list_of_another_opd_is_a_documented_404(permits):
    r = permits.client.request("GET", f"{API}/applications", token=officer(permits.client),
                               params={"opd": "3510.04"})
    assert_documented_refusal(r, "permits", f"{API}/applications", 404)
    assert OPD != "3510.04"
