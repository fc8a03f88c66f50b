"""Attendance's pure rules: schedules, configuration, brackets, day status, holidays, leave,
geofence, suspicion flags and PP 94/2021 thresholds."""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from math import cos, radians

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.attendance import domain
from services.attendance.domain import DEFAULT_SETTINGS, Hours

pytestmark = pytest.mark.unit

MONDAY, FRIDAY, SATURDAY = date(2026, 4, 6), date(2026, 4, 10), date(2026, 4, 11)
WIB, WITA, WIT = "Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"
RAMADAN = {"start": date(2026, 2, 19), "end": date(2026, 3, 20)}


def at(day, clock, tz=WIB, second=0):
    """A server time (UTC) for a local wall-clock time of ``day``."""
    local = datetime.combine(day, time.fromisoformat(clock).replace(second=second),
                             tzinfo=domain.zone(tz))
    return local.astimezone(UTC)


def judge(day=MONDAY, check_in=None, check_out=None, tz=WIB, settings=DEFAULT_SETTINGS,
          rota=None, **kwargs):
    hours = domain.hours_on(settings, day, rota)
    return domain.day_status(day, hours, tz, check_in=check_in, check_out=check_out,
                             settings=settings, **kwargs)


# -- schedules -----------------------------------------------------------------------------

def test_the_perpres_week_adds_up_to_37_5_hours():
    week = domain.OFFICE_WEEK
    assert week[1] == Hours(time(7, 30), time(16, 0), 60)
    assert week[5] == Hours(time(7, 30), time(16, 30), 90)  # Friday: the longer break
    assert week[6] is None and week[7] is None
    assert {week[d].work_minutes for d in range(1, 6)} == {450}
    assert domain.week_minutes(week) == 2250


def test_a_six_day_week_keeps_37_5_hours_and_works_saturday():
    week = domain.SIX_DAY_WEEK
    assert domain.week_minutes(week) == 2250 and domain.workdays_per_week(week) == 6
    assert week[6] == Hours(time(7, 30), time(14, 45), 60) and week[7] is None
    assert week[5].end == time(15, 15)


def test_the_ramadan_profile_applies_between_its_dates_only():
    settings = {**DEFAULT_SETTINGS, "ramadan": [RAMADAN]}
    friday, monday = date(2026, 2, 20), date(2026, 2, 23)
    assert domain.hours_on(settings, friday) == Hours(time(8, 0), time(15, 30), 60)
    assert domain.hours_on(settings, monday) == Hours(time(8, 0), time(15, 0), 30)
    assert domain.week_minutes(domain.RAMADAN_WEEK) == 1950
    assert domain.hours_on(settings, date(2026, 3, 23)).start == time(7, 30)  # after it
    assert domain.hours_on(settings, date(2026, 2, 14)) is None  # a Saturday before it
    six = {**settings, "week": domain.SIX_DAY_WEEK}
    assert domain.hours_on(six, date(2026, 2, 21)) == Hours(time(8, 0), time(13, 55), 30)
    assert domain.week_minutes(domain.RAMADAN_SIX_DAY_WEEK) == 1950


def test_ramadan_friday_is_judged_against_its_own_end():
    settings = {**DEFAULT_SETTINGS, "ramadan": [RAMADAN]}
    friday = date(2026, 2, 20)
    on_time = judge(friday, at(friday, "08:00"), at(friday, "15:30"), settings=settings)
    assert on_time["status"] == "present" and on_time["codes"] == []
    ordinary = judge(FRIDAY, at(FRIDAY, "07:30"), at(FRIDAY, "16:00"))  # Friday ends 16:30
    assert ordinary["codes"] == ["PSW1"] and ordinary["early_minutes"] == 30


def test_an_uneven_week_is_refused():
    with pytest.raises(ValueError):
        domain.even_week(time(7, 30), 2251)


def test_hours_round_trip_as_dicts():
    night = Hours(time(21, 0), time(7, 0), 0, "M")
    assert Hours.from_dict(night.to_dict()) == night
    assert night.crosses_midnight and night.span_minutes == 600
    assert Hours(time(7, 0), time(7, 0)).span_minutes == 1440  # a 24-hour shift


# -- shifts --------------------------------------------------------------------------------

ROTA_SETTINGS = {**DEFAULT_SETTINGS, "shifts": {
    "P": Hours(time(7, 0), time(14, 0)), "S": Hours(time(14, 0), time(21, 0)),
    "M": Hours(time(21, 0), time(7, 0))}}
PATTERN = {"pattern": {"anchor": MONDAY, "cycle": ["P", "S", "M", None]}}


def test_a_cyclic_pattern_repeats_both_ways_and_the_roster_wins():
    codes = [domain.shift_code(PATTERN, MONDAY + timedelta(days=n)) for n in range(-4, 5)]
    assert codes == ["P", "S", "M", None, "P", "S", "M", None, "P"]
    swapped = {**PATTERN, "roster": {MONDAY: "M", MONDAY + timedelta(days=1): None}}
    assert domain.shift_code(swapped, MONDAY) == "M"
    assert domain.shift_code(swapped, MONDAY + timedelta(days=1)) is None
    assert domain.hours_on(ROTA_SETTINGS, SATURDAY, PATTERN).shift == "S"  # weekends too
    assert domain.hours_on(ROTA_SETTINGS, MONDAY + timedelta(days=3), PATTERN) is None


def test_a_night_shift_crosses_midnight():
    night = MONDAY + timedelta(days=2)
    hours = domain.hours_on(ROTA_SETTINGS, night, PATTERN)
    start, end = hours.bounds(night, WIB)
    assert (start, end) == (at(night, "21:00"), at(night + timedelta(days=1), "07:00"))
    opens, closes = domain.day_window(night, hours, WIB, ROTA_SETTINGS)
    records = [{"kind": "in", "at": at(night, "20:55")},
               {"kind": "out", "at": at(night + timedelta(days=1), "06:00")},
               {"kind": "in", "at": at(night + timedelta(days=1), "21:00")}]  # not this day
    check_in, check_out = domain.day_records(records, opens, closes)
    assert (check_in, check_out) == (records[0]["at"], records[1]["at"])
    result = judge(night, check_in, check_out, settings=ROTA_SETTINGS, rota=PATTERN)
    assert result["codes"] == ["PSW2"] and result["early_minutes"] == 60
    assert domain.day_closes_at(night, WIB, ROTA_SETTINGS, [hours]) == at(
        night + timedelta(days=1), "09:00")


def test_a_rota_code_the_unit_has_no_shift_for_falls_back_to_the_office_week():
    no_shifts = {**ROTA_SETTINGS, "shifts": {}}  # the employee moved to a unit without them
    assert domain.hours_on(no_shifts, SATURDAY, PATTERN) is None  # the office week's Saturday
    assert domain.hours_on(no_shifts, MONDAY, PATTERN) == domain.OFFICE_WEEK[1]
    assert domain.hours_on(no_shifts, MONDAY + timedelta(days=3), PATTERN) is None  # rota off


def test_a_shift_is_worked_on_a_holiday_an_office_day_is_not():
    holidays = domain.holiday_calendar("3510", {MONDAY: "Libur"})
    shift = judge(MONDAY, at(MONDAY, "06:55"), at(MONDAY, "14:00"), settings=ROTA_SETTINGS,
                  rota=PATTERN, holidays=holidays)
    assert shift["status"] == "present" and shift["codes"] == []
    office = judge(MONDAY, holidays=holidays)
    assert office["status"] == "holiday" and office["deduction"] == 0


# -- brackets ------------------------------------------------------------------------------

@pytest.mark.parametrize("minutes, expected", [
    (0, None), (1, ("TL1", "0.5")), (30, ("TL1", "0.5")), (31, ("TL2", "1")),
    (60, ("TL2", "1")), (61, ("TL3", "1.5")), (90, ("TL3", "1.5")), (91, ("TL4", "2")),
    (600, ("TL4", "2")), (None, ("TL4", "2"))])
def test_tl_bracket_boundaries(minutes, expected):
    found = domain.bracket(minutes)
    assert found == (None if expected is None else (expected[0], Decimal(expected[1])))


@pytest.mark.parametrize("minutes, code", [(0, None), (1, "PSW1"), (30, "PSW1"), (31, "PSW2"),
                                           (60, "PSW2"), (61, "PSW3"), (90, "PSW3"),
                                           (91, "PSW4"), (None, "PSW4")])
def test_psw_bracket_boundaries(minutes, code):
    found = domain.bracket(minutes, prefix="PSW")
    assert (found and found[0]) == code


@pytest.mark.parametrize("clock, code", [("07:30", None), ("07:31", "TL1"), ("08:00", "TL1"),
                                         ("08:01", "TL2"), ("08:30", "TL2"), ("08:31", "TL3"),
                                         ("09:00", "TL3"), ("09:01", "TL4")])
def test_check_in_times_fall_in_their_brackets(clock, code):
    result = judge(MONDAY, at(MONDAY, clock), at(MONDAY, "16:00"))
    assert result["codes"] == ([code] if code else [])


def test_minutes_are_counted_on_the_clock_face():
    assert judge(MONDAY, at(MONDAY, "07:30", second=59), at(MONDAY, "16:00"))["codes"] == []
    leaving = judge(MONDAY, at(MONDAY, "07:30"), at(MONDAY, "15:59", second=30))
    assert leaving["codes"] == ["PSW1"] and leaving["early_minutes"] == 1


def test_grace_forgives_without_moving_the_brackets():
    assert domain.bracket(5, grace=5) is None
    assert domain.bracket(6, grace=5) == ("TL1", Decimal("0.5"))
    assert domain.bracket(31, grace=5)[0] == "TL2"
    settings = {**DEFAULT_SETTINGS, "grace_minutes": 5}
    assert judge(MONDAY, at(MONDAY, "07:35"), at(MONDAY, "16:00"),
                 settings=settings)["codes"] == []
    late_and_early = judge(MONDAY, at(MONDAY, "07:36"), at(MONDAY, "15:57"), settings=settings)
    assert late_and_early["codes"] == ["TL1", "PSW1"]  # no grace for leaving early


@given(st.integers(min_value=0, max_value=500), st.integers(min_value=0, max_value=500))
def test_a_longer_delay_never_costs_less(a, b):
    def percent(m):
        found = domain.bracket(m)
        return found[1] if found else Decimal(0)
    low, high = sorted((a, b))
    assert percent(low) <= percent(high) <= percent(None)


def test_a_configured_table_and_its_checks():
    table = ((15, Decimal("0.25")), (None, Decimal("1")))
    assert domain.bracket(15, table) == ("TL1", Decimal("0.25"))
    assert domain.bracket(16, table) == ("TL2", Decimal("1"))
    assert domain.bracket_problems(table) == []
    assert domain.bracket_problems(((30, Decimal(1)), (20, Decimal(2)), (None, Decimal(3))))
    assert domain.bracket_problems(((30, Decimal(1)), (60, Decimal(2))))
    assert domain.bracket_problems(((30, Decimal(2)), (None, Decimal(1))))


# -- day status ----------------------------------------------------------------------------

def test_present_late_early_absent_and_missing_records():
    assert judge(MONDAY, at(MONDAY, "07:10"), at(MONDAY, "16:05"))["status"] == "present"
    both = judge(MONDAY, at(MONDAY, "08:05"), at(MONDAY, "15:50"))
    assert both["codes"] == ["TL2", "PSW1"] and both["deduction"] == Decimal("1.5")
    assert (both["late_minutes"], both["early_minutes"]) == (35, 10)
    no_out = judge(MONDAY, at(MONDAY, "07:20"))
    assert no_out["codes"] == ["PSW4"] and no_out["deduction"] == 2
    no_in = judge(MONDAY, check_out=at(MONDAY, "16:00"))
    assert no_in["codes"] == ["TL4"]
    absent = judge(MONDAY)
    assert absent["status"] == "absent" and absent["deduction"] == Decimal(4)
    assert judge(SATURDAY)["status"] == "day_off"


def test_the_day_deduction_never_exceeds_an_absence():
    table = ((None, Decimal("3")),)
    settings = {**DEFAULT_SETTINGS, "tl_brackets": table, "psw_brackets": table}
    result = judge(MONDAY, at(MONDAY, "12:00"), at(MONDAY, "12:01"), settings=settings)
    assert result["codes"] == ["TL1", "PSW1"] and result["deduction"] == Decimal(4)


@pytest.mark.parametrize("tz, codes, late", [(WIB, [], 0), (WITA, ["TL2"], 60),
                                              (WIT, ["TL4"], 120)])
def test_one_instant_is_judged_in_each_unit_time_zone(tz, codes, late):
    instant = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)  # 07:30 WIB, 08:30 WITA, 09:30 WIT
    result = judge(MONDAY, instant, at(MONDAY, "16:00", tz), tz=tz)
    assert result["codes"] == codes and result["late_minutes"] == late


def test_time_zone_names_and_local_dates():
    assert domain.zone("WITA") == domain.zone(WITA)
    late_evening = datetime(2026, 4, 6, 16, 30, tzinfo=UTC)
    assert domain.local_date(late_evening, WIB) == MONDAY
    assert domain.local_date(late_evening, WIT) == MONDAY + timedelta(days=1)  # 01:30 WIT
    assert domain.day_closes_at(MONDAY, WITA, DEFAULT_SETTINGS) == datetime(
        2026, 4, 6, 16, 0, tzinfo=UTC)


def test_the_office_window_opens_at_five():
    hours = domain.hours_on(DEFAULT_SETTINGS, MONDAY)
    opens, closes = domain.day_window(MONDAY, hours, WIB, DEFAULT_SETTINGS)
    records = [{"kind": kind, "at": at(MONDAY, clock)} for kind, clock in (
        ("in", "04:59"), ("in", "05:00"), ("in", "07:40"), ("out", "16:10"), ("out", "17:00"))]
    assert domain.day_records(records, opens, closes) == (at(MONDAY, "05:00"),
                                                          at(MONDAY, "17:00"))
    assert domain.day_records(records[:1], opens, closes) == (None, None)


def test_leave_assignment_and_holiday_come_before_the_records():
    leave = {"type": "CS", "start": MONDAY, "end": FRIDAY, "status": "approved"}
    on_leave = judge(MONDAY, leaves=[leave])
    assert (on_leave["status"], on_leave["leave_type"], on_leave["deduction"]) == (
        "leave", "CS", 0)
    pending = {**leave, "status": "requested"}
    assert judge(MONDAY, leaves=[pending])["status"] == "absent"
    trip = {"id": "st-7", "start": MONDAY, "end": MONDAY}
    travel = judge(MONDAY, assignments=[trip])
    assert (travel["status"], travel["assignment"], travel["deduction"]) == (
        "assignment", "st-7", 0)
    holidays = domain.holiday_calendar("3510.03", set(), [
        {"date": MONDAY, "name": "Hari Jadi Kabupaten", "kind": "regional", "unit": "3510"}])
    day = judge(MONDAY, leaves=[leave], holidays=holidays)
    assert day["status"] == "holiday" and day["holiday"]["name"] == "Hari Jadi Kabupaten"


# -- outages -------------------------------------------------------------------------------

def outage(start, end, day=MONDAY, unit="3510"):
    return {"unit": unit, "start": at(day, start), "end": at(day, end)}


def test_an_outage_over_the_start_forgives_lateness():
    down = [outage("07:00", "08:15")]
    result = judge(MONDAY, at(MONDAY, "08:40"), at(MONDAY, "16:00"), outages=down)
    assert result["codes"] == [] and result["excused"] == ["check-in"]
    assert result["late_minutes"] == 70  # kept for the supervisor
    assert judge(MONDAY, check_out=at(MONDAY, "16:00"), outages=down)["codes"] == []
    later = [outage("09:00", "10:00")]  # not over the start: lateness stands
    assert judge(MONDAY, at(MONDAY, "08:40"), at(MONDAY, "16:00"),
                 outages=later)["codes"] == ["TL3"]


def test_an_outage_over_the_end_forgives_early_leave_and_a_whole_day_is_no_absence():
    evening = [outage("15:30", "18:00")]
    result = judge(MONDAY, at(MONDAY, "07:30"), outages=evening)
    assert result["codes"] == [] and result["excused"] == ["check-out"]
    assert judge(MONDAY, outages=evening)["status"] == "absent"  # no record, start not covered
    whole = judge(MONDAY, outages=[outage("06:00", "17:00")])
    assert whole["status"] == "outage" and whole["deduction"] == 0


def test_outages_apply_to_the_declared_subtree():
    down = [outage("07:00", "08:00", unit="3510.03"), outage("07:00", "08:00", unit="3510.04")]
    assert domain.outages_for("3510.03.01", down) == [down[0]]
    assert domain.outages_for("3510.030", down) == []


# -- configuration -------------------------------------------------------------------------

def entry(unit, effective_from, **settings):
    return {"unit": unit, "effective_from": effective_from, "settings": settings}


ENTRIES = [entry("3510", date(2026, 1, 1), grace_minutes=5, week=domain.SIX_DAY_WEEK),
           entry("3510.03", date(2026, 6, 1), grace_minutes=10),
           entry("3510", date(2026, 7, 1), grace_minutes=15)]


def test_settings_are_inherited_and_overridden_field_by_field():
    child = "3510.03.01"
    assert domain.effective_settings(ENTRIES, child, date(2025, 12, 31)) == DEFAULT_SETTINGS
    before = domain.effective_settings(ENTRIES, child, date(2026, 5, 31))
    assert before["grace_minutes"] == 5 and before["week"] == domain.SIX_DAY_WEEK
    after = domain.effective_settings(ENTRIES, child, date(2026, 6, 1))
    assert after["grace_minutes"] == 10 and after["week"] == domain.SIX_DAY_WEEK
    # the Pemda's later change does not override the nearer unit's own setting
    settings, sources = domain.resolve_settings(ENTRIES, child, date(2026, 8, 1))
    assert settings["grace_minutes"] == 10
    assert sources == {"grace_minutes": ("3510.03", date(2026, 6, 1)),
                       "week": ("3510", date(2026, 1, 1))}
    assert domain.effective_settings(ENTRIES, "3510.04", date(2026, 8, 1))["grace_minutes"] == 15
    assert domain.effective_settings(ENTRIES, "3511", date(2026, 8, 1)) == DEFAULT_SETTINGS


@given(st.dates(date(2025, 6, 1), date(2027, 6, 1)), st.dates(date(2025, 6, 1), date(2027, 6, 1)),
       st.sampled_from(["3510", "3510.03", "3510.03.01"]), st.integers(0, 60))
def test_a_change_never_rewrites_a_day_before_its_date(day, effective, unit, grace):
    assume(day < effective)
    changed = [*ENTRIES, entry(unit, effective, grace_minutes=grace)]
    for code in ("3510.03.01", "3510.04"):
        assert domain.effective_settings(changed, code, day) == domain.effective_settings(
            ENTRIES, code, day)


def test_a_change_to_a_closed_day_is_refused():
    closed = date(2026, 4, 30)
    assert domain.config_entry_problems(entry("3510", closed, grace_minutes=5), closed) == [
        ("effective_from", "2026-04-30 is closed: a change applies from 2026-05-01")]
    assert domain.config_entry_problems(entry("3510", date(2026, 5, 1), grace_minutes=5),
                                        closed) == []
    problems = domain.config_entry_problems(entry("3510", date(2026, 5, 1), colour="red",
                                                  tl_brackets=((30, Decimal(1)),)))
    assert [f for f, _ in problems] == ["colour", "tl_brackets"]


# -- holidays and working days -------------------------------------------------------------

def test_the_holiday_calendar_merges_national_regional_and_cuti_bersama():
    national = {date(2026, 5, 1): "Hari Buruh"}
    extra = [{"date": date(2026, 5, 4), "name": "Hari Jadi", "kind": "regional", "unit": "3510"},
             {"date": date(2026, 5, 5), "name": "Cuti bersama", "kind": "cuti_bersama",
              "unit": None},
             {"date": date(2026, 5, 6), "name": "Other regency", "kind": "regional",
              "unit": "3511"}]
    calendar = domain.holiday_calendar("3510.03", national, extra)
    assert sorted(calendar) == [date(2026, 5, 1), date(2026, 5, 4), date(2026, 5, 5)]
    assert calendar[date(2026, 5, 5)]["kind"] == "cuti_bersama"
    assert domain.holiday_calendar("3510", {date(2026, 5, 1)})[date(2026, 5, 1)]["kind"] == (
        "national")


def test_working_days_follow_the_week_and_the_holidays():
    two_weeks = (MONDAY, MONDAY + timedelta(days=11))  # Monday to the next Friday
    assert len(domain.working_days(*two_weeks, DEFAULT_SETTINGS)) == 10
    holidays = domain.holiday_calendar("3510", {MONDAY + timedelta(days=2): "Libur",
                                                SATURDAY: "Libur"})
    days = domain.working_days(*two_weeks, DEFAULT_SETTINGS, holidays)
    assert len(days) == 9 and MONDAY + timedelta(days=2) not in days
    six = {**DEFAULT_SETTINGS, "week": domain.SIX_DAY_WEEK}
    assert len(domain.working_days(*two_weeks, six, holidays)) == 9  # 11 minus 2 holidays
    assert len(domain.working_days(*two_weeks, ROTA_SETTINGS, holidays, PATTERN)) == 9


def test_working_days_follow_a_schedule_change_inside_the_range():
    entries = [entry("3510", date(2026, 4, 11), week=domain.SIX_DAY_WEEK)]
    def settings_on(day):
        return domain.effective_settings(entries, "3510.03", day)
    # 4 April (Sat) is off under the 5-day week, 11 April (Sat) is worked under the 6-day one
    assert len(domain.working_days(date(2026, 4, 4), date(2026, 4, 11), settings_on)) == 6


@given(st.dates(date(2024, 1, 1), date(2028, 12, 31)), st.integers(0, 60),
       st.sets(st.dates(date(2024, 1, 1), date(2029, 3, 1)), max_size=10))
def test_five_day_working_days_are_weekdays_that_are_not_holidays(start, length, off):
    end = start + timedelta(days=length)
    calendar = domain.holiday_calendar("3510", off)
    days = domain.working_days(start, end, DEFAULT_SETTINGS, calendar)
    expected = [start + timedelta(days=n) for n in range(length + 1)]
    assert days == [d for d in expected if d.isoweekday() <= 5 and d not in off]


# -- leave ---------------------------------------------------------------------------------

def request(kind, start, end, **extra):
    return {"type": kind, "start": start, "end": end, **extra}


def test_leave_limits_in_months():
    start = date(2026, 1, 10)
    assert domain.leave_problems(request("CB", start, date(2026, 4, 9)), service_years=6) == []
    assert domain.leave_problems(request("CB", start, date(2026, 4, 10)), service_years=6) == [
        ("end", "CB lasts at most 3 months: until 2026-04-09")]
    assert domain.leave_problems(request("CAP", start, date(2026, 2, 9))) == []
    assert domain.leave_problems(request("CAP", start, date(2026, 2, 10)))[0][0] == "end"
    assert domain.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert domain.add_months(date(2027, 11, 30), 3) == date(2028, 2, 29)


def test_leave_eligibility_and_special_rules():
    start, end = MONDAY, FRIDAY
    assert domain.leave_problems(request("CB", start, end), service_years=4) == [
        ("type", "CB needs 5 years of continuous service")]
    assert domain.leave_problems(request("CT", start, end), service_years=0)[0][0] == "type"
    assert domain.leave_problems(request("CM", start, end, child_order=4))[0][0] == "child_order"
    assert domain.leave_problems(request("CM", start, end, child_order=3)) == []
    assert domain.leave_problems(request("CBer", start, end))[0][0] == "type"
    assert domain.leave_problems(request("XX", start, end))[0][0] == "type"
    assert domain.leave_problems(request("CS", end, start)) == [("end", "before the start")]


def test_annual_leave_is_counted_in_working_days_against_the_balance():
    start, end = MONDAY, MONDAY + timedelta(days=11)
    days = len(domain.working_days(start, end, DEFAULT_SETTINGS))
    ok = domain.leave_problems(request("CT", start, end), days=days, balance=12,
                               service_years=3)
    assert days == 10 and ok == []
    assert domain.leave_problems(request("CT", start, end), days=days, balance=9) == [
        ("end", "10 working days asked, 9 left")]
    weekend = domain.working_days(SATURDAY, SATURDAY + timedelta(days=1), DEFAULT_SETTINGS)
    assert domain.leave_problems(request("CT", SATURDAY, SATURDAY + timedelta(days=1)),
                                 days=len(weekend), balance=12)[0] == (
        "start", "no working day in the range")


def test_overlapping_requests_are_refused():
    existing = [{"id": "L1", "start": MONDAY, "end": MONDAY + timedelta(days=2),
                 "status": "approved"},
                {"id": "L2", "start": FRIDAY, "end": FRIDAY, "status": "rejected"},
                {"id": "L3", "start": FRIDAY, "end": FRIDAY, "status": "requested"}]
    new = request("CS", MONDAY + timedelta(days=2), FRIDAY)
    problems = domain.leave_problems(new, existing=existing)
    assert [p[1].split()[2] for p in problems] == ["L1", "L3"]
    assert domain.leave_problems(request("CS", MONDAY + timedelta(days=3),
                                         MONDAY + timedelta(days=3)), existing=existing) == []
    assert domain.leave_problems({**existing[0], "type": "CS"}, existing=existing) == []


@pytest.mark.parametrize("previous, taken, carried, available, remaining", [
    (0, 0, 0, 12, 12), (3, 5, 3, 15, 10), (6, 18, 6, 18, 0), (12, 0, 6, 18, 18),
    (-2, 1, 0, 12, 11)])
def test_annual_leave_balance_with_carry_over(previous, taken, carried, available, remaining):
    balance = domain.annual_leave_balance(previous, taken)
    assert (balance["carried"], balance["available"], balance["remaining"]) == (
        carried, available, remaining)


def test_long_leave_removes_that_years_annual_leave_and_the_ledger_chains():
    assert domain.annual_leave_balance(6, 0, long_leave=True)["available"] == 0
    ledger = domain.annual_leave_ledger({2024: 2, 2025: 12, 2026: 0}, 2024, 2027)
    assert [ledger[y]["available"] for y in range(2024, 2028)] == [12, 18, 18, 18]
    assert [ledger[y]["remaining"] for y in range(2024, 2028)] == [10, 6, 18, 18]


@given(st.lists(st.integers(0, 20), min_size=1, max_size=8), st.integers(0, 30))
def test_the_balance_never_exceeds_its_caps(taken, opening):
    ledger = domain.annual_leave_ledger(dict(enumerate(taken, 2020)), 2020, 2019 + len(taken),
                                        opening)
    for year, balance in ledger.items():
        assert balance["carried"] <= 6 and balance["available"] <= 18
        previous = ledger[year - 1]["remaining"] if year > 2020 else opening
        assert balance["carried"] == min(max(previous, 0), 6)


# -- geofence ------------------------------------------------------------------------------

OFFICE = {"name": "Kantor Dinas", "latitude": -8.2192, "longitude": 114.3691, "radius_m": 100}


def offset(lat, lon, north_m, east_m):
    """A point ``north_m``/``east_m`` metres from (lat, lon), flat-earth (fine under 10 km)."""
    per_degree = domain.EARTH_RADIUS_M * radians(1)
    return lat + north_m / per_degree, lon + east_m / (per_degree * cos(radians(lat)))


def test_known_distances():
    assert domain.distance_m(-6.2, 106.8, -6.2, 106.8) == 0
    one_degree = domain.distance_m(0, 100, 1, 100)
    assert abs(one_degree - 111_195) < 1
    jakarta_surabaya = domain.distance_m(-6.2088, 106.8456, -7.2575, 112.7521)
    assert 660_000 < jakarta_surabaya < 665_000


@given(st.floats(-11, 6), st.floats(95, 141), st.floats(0, 5000), st.floats(0, 360))
def test_distance_matches_a_known_offset(lat, lon, metres, bearing):
    north, east = metres * cos(radians(bearing)), metres * cos(radians(bearing - 90))
    lat2, lon2 = offset(lat, lon, north, east)
    measured = domain.distance_m(lat, lon, lat2, lon2)
    assert abs(measured - metres) <= 0.005 * metres + 0.01
    assert measured == pytest.approx(domain.distance_m(lat2, lon2, lat, lon))


@given(st.floats(0, 400), st.floats(0, 360), st.one_of(st.none(), st.floats(0, 400)),
       st.integers(10, 500))
def test_inside_when_within_the_radius_with_good_enough_accuracy(metres, bearing, accuracy,
                                                                 radius):
    office = {**OFFICE, "radius_m": radius}
    lat, lon = offset(OFFICE["latitude"], OFFICE["longitude"], metres * cos(radians(bearing)),
                      metres * cos(radians(bearing - 90)))
    verdict = domain.geofence(lat, lon, accuracy, [office])
    distance = domain.distance_m(lat, lon, office["latitude"], office["longitude"])
    assert verdict["distance_m"] == distance and verdict["radius_m"] == radius
    assert verdict["inside"] == (distance <= radius and accuracy is not None
                                 and accuracy <= radius)
    if not verdict["inside"]:
        assert verdict["reason"] == ("outside" if distance > radius else "accuracy")
    if accuracy is not None and accuracy > radius:
        assert not verdict["inside"]  # a reading vaguer than the radius is never accepted


def test_several_places_give_the_accepting_or_the_nearest_one():
    branch = {"name": "UPT", "latitude": -8.3, "longitude": 114.3, "radius_m": 50}
    near_branch = offset(branch["latitude"], branch["longitude"], 30, 0)
    verdict = domain.geofence(*near_branch, 20, [OFFICE, branch])
    assert verdict["inside"] and verdict["place"] is branch
    vague = domain.geofence(*near_branch, 80, [OFFICE, branch])
    assert (vague["inside"], vague["reason"], vague["place"]) == (False, "accuracy", branch)
    far = offset(OFFICE["latitude"], OFFICE["longitude"], 0, 400)
    outside = domain.geofence(*far, 5, [branch, OFFICE])
    assert (outside["reason"], outside["place"]) == ("outside", OFFICE)
    assert 399 < outside["distance_m"] < 401
    assert domain.geofence(*far, 5, [])["reason"] == "no_place"


# -- suspicion flags -----------------------------------------------------------------------

def reading(nip, clock, north_m=0, east_m=0, day=MONDAY, device="dev-1", **extra):
    lat, lon = offset(OFFICE["latitude"], OFFICE["longitude"], north_m, east_m)
    return {"nip": nip, "device_id": device, "at": at(day, clock), "latitude": lat,
            "longitude": lon, "accuracy_m": 10, "mock": False, **extra}


def test_mock_location_and_clock_drift():
    assert domain.mock_flags(reading("A", "07:20", mock=True)) == ["mock_location"]
    assert domain.mock_flags(reading("A", "07:20")) == []
    server = at(MONDAY, "07:20")
    assert domain.drift_flags(server, server - timedelta(seconds=300), 300) == []
    assert domain.drift_flags(server, server + timedelta(seconds=301), 300) == ["clock_drift"]
    assert domain.drift_flags(server, None, 300) == []


def test_impossible_travel():
    first = reading("A", "07:20")
    assert domain.travel_flags(first, reading("A", "07:30", east_m=50_000), 250) == [
        "impossible_travel"]  # 50 km in 10 minutes
    assert domain.travel_flags(first, reading("A", "08:20", east_m=5_000), 250) == []
    assert domain.travel_flags(first, reading("A", "07:20", east_m=15), 250) == []  # jitter
    assert domain.travel_flags(first, reading("A", "07:20", east_m=500), 250) == [
        "impossible_travel"]
    assert domain.travel_flags(None, first, 250) == []


def test_a_device_shared_in_one_morning():
    records = [reading("A", "07:20"), reading("B", "07:25"), reading("C", "13:00"),
               reading("C", "07:21", device="dev-2"),
               reading("D", "07:30", day=MONDAY + timedelta(days=1))]
    assert domain.shared_devices(records, WIB) == {("dev-1", MONDAY): ["A", "B"]}
    assert domain.shared_device_flags(records, WIB) == [["shared_device"], ["shared_device"],
                                                        [], [], []]


def test_record_flags_combine_and_offline_skips_drift():
    previous = reading("A", "07:00", east_m=100_000)  # 300 km/h
    record = reading("A", "07:20", mock=True, device_at=at(MONDAY, "06:00"))
    assert domain.record_flags(record, previous) == ["clock_drift", "impossible_travel",
                                                     "mock_location"]
    assert domain.record_flags(record, None, offline=True) == ["mock_location", "offline"]


# -- PP 94/2021 ----------------------------------------------------------------------------

@pytest.mark.parametrize("days, level", [
    (0, None), (2, None), (3, "oral_warning"), (4, "written_warning"), (6, "written_warning"),
    (7, "written_dissatisfaction"), (10, "written_dissatisfaction"), (11, "allowance_cut_6"),
    (13, "allowance_cut_6"), (14, "allowance_cut_9"), (16, "allowance_cut_9"),
    (17, "allowance_cut_12"), (20, "allowance_cut_12"), (21, "demotion"), (24, "demotion"),
    (25, "removal_from_position"), (27, "removal_from_position"), (28, "dismissal"),
    (40, "dismissal")])
def test_unexcused_absence_thresholds(days, level):
    found = domain.absence_threshold(days)
    assert (found and found["level"]) == level


def test_ten_consecutive_days_reach_dismissal_and_crossings_are_reported_once():
    assert domain.absence_threshold(10, consecutive=10)["level"] == "dismissal"
    assert domain.absence_threshold(10, consecutive=9)["level"] == "written_dissatisfaction"
    assert domain.absence_threshold(11)["text_id"].startswith("pemotongan tunjangan kinerja 25%")
    assert [t["level"] for t in domain.thresholds_crossed(2, 5)] == ["oral_warning",
                                                                   "written_warning"]
    assert domain.thresholds_crossed(5, 6) == []
    assert [t["level"] for t in domain.thresholds_crossed(9, 10, 9, 10)] == ["dismissal"]


def test_a_run_of_absences_skips_days_off():
    statuses = ["absent"] * 4 + ["day_off", "holiday"] + ["absent"] * 3 + ["present", "absent"]
    assert domain.longest_absence_run([{"status": s} for s in statuses]) == 7
