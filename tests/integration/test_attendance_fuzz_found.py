"""Inputs the API fuzzer (tests/fuzz) found: year 0000 took the monthly reports to a 500, and
refusals answered with a status attendance's OpenAPI document did not name (now documented)."""


import pytest

from pamong.localtime import local_today
from tests.integration.attendance_support import API, NIP_HEAD, NIP_STAFF, token
from tests.integration.fuzz_found_support import (
    assert_documented_refusal,
    assert_documented_success,
)

pytestmark = pytest.mark.integration

BIDANG, OPD, ROOT = "3510.03.01", "3510.03", "3510"


def admin(client):
    return token(client, roles=("admin",), opd=ROOT, sub="bkd-admin")


def get(client, path, **params):
    return client.request("GET", f"{API}{path}", token=admin(client), params=params)


def test_a_month_of_year_0000_is_refused_not_a_500(attendance):
    # found: GET /reports/monthly?month=0000-01 (Python's dates start at year 1)
    client = attendance.client
    for path, params in (("/reports/monthly", {"unit": BIDANG}),
                         (f"/reports/monthly/{NIP_STAFF}", {})):
        r = get(client, path, month="0000-01", **params)
        assert r.status_code == 422, r.text
        assert "month" in r.json()["errors"]
    assert get(client, "/reports/monthly", unit=BIDANG,
               month=f"{local_today():%Y-%m}").status_code == 200


def test_an_unknown_unit_in_the_query_is_a_documented_404(attendance):
    # found: GET /holidays?unit=%0D%C2%B1%C2%BBu, /outages?unit=, /reports/...?unit=0
    client = attendance.client
    for path, params in (("/holidays", {}), ("/outages", {}),
                         ("/reports/monthly", {"month": f"{local_today():%Y-%m}"}),
                         ("/reports/absences", {})):
        r = get(client, path, unit="\r\u00b1\u00bbu", **params)
        assert_documented_refusal(r, "attendance", f"{API}{path}", 404)


def test_a_regional_day_on_a_national_holiday_is_a_documented_409(attendance):
    # found: POST /holidays {"date": "2000-01-01", "kind": "regional", "name": "000"}
    r = attendance.client.request("POST", f"{API}/holidays", token=admin(attendance.client),
                                  json={"date": "2000-01-01", "kind": "regional",
                                        "name": "000"})
    assert_documented_refusal(r, "attendance", f"{API}/holidays", 409)


def test_an_assignment_of_an_unknown_employee_is_a_documented_404(attendance):
    # found: POST /assignments {"employees": ["000000000000000000"], ...}
    client = attendance.client
    r = client.request("POST", f"{API}/assignments",
                       token=token(client, roles=("opd_admin",), opd=OPD, sub="opd-admin"),
                       json={"employees": ["000000000000000000"], "start": "2000-01-01",
                             "end": "2000-01-01", "purpose": "000",
                             "place": {"latitude": 0.0, "longitude": 0.0, "name": "00",
                                       "radius_m": 20}})
    assert_documented_refusal(r, "attendance", f"{API}/assignments", 404)
    assert r.json()["employees"] == ["000000000000000000"]


def test_a_path_date_that_is_no_date_is_a_documented_422(attendance):
    # found: GET /days/<nip>/<not a date>, DELETE /units/<unit>/config/q
    client = attendance.client
    r = get(client, f"/days/{NIP_STAFF}/BXJ)")
    assert_documented_refusal(r, "attendance", f"{API}/days/{{nip}}/{{day}}", 422)
    r = client.request("DELETE", f"{API}/units/{OPD}/config/q", token=admin(client))
    assert_documented_refusal(
        r, "attendance", f"{API}/units/{{unit}}/config/{{effective_from}}", 422)
    r = client.request("POST", f"{API}/units/{OPD}/days/q/close", token=admin(client))
    assert_documented_refusal(r, "attendance", f"{API}/units/{{unit}}/days/{{day}}/close", 422)


def test_a_garbage_cursor_is_a_documented_400(attendance):
    # found: GET /corrections/pending?cursor=%14!..., /leave/pending?cursor=%C3%88K%24
    client = attendance.client
    head = token(client, NIP_HEAD, roles=("pimpinan",), opd=OPD)  # the pending lists' reader
    for path in ("/corrections/pending", "/leave/pending"):
        r = client.request("GET", f"{API}{path}", token=head, params={"cursor": "\u00c8K$"})
        assert_documented_refusal(r, "attendance", f"{API}{path}", 400)


def test_a_repeated_holiday_is_a_documented_200(attendance):
    # found: POST /holidays {"kind": "cuti_bersama", "date": "0001-01-01", "name": "000"}
    # twice: the repeat answers the first day with 200, where the document named only 201
    client = attendance.client
    body = {"kind": "cuti_bersama", "date": "0001-01-01", "name": "000"}
    first = client.request("POST", f"{API}/holidays", token=admin(client), json=body)
    assert_documented_success(first, "attendance", f"{API}/holidays", 201)
    again = client.request("POST", f"{API}/holidays", token=admin(client), json=body)
    assert_documented_success(again, "attendance", f"{API}/holidays", 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
