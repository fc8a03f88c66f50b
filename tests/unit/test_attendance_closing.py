"""The day close's pure part: one employee's result from their day and person documents,
and a unit-day's counts."""

from datetime import UTC, date, datetime, time
from decimal import Decimal

from services.attendance import domain

TZ = "Asia/Jakarta"
SETTINGS = domain.DEFAULT_SETTINGS
MONDAY = date(2026, 11, 30)


def at(clock, day=MONDAY, tz=TZ):
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=domain.zone(tz)).astimezone(UTC)


def doc(*records, correction=None):
    return {"records": [{"kind": kind, "at": at(clock), "flags": list(flags)}
                        for kind, clock, *flags in records], "correction": correction}


def compute(day_doc, person=None, day=MONDAY, **kwargs):
    return domain.compute_day(day, day_doc, person or {}, settings=SETTINGS, tz=TZ, **kwargs)


def test_present_late_tl2_and_on_time_out():
    result = compute(doc(("in", "08:10"), ("out", "16:05")))
    assert result["status"] == "present" and result["codes"] == ["TL2"]
    assert result["late_minutes"] == 40 and result["early_minutes"] == 0
    assert result["deduction"] == "1" and result["check_in"] == at("08:10")


def test_first_in_and_last_out_count_and_flags_are_collected():
    result = compute(doc(("in", "07:20", "mock_location"), ("in", "07:40"), ("out", "12:00"),
                         ("out", "16:10", "offline")))
    assert result["codes"] == [] and result["check_out"] == at("16:10")
    assert result["flags"] == ["mock_location", "offline"] and result["deduction"] == "0"


def test_no_record_is_absent_and_a_day_off_is_not():
    assert compute(None)["status"] == "absent" and compute(None)["deduction"] == "4"
    assert compute(None, day=date(2026, 12, 5))["status"] == "day_off"


def test_a_correction_replaces_the_times_it_gives():
    fixed = compute(doc(("in", "09:00"), correction={"check_in": at("07:25"),
                                                     "check_out": None}))
    assert fixed["codes"] == ["PSW4"] and fixed["check_in"] == at("07:25")
    corrected = compute({"correction": {"check_in": at("07:30"), "check_out": at("16:00")}})
    assert corrected["status"] == "present" and corrected["codes"] == []


def test_leave_and_assignment_from_the_person_document():
    leave = {"leaves": [{"type": "CT", "start": "2026-11-30", "end": "2026-12-01",
                         "status": "approved"},
                        {"type": "CS", "start": "2026-11-30", "end": "2026-11-30",
                         "status": "rejected"}]}
    assert compute(None, leave)["status"] == "leave" and compute(None, leave)["leave_type"] == "CT"
    trip = {"assignments": [{"id": "a1", "start": "2026-11-30", "end": "2026-11-30",
                             "status": "active"}]}
    assert compute(None, trip)["status"] == "assignment"
    cancelled = {"assignments": [{**trip["assignments"][0], "status": "cancelled"}]}
    assert compute(None, cancelled)["status"] == "absent"


def test_holiday_and_outage():
    holidays = {MONDAY: {"name": "Hari Jadi", "kind": "regional"}}
    assert compute(None, holidays=holidays)["status"] == "holiday"
    outage = [{"start": at("07:00"), "end": at("09:30")}]
    excused = compute(doc(("in", "09:00"), ("out", "16:00")), outages=outage)
    assert excused["codes"] == [] and excused["excused"] == ["check-in"]


def test_the_result_of_a_wita_unit_is_judged_in_its_zone():
    wita = domain.compute_day(MONDAY, {"records": [
        {"kind": "in", "at": at("07:30", tz="Asia/Makassar"), "flags": []},
        {"kind": "out", "at": at("16:00", tz="Asia/Makassar"), "flags": []}]}, {},
        settings=SETTINGS, tz="Asia/Makassar")
    assert wita["codes"] == []


def test_same_result_ignores_bookkeeping():
    result = compute(doc(("in", "07:00"), ("out", "16:00")))
    assert domain.same_result({**result, "revision": 3, "closed_at": at("23:59")}, result)
    assert not domain.same_result({**result, "codes": ["TL1"]}, result)
    assert not domain.same_result(None, result)


def test_percent_text_has_one_spelling():
    assert [domain.percent_text(Decimal(v)) for v in ("0", "0.5", "2.0", "10", "1.50")] == \
        ["0", "0.5", "2", "10", "1.5"]


def test_close_counts():
    results = [{"status": "present", "codes": []}, {"status": "present", "codes": ["TL2"]},
               {"status": "present", "codes": ["TL1", "PSW1"], "flags": ["offline"]},
               {"status": "absent", "codes": []}, {"status": "leave", "codes": []},
               {"status": "holiday"}, {"status": "outage"}]
    counts = domain.close_counts(results)
    assert counts == {"employees": 7, "present": 3, "on_time": 1, "late": 2, "early_leave": 1,
                      "absent": 1, "leave": 1, "assignment": 0, "holiday": 1, "day_off": 0,
                      "outage": 1, "flagged": 1}
