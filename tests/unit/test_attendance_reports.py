"""Attendance report helpers: month recaps summed from closed days' results, today's
presence, consecutive unexcused absences."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.attendance import domain

pytestmark = pytest.mark.unit

MONDAY = date(2026, 11, 2)
WIB = "Asia/Jakarta"


def at(day, clock, tz=WIB):
    local = datetime.combine(day, time.fromisoformat(clock), tzinfo=domain.zone(tz))
    return local.astimezone(UTC)


def present(codes=(), late=0, early=0, deduction="0"):
    return {"status": "present", "codes": list(codes), "late_minutes": late,
            "early_minutes": early, "deduction": deduction}


def test_month_dates_cover_the_month_and_leap_february():
    assert len(domain.month_dates(2026, 11)) == 30
    assert domain.month_dates(2028, 2)[-1] == date(2028, 2, 29)
    assert domain.month_dates(2026, 12)[0] == date(2026, 12, 1)


def test_a_recap_counts_each_status_bracket_and_minutes():
    recap = domain.empty_recap()
    for result in (present(), present(["TL1"], late=12, deduction="0.5"),
                   present(["TL2", "PSW1"], late=45, early=5, deduction="1.5"),
                   present(["TL4"], late=None, early=0, deduction="2"),  # no check-in record
                   {"status": "absent", "deduction": "4"},
                   {"status": "leave", "leave_type": "CT", "deduction": "0"},
                   {"status": "leave", "leave_type": "CS", "deduction": "0"},
                   {"status": "leave", "leave_type": "CT", "deduction": "0"},
                   {"status": "assignment", "deduction": "0"},
                   {"status": "holiday", "deduction": "0"},
                   {"status": "day_off", "deduction": "0"},
                   {"status": "outage", "deduction": "0"}):
        domain.add_day(recap, result)
    assert recap["closed_days"] == 12 and recap["days_present"] == 4
    assert recap["brackets"]["TL1"] == {"count": 1, "minutes": 12}
    assert recap["brackets"]["TL2"] == {"count": 1, "minutes": 45}
    assert recap["brackets"]["TL4"] == {"count": 1, "minutes": 0}
    assert recap["brackets"]["PSW1"] == {"count": 1, "minutes": 5}
    assert recap["brackets"]["PSW4"] == {"count": 0, "minutes": 0}
    assert (recap["absences"], recap["leave_days"], recap["leave"]) == (1, 3, {"CT": 2, "CS": 1})
    assert (recap["assignment_days"], recap["holidays"], recap["days_off"],
            recap["outage_days"]) == (1, 1, 1, 1)
    assert recap["deduction"] == Decimal("8.0")


def test_a_configured_fifth_bracket_is_counted_too():
    recap = domain.add_day(domain.empty_recap(), present(["TL5"], late=130, deduction="3"))
    assert recap["brackets"]["TL5"] == {"count": 1, "minutes": 130}


@given(st.lists(st.sampled_from(["0", "0.5", "1", "1.5", "2", "4", "0.25"]), max_size=31))
def test_deductions_add_up_exactly_in_decimal(percents):
    recap = domain.empty_recap()
    for percent in percents:
        domain.add_day(recap, present(deduction=percent))
    assert recap["deduction"] == sum((Decimal(p) for p in percents), Decimal(0))


def test_recaps_add_into_a_total():
    a = domain.add_day(domain.empty_recap(), present(["TL1"], late=10, deduction="0.5"))
    b = domain.add_day(domain.empty_recap(), {"status": "leave", "leave_type": "CS",
                                              "deduction": "0"})
    domain.add_day(b, present(["TL1"], late=20, deduction="0.5"))
    total = domain.add_recap(domain.add_recap(domain.empty_recap(), a), b)
    assert total["brackets"]["TL1"] == {"count": 2, "minutes": 30}
    assert total["days_present"] == 2 and total["leave"] == {"CS": 1}
    assert total["deduction"] == Decimal("1.0") and total["closed_days"] == 3


def now_of(clock, day=MONDAY, **kwargs):
    settings = kwargs.pop("settings", domain.DEFAULT_SETTINGS)
    hours = domain.hours_on(settings, day)
    return domain.presence_now(day, hours, WIB, settings=settings,
                               check_in=None if clock is None else at(day, clock), **kwargs)


def test_presence_now_brackets_a_late_check_in_and_never_says_absent():
    assert now_of("07:30") == {"status": "checked_in", "code": None, "late_minutes": 0}
    assert now_of("07:45") == {"status": "checked_in", "code": "TL1", "late_minutes": 15}
    assert now_of("08:50")["code"] == "TL3" and now_of("09:10")["code"] == "TL4"
    assert now_of(None) == {"status": "not_yet_in", "code": None, "late_minutes": None}


def test_presence_now_grace_outage_leave_assignment_and_days_off():
    graced = {**domain.DEFAULT_SETTINGS, "grace_minutes": 5}
    assert now_of("07:35", settings=graced)["code"] is None
    outage = [{"start": at(MONDAY, "07:00"), "end": at(MONDAY, "08:30")}]
    assert now_of("08:20", outages=outage)["code"] is None
    leave = [{"start": MONDAY, "end": MONDAY, "status": "approved", "type": "CT"}]
    assert now_of(None, leaves=leave)["status"] == "leave"
    assert now_of(None, assignments=[{"start": MONDAY, "end": MONDAY}])["status"] == \
        "assignment"
    assert now_of(None, day=MONDAY + timedelta(days=5))["status"] == "day_off"
    assert now_of("07:40", holidays={MONDAY: {"name": "x", "kind": "regional"}})["status"] == \
        "holiday"


def test_consecutive_absences_skip_weekends_and_holidays_but_break_on_a_working_day():
    def working(start, end, holidays=()):
        return [d for d in domain.working_days(start, end, domain.DEFAULT_SETTINGS)
                if d not in holidays]

    days = working(date(2026, 11, 2), date(2026, 11, 30))
    # Thu 5, Fri 6, Mon 9, Tue 10: a weekend in between does not break the run
    absent = [date(2026, 11, 5), date(2026, 11, 6), date(2026, 11, 9), date(2026, 11, 10)]
    assert domain.consecutive_absences(absent, days) == 4
    # a working day present in between breaks it
    assert domain.consecutive_absences(absent + [date(2026, 11, 12)], days) == 4
    # a holiday on the 11th: 5, 6, 9, 10, (11 off), 12 is one run of five
    no_11 = working(date(2026, 11, 2), date(2026, 11, 30), {date(2026, 11, 11)})
    assert domain.consecutive_absences(absent + [date(2026, 11, 12)], no_11) == 5
    assert domain.consecutive_absences([], days) == 0
    # ten in a row reach dismissal whatever the yearly count
    ten = days[:10]
    run = domain.consecutive_absences(ten, days)
    assert run == 10 and domain.absence_threshold(10, run)["level"] == "dismissal"


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted():
    from services.attendance.reports import csv_cell

    assert csv_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)" and csv_cell("Budi") == "Budi"
    assert csv_cell(3) == 3 and csv_cell("3510.03") == "3510.03"
