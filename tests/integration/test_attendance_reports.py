"""Reports over HTTP against the real broker and database: today's presence, monthly recaps
(per employee, per unit, across a transfer), unexcused absences, CSV/XLSX exports, and who may
see what.

Closed days are written here as the day close stores them (``days.result``, the shape agreed in
the module's brief, and ``close_cursor``): that is the closing module's persisted state, which
the reports read; it is not a stand-in for any code of ours."""

import csv
import io
import uuid
import zipfile
from datetime import UTC, date, datetime, time, timedelta

import pytest

from pamong.calendar import national_holidays
from pamong.testing import race, wait_until
from services.attendance import domain
from tests.integration.attendance_support import (
    API,
    EMPLOYEES,
    NEAR,
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    checkin,
    employee_event,
    publish_directory,
    token,
)

pytestmark = pytest.mark.integration

BIDANG, OPD, ROOT, OTHER_OPD = "3510.03.01", "3510.03", "3510", "3510.04"
MONTH = "2026-11"


def day(n):
    return date(2026, 11, n)


def closed_day(db, nip, when, unit, status="present", codes=(), late=None, early=None,
               deduction="0", leave_type=None):
    """A day as the close leaves it: the day document with its ``result``, and the employee
    on the list of the unit-day's close document."""
    opd = ".".join(unit.split(".")[:2])
    result = {"status": status, "codes": list(codes), "late_minutes": late,
              "early_minutes": early, "deduction": deduction, "excused": [], "holiday": None,
              "leave_type": leave_type, "assignment": None, "check_in": None,
              "check_out": None, "flags": [], "revision": 1,
              "closed_at": datetime(2026, 12, 1, tzinfo=UTC)}
    db.days.replace_one({"_id": f"{nip}:{when.isoformat()}"},
                        {"nip": nip, "date": when.isoformat(), "unit": unit, "opd": opd,
                         "records": [], "keys": [], "refused": [], "result": result},
                        upsert=True)
    db.closes.update_one({"_id": f"{unit}:{when.isoformat()}"},
                         {"$set": {"unit": unit, "opd": opd, "date": when.isoformat(),
                                   "state": "closed"}, "$addToSet": {"employees": nip}},
                         upsert=True)


def set_person(db, nip, **fields):
    """Fields of a ``people`` document as the leave, assignment and closing modules store
    them (upserted: the close's timer may have created the document already)."""
    db.people.update_one({"_id": nip}, {"$set": fields, "$inc": {"version": 1}}, upsert=True)


def close_through(db, unit, when):
    """The close's cursor: ``unit`` is closed through ``when``."""
    db.close_cursor.replace_one({"_id": unit}, {"_id": unit, "last_closed": when.isoformat()},
                                upsert=True)


def admin(client):
    return token(client, roles=("admin",), opd=ROOT, sub="bkd-admin")


def get(client, path, tok=None, **params):
    return client.request("GET", f"{API}{path}", token=tok or admin(client), params=params)


def monthly(client, unit=BIDANG, tok=None, **params):
    return get(client, "/reports/monthly", tok, unit=unit, month=MONTH, **params)


def line_of(report, nip):
    return next(line for line in report["employees"] if line["nip"] == nip)


def seed_month(db):
    """A fortnight of the bidang, closed through 9 November."""
    closed_day(db, NIP_STAFF, day(2), BIDANG)
    closed_day(db, NIP_STAFF, day(3), BIDANG, codes=["TL1"], late=12, deduction="0.5")
    closed_day(db, NIP_STAFF, day(4), BIDANG, codes=["TL2", "PSW1"], late=40, early=10,
               deduction="1.5")
    closed_day(db, NIP_STAFF, day(5), BIDANG, status="absent", deduction="4")
    closed_day(db, NIP_STAFF, day(6), BIDANG, status="leave", leave_type="CT")
    closed_day(db, NIP_STAFF, day(7), BIDANG, status="day_off")
    closed_day(db, NIP_STAFF, day(8), BIDANG, status="day_off")
    closed_day(db, NIP_STAFF, day(9), BIDANG, status="assignment")
    closed_day(db, NIP_STAFF2, day(2), BIDANG, codes=["TL4"], early=0, deduction="2")
    closed_day(db, NIP_HEAD, day(2), OPD, codes=["PSW3"], late=0, early=75, deduction="1.5")
    close_through(db, BIDANG, day(9))
    close_through(db, OPD, day(9))


# -- monthly recap ---------------------------------------------------------------------------------

def test_a_monthly_recap_sums_closed_days_and_lists_open_ones(attendance):
    client, db = attendance.client, attendance.db
    seed_month(db)
    r = monthly(client)
    assert r.status_code == 200, r.text
    report = r.json()
    staff = line_of(report, NIP_STAFF)
    assert (staff["days_present"], staff["absences"], staff["leave"]) == (3, 1, {"CT": 1})
    assert staff["brackets"]["TL1"] == {"count": 1, "minutes": 12}
    assert staff["brackets"]["TL2"] == {"count": 1, "minutes": 40}
    assert staff["brackets"]["PSW1"] == {"count": 1, "minutes": 10}
    assert staff["brackets"]["TL4"] == {"count": 0, "minutes": 0}
    assert (staff["assignment_days"], staff["days_off"], staff["closed_days"]) == (1, 2, 8)
    assert staff["deduction"] == "6" and staff["moved"] is False
    # 10 November onwards is not closed: open, never absent
    assert staff["open_days"][0] == "2026-11-10" and staff["open_days"][-1] == "2026-11-30"
    assert staff["no_result_days"] == ["2026-11-01"]  # closed, but nothing for them that day
    kabid = line_of(report, NIP_KABID)  # nothing closed for them: nothing counted
    assert kabid["closed_days"] == 0 and kabid["absences"] == 0 and kabid["deduction"] == "0"
    assert [u["unit"] for u in report["units"]] == [BIDANG]
    total = report["total"]
    assert total["employees"] == 3 and total["deduction"] == "8" and total["absences"] == 1
    assert total["brackets"]["TL4"] == {"count": 1, "minutes": 0}
    # the OPD with its bidang: per-unit totals and a grand total
    wide = monthly(client, unit=OPD, subunits="true").json()
    assert {u["unit"]: u["deduction"] for u in wide["units"]} == {OPD: "1.5", BIDANG: "8"}
    assert wide["total"]["deduction"] == "9.5" and wide["total"]["employees"] == 4
    assert line_of(wide, NIP_HEAD)["brackets"]["PSW3"] == {"count": 1, "minutes": 75}
    # the OPD alone has only its head
    assert [line["nip"] for line in monthly(client, unit=OPD).json()["employees"]] == [NIP_HEAD]
    # the employee's own recap says the same
    own = get(client, f"/reports/monthly/{NIP_STAFF}", token(client, NIP_STAFF), month=MONTH)
    assert own.status_code == 200, own.text
    assert {k: own.json()[k] for k in staff} == staff and own.json()["month"] == MONTH


def test_a_transfer_mid_month_moves_the_recap(attendance, config):
    client, db = attendance.client, attendance.db
    for n in range(2, 7):  # the first week in the bidang
        closed_day(db, NIP_STAFF, day(n), BIDANG, codes=["TL1"] if n == 3 else [],
                   late=5 if n == 3 else 0, deduction="0.5" if n == 3 else "0")
    row = next(e for e in EMPLOYEES if e[0] == NIP_STAFF)
    publish_directory(config, "employee.upserted",
                      employee_event(NIP_STAFF, row[1], OTHER_OPD, None, row[4], False,
                                     version=2))
    wait_until(lambda: db.employees.find_one({"_id": NIP_STAFF})["unit"] == OTHER_OPD,
               timeout=15, message="the replica saw the transfer")
    for n in range(9, 14):  # the second week at the Dinas Pendidikan
        closed_day(db, NIP_STAFF, day(n), OTHER_OPD, status="absent" if n == 13 else "present",
                   deduction="4" if n == 13 else "0")
    for unit in (BIDANG, OTHER_OPD):
        close_through(db, unit, day(13))

    old = line_of(monthly(client, BIDANG).json(), NIP_STAFF)
    assert old["moved"] is True and old["unit"] == OTHER_OPD
    assert (old["closed_days"], old["days_present"], old["absences"]) == (5, 5, 0)
    assert old["deduction"] == "0.5" and old["open_days"] == []
    new = monthly(client, OTHER_OPD).json()
    moved_in = line_of(new, NIP_STAFF)
    assert moved_in["moved"] is False
    assert (moved_in["closed_days"], moved_in["absences"], moved_in["deduction"]) == (5, 1, "4")
    assert {line["nip"] for line in new["employees"]} == {NIP_STAFF, NIP_OTHER}
    own = get(client, f"/reports/monthly/{NIP_STAFF}", month=MONTH).json()
    assert (own["closed_days"], own["days_present"], own["absences"]) == (10, 9, 1)
    assert own["deduction"] == "4.5"


def test_a_day_recorded_and_closed_for_real_shows_in_the_reports(attendance):
    """Check-in and check-out (an offline upload: the close takes only ended days) and the
    closing module's own close endpoint; no stored state written by hand but the schedule."""
    client, db = attendance.client, attendance.db
    today = domain.local_date(datetime.now(UTC), "Asia/Jakarta")
    past = next((d for d in (today - timedelta(days=1), today - timedelta(days=2))
                 if d not in national_holidays(d.year)), None)
    if past is None:
        pytest.skip("the two days before today are both national holidays")
    # a week of seven office days from long ago, as the configuration module stores it (its
    # API accepts only dates from today on), so the past day is a working day
    week = {str(d): {"start": "07:30", "end": "16:00", "break_minutes": 60} for d in range(1, 8)}
    db.unit_config.replace_one({"_id": OPD}, {"_id": OPD, "version": 1, "entries": [
        {"effective_from": "2020-01-01", "settings": {"week": week}, "by": "test",
         "at": datetime(2020, 1, 1, tzinfo=UTC)}]}, upsert=True)
    wib = domain.zone("Asia/Jakarta")

    def record(key, kind, clock):
        at = datetime.combine(past, clock, tzinfo=wib)
        return {"key": key, "kind": kind, "latitude": NEAR[0], "longitude": NEAR[1],
                "accuracy_m": 8, "device_id": "tablet-1", "device_time": at.isoformat()}

    batch = {"records": [record("real-close-in-1", "in", time(7, 45)),
                         record("real-close-out-1", "out", time(16, 5))]}
    r = client.request("POST", f"{API}/records/offline", token=token(client, NIP_STAFF),
                       json=batch)
    assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    close = client.request("POST", f"{API}/units/{BIDANG}/days/{past.isoformat()}/close",
                           token=admin(client))
    assert close.status_code == 200, close.text

    month = past.strftime("%Y-%m")
    report = get(client, "/reports/monthly", unit=BIDANG, month=month).json()
    staff = line_of(report, NIP_STAFF)
    assert past.isoformat() not in staff["open_days"]
    assert staff["days_present"] == 1 and staff["closed_days"] == 1
    assert staff["brackets"]["TL1"] == {"count": 1, "minutes": 15}
    assert staff["brackets"]["PSW1"]["count"] == 0 and staff["deduction"] == "0.5"
    nobody = line_of(report, NIP_STAFF2)  # no record at all: absent, once the day is closed
    assert (nobody["absences"], nobody["deduction"]) == (1, "4")
    assert report["total"]["absences"] == 2 and report["total"]["deduction"] == "8.5"
    absences = get(client, "/reports/absences", unit=BIDANG, year=past.year).json()
    lines = {line["nip"]: line for line in absences["employees"]}
    assert past.isoformat() in lines[NIP_STAFF2]["dates"]
    assert past.isoformat() not in lines[NIP_STAFF]["dates"]


# -- today -----------------------------------------------------------------------------------------

def test_today_counts_and_lists_live_presence_without_calling_anyone_absent(attendance):
    client, db = attendance.client, attendance.db
    today = domain.local_date(datetime.now(UTC), "Asia/Jakarta")
    # every day a working day from 00:00, so the check-in below counts whenever this runs
    week = {str(d): {"start": "00:00", "end": "23:59", "break_minutes": 0} for d in range(1, 8)}
    r = client.request("POST", f"{API}/units/{OPD}/config", token=admin(client),
                       json={"effective_from": today.isoformat(),
                             "settings": {"week": week, "checkin_from": "00:00"}})
    assert r.status_code == 201, r.text
    iso = today.isoformat()
    set_person(db, NIP_KABID, leaves=[
        {"id": "l1", "type": "CS", "start": iso, "end": iso, "status": "approved"}])
    set_person(db, NIP_HEAD, assignments=[
        {"id": "a1", "start": iso, "end": iso, "status": "active", "place": {
            "name": "Pendopo", "latitude": -8.2, "longitude": 114.3, "radius_m": 100}}])
    assert checkin(client, NIP_STAFF, mock=True).status_code == 201
    assert checkin(client, NIP_STAFF, kind="out").status_code == 201
    late = int((datetime.now(UTC).astimezone(domain.zone("Asia/Jakarta"))
                - datetime.combine(today, datetime.min.time(), domain.zone("Asia/Jakarta"))
                ).total_seconds() // 60)

    r = get(client, f"/units/{OPD}/today", subunits="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["date"] == iso and "absent" not in r.text
    people = {p["nip"]: p for p in body["people"]}
    assert set(people) == {NIP_HEAD, NIP_KABID, NIP_STAFF, NIP_STAFF2}
    counts = body["counts"]
    if today in national_holidays(today.year):  # an office day off: nobody is expected
        assert counts["off_today"] == 4 and counts["checked_in"] == 1
        return
    assert people[NIP_KABID]["status"] == "leave" and people[NIP_KABID]["leave_type"] == "CS"
    assert people[NIP_HEAD]["status"] == "assignment"
    assert people[NIP_STAFF2]["status"] == "not_yet_in"
    staff = people[NIP_STAFF]
    assert staff["status"] == "checked_in" and staff["flags"] == ["mock_location"]
    assert staff["check_in"] is not None and staff["check_out"] is not None
    assert late - 1 <= staff["late_minutes"] <= late + 1
    expected = domain.bracket(staff["late_minutes"])
    assert staff["code"] == (expected and expected[0])
    assert counts == {"employees": 4, "checked_in": 1, "on_time": int(expected is None),
                      "late": int(expected is not None), "not_yet_in": 1, "checked_out": 1,
                      "flagged": 1, "on_leave": 1, "on_assignment": 1, "off_today": 0}
    # without the subtree: the OPD's own people only
    alone = get(client, f"/units/{OPD}/today").json()
    assert [p["nip"] for p in alone["people"]] == [NIP_HEAD]


# -- unexcused absences ----------------------------------------------------------------------------

def test_absences_report_the_pp94_threshold_with_consecutive_runs(attendance):
    client, db = attendance.client, attendance.db
    # Thu 5, Fri 6, Mon 9, Tue 10 November: four working days in a row across a weekend
    set_person(db, NIP_STAFF, absences={
        "2026": ["2026-11-05", "2026-11-06", "2026-11-09", "2026-11-10"],
        "2025": ["2025-03-03"]})
    ten = [d.isoformat() for d in domain.working_days(day(16), day(27),
                                                      domain.DEFAULT_SETTINGS)]
    assert len(ten) == 10
    set_person(db, NIP_STAFF2, absences={"2026": ten})
    set_person(db, NIP_KABID, absences={"2026": ["2026-02-02", "2026-06-01"]})
    r = get(client, "/reports/absences", unit=BIDANG, year=2026)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [line["nip"] for line in body["employees"]] == [NIP_STAFF2, NIP_STAFF, NIP_KABID]
    lines = {line["nip"]: line for line in body["employees"]}
    assert lines[NIP_STAFF]["days"] == 4 and lines[NIP_STAFF]["consecutive"] == 4
    assert lines[NIP_STAFF]["threshold"]["level"] == "written_warning"
    assert lines[NIP_STAFF]["threshold"]["text_id"] == "teguran tertulis"
    assert lines[NIP_STAFF2]["consecutive"] == 10
    assert lines[NIP_STAFF2]["threshold"]["level"] == "dismissal"
    assert lines[NIP_KABID]["consecutive"] == 1 and lines[NIP_KABID]["threshold"] is None
    assert body["reached"] == 2
    assert get(client, "/reports/absences", unit=BIDANG, year=2025).json()["reached"] == 0


# -- exports ---------------------------------------------------------------------------------------

def xlsx_parts(content):
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        return (book.read("xl/worksheets/sheet1.xml").decode(),
                book.read("xl/sharedStrings.xml").decode())


def test_monthly_and_absence_exports_as_csv_and_xlsx(attendance):
    client, db = attendance.client, attendance.db
    seed_month(db)
    r = monthly(client, format="csv")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == \
        'attachment; filename="rekap-presensi-3510.03.01-2026-11.csv"'
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    header = rows[0]
    assert header[:4] == ["NIP", "Nama", "Unit", "Hadir"] and header[-1] == "Potongan TPP (%)"
    assert {"TL1", "TL4", "PSW1", "PSW4", "Tanpa Keterangan", "Cuti", "Dinas Luar"} <= set(header)
    staff = dict(zip(header, next(row for row in rows if row[0] == NIP_STAFF), strict=True))
    assert (staff["Nama"], staff["Hadir"], staff["TL1"], staff["TL1 (menit)"]) == \
        ("Budi Prasetyo", "3", "1", "12")
    assert (staff["Tanpa Keterangan"], staff["Cuti"], staff["Rincian Cuti"],
            staff["Dinas Luar"], staff["Potongan TPP (%)"]) == ("1", "1", "CT 1", "1", "6")
    assert len(rows) == 4  # header + the bidang's three employees

    x = monthly(client, format="xlsx", subunits="true", unit=OPD)
    assert x.status_code == 200 and x.headers["Content-Type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml")
    assert 'filename="rekap-presensi-3510.03-dan-subunit-2026-11.xlsx"' in \
        x.headers["Content-Disposition"]
    sheet, strings = xlsx_parts(x.content)
    assert NIP_STAFF in strings and "Potongan TPP (%)" in strings and "JUMLAH" in strings
    assert "<v>9.5</v>" in sheet and "<v>6</v>" in sheet  # the total and Budi's deduction

    own = get(client, f"/reports/monthly/{NIP_STAFF}", token(client, NIP_STAFF), month=MONTH,
              format="xlsx")
    assert own.status_code == 200
    assert f'rekap-presensi-{NIP_STAFF}-2026-11.xlsx' in own.headers["Content-Disposition"]

    set_person(db, NIP_STAFF, absences={"2026": ["2026-11-05", "2026-11-06", "2026-11-09"]})
    a = get(client, "/reports/absences", unit=BIDANG, year=2026, format="csv")
    assert 'filename="rekap-tanpa-keterangan-3510.03.01-2026.csv"' in \
        a.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(a.content.decode("utf-8-sig"))))
    assert rows[0][:5] == ["NIP", "Nama", "Unit", "Tahun", "Tanpa Keterangan (hari)"]
    assert rows[1][0] == NIP_STAFF and rows[1][4] == "3" and rows[1][6] == "teguran lisan"
    ax = get(client, "/reports/absences", unit=BIDANG, year=2026, format="xlsx")
    sheet, strings = xlsx_parts(ax.content)
    assert "teguran lisan" in strings and "<v>2026</v>" in sheet


def test_concurrent_and_repeated_reads_agree(attendance):
    client, db = attendance.client, attendance.db
    seed_month(db)
    answers = race(range(6), lambda _: monthly(client, format="csv"))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1
    assert monthly(client, format="csv").content == answers[0].content


# -- bad input and authorization -------------------------------------------------------------------

def test_bad_queries_are_refused_with_field_errors(attendance):
    client = attendance.client
    for params, field in (({"month": "2026-13"}, "month"), ({"month": "11-2026"}, "month"),
                          ({"format": "pdf"}, "format"), ({"month": "2999-01"}, "month")):
        r = get(client, "/reports/monthly", **{"unit": BIDANG, "month": MONTH, **params})
        assert r.status_code == 422 and field in r.json()["errors"], (params, r.text)
    assert "unit" in get(client, "/reports/monthly", month=MONTH).json()["errors"]
    assert "year" in get(client, "/reports/absences", unit=BIDANG, year=1900).json()["errors"]
    assert "month" in get(client, f"/reports/monthly/{NIP_STAFF}").json()["errors"]
    assert get(client, "/units/3510.99/today").status_code == 404
    assert get(client, "/reports/monthly", unit="3510.99", month=MONTH).status_code == 404
    assert get(client, "/reports/monthly/199912312020121999", month=MONTH).status_code == 404


def test_authorization_matrix(attendance):
    client = attendance.client
    unit_paths = [("/units/3510.03.01/today", {}),
                  ("/reports/monthly", {"unit": BIDANG, "month": MONTH}),
                  ("/reports/absences", {"unit": BIDANG, "year": 2026})]
    own = (f"/reports/monthly/{NIP_STAFF}", {"month": MONTH})
    every = [*unit_paths, own]

    def status(path, params, tok):
        return client.request("GET", f"{API}{path}", token=tok, params=params).status_code

    def expect(tok, code, paths=every):
        for path, params in paths:
            assert status(path, params, tok) == code, (path, tok)

    expect(admin(client), 200)
    expect(token(client, roles=("service",), opd=None, sub="svc"), 200)
    expect(token(client, roles=("opd_admin",), opd=OPD), 200)
    expect(token(client, roles=("opd_admin",), opd=BIDANG), 200)  # reads its whole OPD
    expect(token(client, NIP_HEAD, roles=("pimpinan",), opd=OPD), 200)
    expect(token(client, NIP_KABID, roles=("pimpinan",), opd=BIDANG), 200)
    expect(token(client, roles=("verifikator",), opd=BIDANG, sub="verif"), 200)
    # another OPD's staff: the unit and the employee do not exist for them
    expect(token(client, roles=("opd_admin",), opd=OTHER_OPD), 404)
    expect(token(client, NIP_OTHER, roles=("pimpinan",), opd=OTHER_OPD), 404)
    expect(token(client, roles=("verifikator",), opd=OTHER_OPD, sub="v2"), 404)
    # a supervisor of the bidang does not see the OPD above it
    kabid = token(client, NIP_KABID, roles=("pimpinan",), opd=BIDANG)
    for path, params in [("/units/3510.03/today", {}),
                         ("/reports/monthly", {"unit": OPD, "month": MONTH}),
                         ("/reports/absences", {"unit": OPD})]:
        assert status(path, params, kabid) == 404, path
    assert status(f"/reports/monthly/{NIP_HEAD}", {"month": MONTH}, kabid) == 404
    # an employee: their own recap only
    staff = token(client, NIP_STAFF)
    expect(staff, 403, unit_paths)
    assert status(*own, staff) == 200
    assert status(f"/reports/monthly/{NIP_STAFF2}", {"month": MONTH}, staff) == 404
    assert status(f"/reports/monthly/{NIP_OTHER}", {"month": MONTH}, staff) == 404
    # the directory names the kabid as Budi's supervisor: she sees his recap as pegawai too
    assert status(*own, token(client, NIP_KABID)) == 200
    # roles that read no attendance, and no token
    expect(token(client, roles=("petugas",), opd=OPD, sub="petugas"), 403)
    expect(token(client, roles=("pemohon",), opd=None, sub=str(uuid.uuid4())), 403)
    for path, params in every:
        assert client.request("GET", f"{API}{path}", params=params).status_code == 401
