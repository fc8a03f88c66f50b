"""Years of service read from the NIP (leave eligibility: CT after 1 year, CB after 5)."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.attendance.domain import service_years


@pytest.mark.parametrize(("on", "years"), [
    (date(2015, 5, 1), 0), (date(2016, 4, 30), 0), (date(2016, 5, 1), 1),
    (date(2020, 4, 30), 4), (date(2020, 5, 1), 5), (date(2014, 1, 1), 0)])
def test_completed_years_from_the_appointment_month(on, years):
    assert service_years("198609262015051001", on) == years


@pytest.mark.parametrize("nip", ["19860926201513100", "1986092620151310011", "19860926201513A001",
                                 "198609262015131001", "198609262015001001", None])
def test_a_nip_without_a_valid_appointment_month_gives_none(nip):
    assert service_years(nip, date(2026, 1, 1)) is None


@given(st.dates(min_value=date(1980, 1, 1), max_value=date(2060, 12, 31)),
       st.integers(min_value=0, max_value=40))
def test_whole_years_after_the_appointment_month(appointed, years):
    nip = f"19600101{appointed.year:04d}{appointed.month:02d}1001"
    on = date(appointed.year + years, appointed.month, 1)
    assert service_years(nip, on) == years
