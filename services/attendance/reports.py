"""Reports (read-only): a unit's presence today, monthly recaps per employee and per unit,
the year-to-date unexcused absences with their PP 94/2021 threshold, and CSV/XLSX exports.

- **Today** judges the live records of today's day documents with the domain's rules (the
  schedule, grace and outages in force, leave and assignments) and calls nobody absent: an
  employee without a check-in is *belum hadir* until the day is closed.
- **Monthly recaps** only add up what the day close stored (``days.result``); a day without a
  result is *open* (not closed yet) and counts as nothing, so a recap never reports a truant
  the close has not confirmed. Each day counts in the unit stored in its document (an
  employee who moved mid-month shows in both units' recaps); an employee's own recap covers
  all their days.
- **Absences** read ``people.absences`` (written by the close) and report the threshold
  reached; runs of consecutive absences are measured on the employee's working-day calendar.

Cost: a unit's employees come from a replica scan by unit (grows with staff); their days are
``_id $in`` lookups (employees x days of the month); who moved out of the unit during the
month comes from the month's close documents, also by ``_id`` (units x days). Nothing scans
``days``, so a recap costs the same with a year or ten of history stored.
"""

import csv
import io
from datetime import date
from decimal import Decimal

import xlsxwriter
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from pamong.auth.principal import subtree_filter
from pamong.replica import EMPLOYEES, UNITS
from pamong.storage import by_ids, db_now
from pamong.web import not_found, route, unprocessable
from services.attendance import domain
from services.attendance.access import (
    API,
    STAFF_READERS,
    UNKNOWN_UNIT,
    employee_or_404,
    may_see_unit,
)
from services.attendance.records import active_assignments, rota_of
from services.attendance.store import (
    CLOSES,
    CURSORS,
    DAYS,
    PEOPLE,
    day_id,
    day_window_for,
    employees_of,
)

TAGS = ["reports"]
FORMATS = ("json", "csv", "xlsx")
# year 0000 has no calendar (Python's dates start at year 1): refused, not a 500
MONTH = validate.Regexp(r"^(?!0000)[0-9]{4}-(0[1-9]|1[0-2])$", error="a month as YYYY-MM")
DAY_FIELDS = {"_id": 1, "nip": 1, "date": 1, "unit": 1, "records": 1, "correction": 1,
              "result": 1}


# -- schemas ---------------------------------------------------------------------------------

class TodayQuery(Schema):
    subunits = fields.Boolean(load_default=False, metadata={
        "description": "include the units below"})


class ExportFormat(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(FORMATS), metadata={
        "description": "json (default), csv (UTF-8 with BOM, comma) or xlsx"})


class MonthlyQuery(ExportFormat):
    unit = fields.String(required=True, validate=validate.Length(min=1, max=64))
    month = fields.String(required=True, validate=MONTH)
    subunits = fields.Boolean(load_default=False)


class EmployeeMonthQuery(ExportFormat):
    month = fields.String(required=True, validate=MONTH)


class AbsenceQuery(ExportFormat):
    unit = fields.String(required=True, validate=validate.Length(min=1, max=64))
    year = fields.Integer(load_default=None, validate=validate.Range(min=2000, max=2100),
                          metadata={"description": "default: this year"})
    subunits = fields.Boolean(load_default=False)


class TodayCounts(Schema):
    employees = fields.Integer(required=True)
    checked_in = fields.Integer(required=True)
    on_time = fields.Integer(required=True)
    late = fields.Integer(required=True)
    not_yet_in = fields.Integer(required=True, metadata={"description": "belum hadir"})
    checked_out = fields.Integer(required=True)
    flagged = fields.Integer(required=True)
    on_leave = fields.Integer(required=True)
    on_assignment = fields.Integer(required=True)
    off_today = fields.Integer(required=True, metadata={"description": "holiday or day off"})


class PresenceLine(Schema):
    nip = fields.String(required=True)
    name = fields.String(allow_none=True)
    unit = fields.String(required=True)
    status = fields.String(required=True, metadata={
        "description": "checked_in | not_yet_in | leave | assignment | holiday | day_off"})
    check_in = fields.String(allow_none=True, metadata={"description": "HH:MM, unit time"})
    check_out = fields.String(allow_none=True)
    late_minutes = fields.Integer(allow_none=True)
    code = fields.String(allow_none=True, metadata={"description": "TL bracket, if late"})
    leave_type = fields.String(allow_none=True)
    flags = fields.List(fields.String(), required=True)


class TodayOut(Schema):
    unit = fields.String(required=True)
    date = fields.String(required=True)
    subunits = fields.Boolean(required=True)
    generated_at = fields.DateTime(required=True)
    counts = fields.Nested(TodayCounts, required=True)
    people = fields.List(fields.Nested(PresenceLine), required=True)


class BracketSlot(Schema):
    count = fields.Integer(required=True)
    minutes = fields.Integer(required=True)


class RecapFields(Schema):
    closed_days = fields.Integer(required=True)
    days_present = fields.Integer(required=True)
    brackets = fields.Dict(keys=fields.String(), values=fields.Nested(BracketSlot), required=True,
                           metadata={"description": "TL1..TL4, PSW1..PSW4: count, minutes"})
    absences = fields.Integer(required=True, metadata={"description": "tanpa keterangan"})
    leave_days = fields.Integer(required=True)
    leave = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                        metadata={"description": "days by leave type"})
    assignment_days = fields.Integer(required=True)
    holidays = fields.Integer(required=True)
    days_off = fields.Integer(required=True)
    outage_days = fields.Integer(required=True)
    deduction = fields.String(required=True, metadata={
        "description": "TPP deduction, percent: the sum of the closed days' deductions"})


class EmployeeRecap(RecapFields):
    nip = fields.String(required=True)
    name = fields.String(allow_none=True)
    unit = fields.String(required=True, metadata={"description": "current unit"})
    moved = fields.Boolean(required=True, metadata={
        "description": "now in a unit outside the report (days before the move count here)"})
    open_days = fields.List(fields.String(), required=True, metadata={
        "description": "days up to today not closed yet: not counted"})
    no_result_days = fields.List(fields.String(), required=True, metadata={
        "description": "days of a closed period the close gave no result (e.g. not yet "
                       "employed): not counted"})


class UnitTotals(RecapFields):
    unit = fields.String(required=True)
    name = fields.String(allow_none=True)
    employees = fields.Integer(required=True)
    open_days = fields.Integer(required=True)


class MonthlyOut(Schema):
    unit = fields.String(required=True)
    name = fields.String(allow_none=True)
    month = fields.String(required=True)
    subunits = fields.Boolean(required=True)
    employees = fields.List(fields.Nested(EmployeeRecap), required=True)
    units = fields.List(fields.Nested(UnitTotals), required=True)
    total = fields.Nested(UnitTotals, required=True)


class EmployeeMonthOut(EmployeeRecap):
    month = fields.String(required=True)


class ThresholdReached(Schema):
    level = fields.String(required=True)
    text = fields.String(required=True)
    text_id = fields.String(required=True)
    to = fields.Integer(allow_none=True)
    days = fields.Integer(required=True)
    consecutive = fields.Integer(required=True)

    class Meta:
        include = {"from": fields.Integer(required=True)}


class AbsenceLine(Schema):
    nip = fields.String(required=True)
    name = fields.String(allow_none=True)
    unit = fields.String(required=True)
    days = fields.Integer(required=True)
    dates = fields.List(fields.String(), required=True)
    consecutive = fields.Integer(required=True, metadata={
        "description": "longest run of working days absent in a row"})
    threshold = fields.Nested(ThresholdReached, allow_none=True, metadata={
        "description": "PP 94/2021 level reached (reported, not imposed)"})


class AbsencesOut(Schema):
    unit = fields.String(required=True)
    year = fields.Integer(required=True)
    subunits = fields.Boolean(required=True)
    reached = fields.Integer(required=True, metadata={
        "description": "employees at or above the first threshold"})
    employees = fields.List(fields.Nested(AbsenceLine), required=True)


# -- exports -----------------------------------------------------------------------------------

MONTHLY_HEADERS = (["NIP", "Nama", "Unit", "Hadir"]
                   + [h for code in domain.BRACKET_CODES for h in (code, f"{code} (menit)")]
                   + ["Tanpa Keterangan", "Cuti", "Rincian Cuti", "Dinas Luar", "Libur",
                      "Belum Ditutup", "Potongan TPP (%)"])
ABSENCE_HEADERS = ["NIP", "Nama", "Unit", "Tahun", "Tanpa Keterangan (hari)",
                   "Berturut-turut (hari)", "Sanksi PP 94/2021", "Tanggal"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORTS = ("text/csv", XLSX)  # ?format=csv|xlsx, documented besides the JSON


def monthly_row(line):
    brackets = [v for code in domain.BRACKET_CODES
                for v in (line["brackets"].get(code, {}).get("count", 0),
                          line["brackets"].get(code, {}).get("minutes", 0))]
    leave = ", ".join(f"{kind} {days}" for kind, days in sorted(line["leave"].items()))
    return ([line["nip"], line["name"] or "", line["unit"], line["days_present"]] + brackets
            + [line["absences"], line["leave_days"], leave, line["assignment_days"],
               line["holidays"], len(line["open_days"]), Decimal(line["deduction"])])


def absence_row(line, year):
    threshold = line["threshold"]
    return [line["nip"], line["name"] or "", line["unit"], year, line["days"],
            line["consecutive"], threshold["text_id"] if threshold else "",
            " ".join(line["dates"])]


def csv_cell(value):
    """Text that a spreadsheet would run as a formula is quoted as text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def export(kind, name, headers, rows, total=None):
    """A werkzeug Response with the table as CSV or XLSX, as an attachment."""
    if kind == "csv":
        out = io.StringIO()
        out.write("\ufeff")  # BOM: Excel then reads UTF-8 (names with accents, etc.)
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(headers)
        writer.writerows([[csv_cell(value) for value in row] for row in rows])
        body, mimetype = out.getvalue().encode("utf-8"), "text/csv; charset=utf-8"
    else:
        body, mimetype = xlsx_bytes(headers, rows, total), XLSX
    return Response(body, status=200, content_type=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{name}.{kind}"'})


def xlsx_bytes(headers, rows, total=None):
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("Rekap")
    bold = book.add_format({"bold": True})
    percent = book.add_format({"num_format": "0.00"})
    sheet.write_row(0, 0, headers, bold)
    sheet.freeze_panes(1, 2)
    for r, row in enumerate([*rows, *([total] if total else [])], start=1):
        for c, value in enumerate(row):
            if isinstance(value, Decimal):
                sheet.write_number(r, c, float(value), percent)
            elif isinstance(value, int):
                sheet.write_number(r, c, value)
            else:  # NIPs stay text: as numbers, Excel shows 18 digits as 1.98E+17
                sheet.write_string(r, c, str(value), bold if row is total else None)
    sheet.set_column(0, 0, 21)
    sheet.set_column(1, 1, 28)
    book.close()
    return buffer.getvalue()


# -- helpers -----------------------------------------------------------------------------------

def month_of(text):
    year, month = (int(part) for part in text.split("-"))
    return year, month


def with_dates(items, statuses):
    """Leave requests or assignments with ``date`` bounds, only those in ``statuses``, in the
    form ``domain.covering`` reads (status dropped for assignments, whose own word is
    ``active``)."""
    return [{**item, "start": date.fromisoformat(item["start"]),
             "end": date.fromisoformat(item["end"]), "status": "approved"}
            for item in items if item.get("status", statuses[0]) in statuses]


def hhmm(at, tz):
    return None if at is None else at.astimezone(domain.zone(tz)).strftime("%H:%M")


def recap_json(recap):
    return {**recap, "deduction": format(recap["deduction"].normalize(), "f")}


class ReportEndpoints:
    """Mixed into the attendance service (needs ``db``, ``calendar``)."""

    # -- access ------------------------------------------------------------------------------

    def _report_unit(self, principal, code):
        """The replica's unit when the caller may read its reports; 404 otherwise (also for
        a unit this Pemda does not have)."""
        doc = self.db[UNITS].find_one({"_id": code}) if code else None
        if doc is None or not may_see_unit(principal, code):
            raise not_found(f"Unit {code} is not in this Pemda's directory, or you may not "
                            "see it.")
        return doc

    def _report_month(self, text, unit):
        year, month = month_of(text)
        today = self.calendar.today(unit)
        if (year, month) > (today.year, today.month):
            raise unprocessable({"month": ["a month that has started"]})
        return [d for d in domain.month_dates(year, month) if d <= today], today

    def _cursors(self, units):
        """``{unit: last closed date}`` of ``units`` (``close_cursor`` by ``_id``)."""
        return {code: date.fromisoformat(doc["last_closed"])
                for code, doc in by_ids(self.db[CURSORS], units).items()}

    # -- today -------------------------------------------------------------------------------

    @route("GET", f"{API}/units/<unit>/today", roles=STAFF_READERS, query=TodayQuery(),
           response=TodayOut(), tags=TAGS,
           summary="Presence today (unit time), live: counts and one line per employee")
    def get_today(self, request, principal, query, unit):
        self._report_unit(principal, unit)
        members = sorted(employees_of(self.db, unit, query["subunits"]), key=lambda e: e["_id"])
        days = {e["_id"]: self.calendar.today(e["unit"]) for e in members}
        docs = by_ids(self.db[DAYS], [day_id(nip, day) for nip, day in days.items()],
                      DAY_FIELDS)
        people = by_ids(self.db[PEOPLE], list(days), {"leaves": 1, "assignments": 1, "rota": 1})
        lines = [self._presence(e, days[e["_id"]], docs.get(day_id(e["_id"], days[e["_id"]])),
                                people.get(e["_id"], {})) for e in members]
        counts = {
            "employees": len(lines),
            "checked_in": sum(1 for line in lines if line["check_in"]),
            "on_time": sum(1 for line in lines
                           if line["status"] == "checked_in" and line["code"] is None),
            "late": sum(1 for line in lines if line["code"] is not None),
            "not_yet_in": sum(1 for line in lines if line["status"] == "not_yet_in"),
            "checked_out": sum(1 for line in lines if line["check_out"]),
            "flagged": sum(1 for line in lines if line["flags"]),
            "on_leave": sum(1 for line in lines if line["status"] == "leave"),
            "on_assignment": sum(1 for line in lines if line["status"] == "assignment"),
            "off_today": sum(1 for line in lines if line["status"] in ("holiday", "day_off"))}
        return {"unit": unit, "date": self.calendar.today(unit).isoformat(),
                "subunits": query["subunits"], "generated_at": db_now(), "counts": counts,
                "people": lines}

    def _presence(self, employee, day, doc, person):
        unit, tz = employee["unit"], self.calendar.timezone(employee["unit"])
        rota = rota_of(person)
        hours, opens, closes = day_window_for(self.calendar, unit, day, rota)
        records = (doc or {}).get("records", [])
        check_in, check_out = domain.day_records(records, opens, closes)
        correction = (doc or {}).get("correction") or {}
        check_in = correction.get("check_in") or check_in
        check_out = correction.get("check_out") or check_out
        leaves = with_dates(person.get("leaves", ()), ("approved",))
        found = domain.presence_now(
            day, hours, tz, check_in=check_in, check_out=check_out,
            holidays=self.calendar.holidays(unit, day.year), leaves=leaves,
            assignments=with_dates(active_assignments(person, day), ("active",)),
            outages=self.calendar.outages(unit), settings=self.calendar.settings(unit, day))
        leave = domain.covering(leaves, day) if found["status"] == "leave" else None
        return {"nip": employee["_id"], "name": employee.get("name"), "unit": unit,
                **found, "check_in": hhmm(check_in, tz), "check_out": hhmm(check_out, tz),
                "leave_type": leave and leave.get("type"),
                "flags": sorted({flag for r in records for flag in r.get("flags", ())})}

    # -- monthly -----------------------------------------------------------------------------

    @route("GET", f"{API}/reports/monthly", roles=STAFF_READERS, query=MonthlyQuery(),
           response=MonthlyOut(), tags=TAGS, problems=UNKNOWN_UNIT, media_types=EXPORTS,
           summary="Monthly recap of a unit: per employee and per unit (?format=csv|xlsx)")
    def get_monthly(self, request, principal, query):
        unit = query["unit"]
        unit_doc = self._report_unit(principal, unit)
        dates, today = self._report_month(query["month"], unit)
        subtree = query["subunits"]

        def inside(code):
            return code is not None and (domain.in_subtree(code, unit) if subtree
                                         else code == unit)

        members = {e["_id"]: e for e in employees_of(self.db, unit, subtree)}
        moved = self._moved_out(unit, subtree, dates, members)
        employees = {**members, **by_ids(self.db[EMPLOYEES], moved)}
        for nip in moved - set(employees):  # gone from the directory: keep their days
            employees[nip] = {"_id": nip, "name": None, "unit": None}
        docs = by_ids(self.db[DAYS], [day_id(nip, d) for nip in employees for d in dates],
                      DAY_FIELDS)
        units = {code: doc for code, doc in by_ids(
            self.db[UNITS], {doc.get("unit") for doc in docs.values() if inside(doc.get("unit"))}
            | {e["unit"] for e in members.values()} | {unit}).items()}
        cursors = self._cursors(list(units))
        lines, per_unit = [], {}
        for nip in sorted(employees):
            employee = employees[nip]
            line, own = self._recap(employee, dates, docs, cursors, inside)
            if not line["closed_days"] and not line["open_days"] and nip not in members:
                continue
            lines.append(line)
            for code, (recap, open_count) in own.items():
                totals = per_unit.setdefault(code, {**domain.empty_recap(), "nips": set(),
                                                    "open": 0})
                domain.add_recap(totals, recap)
                totals["nips"].add(nip)
                totals["open"] += open_count
        for e in members.values():  # a unit whose people have no day yet still shows
            per_unit.setdefault(e["unit"], {**domain.empty_recap(), "nips": set(), "open": 0})
            per_unit[e["unit"]]["nips"].add(e["_id"])
        unit_lines = [self._unit_totals(code, units.get(code), totals)
                      for code, totals in sorted(per_unit.items())]
        grand = {**domain.empty_recap(), "nips": {line["nip"] for line in lines},
                 "open": sum(len(line["open_days"]) for line in lines)}
        for totals in per_unit.values():
            domain.add_recap(grand, totals)
        report = {"unit": unit, "name": unit_doc.get("name"), "month": query["month"],
                  "subunits": subtree, "employees": lines, "units": unit_lines,
                  "total": self._unit_totals(unit, unit_doc, grand)}
        if query["format"] == "json":
            return report
        suffix = "-dan-subunit" if subtree else ""
        return export(query["format"], f"rekap-presensi-{unit}{suffix}-{query['month']}",
                      MONTHLY_HEADERS, [monthly_row(line) for line in lines],
                      self._total_row(report["total"]))

    def _moved_out(self, unit, subtree, dates, members):
        """Who was closed in the unit (or its subtree) on a day of the month and is no longer
        a member: their days before the move still count here. Read from the close
        documents by ``_id`` (units x days of the month), never by scanning ``days``, so the
        cost follows the report, not the stored history. An open day counts for nobody yet."""
        codes = ([u["_id"] for u in self.db[UNITS].find(subtree_filter("_id", unit), {"_id": 1})]
                 if subtree else [unit])
        closes = by_ids(self.db[CLOSES], [f"{code}:{d.isoformat()}" for code in codes
                                          for d in dates], {"employees": 1})
        return {nip for close in closes.values() for nip in close.get("employees", ())
                if nip not in members}

    @route("GET", f"{API}/reports/monthly/<nip>", roles=("pegawai", *STAFF_READERS),
           query=EmployeeMonthQuery(), response=EmployeeMonthOut(), tags=TAGS,
           media_types=EXPORTS,
           summary="One employee's monthly recap, all their days (?format=csv|xlsx)")
    def get_employee_monthly(self, request, principal, query, nip):
        employee = employee_or_404(self.db, principal, nip)
        dates, _ = self._report_month(query["month"], employee["unit"])
        docs = by_ids(self.db[DAYS], [day_id(nip, d) for d in dates], DAY_FIELDS)
        units = {doc.get("unit") for doc in docs.values()} | {employee["unit"]}
        cursors = self._cursors([code for code in units if code])
        line, _ = self._recap(employee, dates, docs, cursors, lambda code: True)
        line = {**line, "month": query["month"]}
        if query["format"] == "json":
            return line
        return export(query["format"], f"rekap-presensi-{nip}-{query['month']}",
                      MONTHLY_HEADERS, [monthly_row(line)])

    def _recap(self, employee, dates, docs, cursors, inside):
        """(the employee's recap line over the days that count here, {unit: (recap, open
        days)}). A day counts in its document's unit; a day without a document belongs to
        the employee's current unit."""
        recap, own = domain.empty_recap(), {}
        open_days, no_result = [], []
        for day in dates:
            doc = docs.get(day_id(employee["_id"], day)) or {}
            code = doc.get("unit") or employee["unit"]
            if not inside(code):
                continue
            slot = own.setdefault(code, [domain.empty_recap(), 0])
            result = doc.get("result")
            if result is not None:
                domain.add_day(recap, result)
                domain.add_day(slot[0], result)
            elif cursors.get(code) is None or day > cursors[code]:
                open_days.append(day.isoformat())
                slot[1] += 1
            else:
                no_result.append(day.isoformat())
        line = {"nip": employee["_id"], "name": employee.get("name"),
                "unit": employee["unit"] or next(iter(own), ""),
                "moved": not inside(employee["unit"]), **recap_json(recap),
                "open_days": open_days, "no_result_days": no_result}
        return line, {code: tuple(slot) for code, slot in own.items()}

    def _unit_totals(self, code, unit_doc, totals):
        recap = {k: v for k, v in totals.items() if k not in ("nips", "open")}
        return {"unit": code, "name": (unit_doc or {}).get("name"),
                "employees": len(totals["nips"]), "open_days": totals["open"],
                **recap_json(recap)}

    @staticmethod
    def _total_row(total):
        line = {**total, "nip": "JUMLAH", "name": f"{total['employees']} pegawai",
                "open_days": [None] * total["open_days"]}
        return monthly_row(line)

    # -- unexcused absences ----------------------------------------------------------------

    @route("GET", f"{API}/reports/absences", roles=STAFF_READERS, query=AbsenceQuery(),
           response=AbsencesOut(), tags=TAGS, problems=UNKNOWN_UNIT, media_types=EXPORTS,
           summary="Year-to-date unexcused absences and the PP 94/2021 threshold reached")
    def get_absences(self, request, principal, query):
        unit = query["unit"]
        self._report_unit(principal, unit)
        year = query["year"] or self.calendar.today(unit).year
        members = sorted(employees_of(self.db, unit, query["subunits"]), key=lambda e: e["_id"])
        people = by_ids(self.db[PEOPLE], [e["_id"] for e in members],
                        {"absences": 1, "rota": 1})
        lines = []
        for employee in members:
            person = people.get(employee["_id"], {})
            dates = sorted({date.fromisoformat(d)
                            for d in (person.get("absences") or {}).get(str(year), ())})
            run = self._absence_run(employee["unit"], dates, rota_of(person))
            threshold = domain.absence_threshold(len(dates), run)
            lines.append({"nip": employee["_id"], "name": employee.get("name"),
                          "unit": employee["unit"], "days": len(dates),
                          "dates": [d.isoformat() for d in dates], "consecutive": run,
                          "threshold": threshold})
        lines.sort(key=lambda line: (-line["days"], line["nip"]))
        report = {"unit": unit, "year": year, "subunits": query["subunits"],
                  "reached": sum(1 for line in lines if line["threshold"]), "employees": lines}
        if query["format"] == "json":
            return report
        suffix = "-dan-subunit" if query["subunits"] else ""
        return export(query["format"], f"rekap-tanpa-keterangan-{unit}{suffix}-{year}",
                      ABSENCE_HEADERS, [absence_row(line, year) for line in lines])

    def _absence_run(self, unit, dates, rota):
        """The longest run of absences on the employee's working-day calendar (today's unit
        and rota: a move or a rota change within the year is not replayed)."""
        if len(dates) < 2:
            return len(dates)
        first, last = dates[0], dates[-1]
        working = domain.working_days(
            first, last, lambda day: self.calendar.settings(unit, day),
            self.calendar.holidays(unit, first.year), rota)
        return domain.consecutive_absences(dates, working)

