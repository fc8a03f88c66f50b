"""Reading and writing the directory's CSV files: units, positions and employees.

The layouts follow a SIMPEG/SIASN export, so a BKPSDM clerk can fill them from one.
Pure: no database, no bus, no HTTP. ``parse`` checks each row on its own (plus duplicates
inside the file); whether a unit, a position or a supervisor exists is the directory's
business when the rows are stored.

## Rules for every file

- The first line is the header. Column names may be in any order and any case (``nip`` =
  ``NIP``); spaces around them are ignored. An unknown column or a missing required column
  rejects the whole file. Optional columns may be left out of the header.
- Separator: comma or semicolon (Excel in Indonesian settings writes semicolons), decided from
  the header line. Save as "CSV UTF-8"; a BOM is fine. Blank lines are skipped. Line numbers
  in messages are the line numbers in the file (the header is line 1).
- Dates: ``1986-09-26``, ``26-09-1986`` or ``26/09/1986``.
- Yes/no: ``Y``/``N``, ``YA``/``TIDAK``, ``1``/``0``, ``TRUE``/``FALSE``; empty = the default.
- "Needed: yes" means the header must have the column and every row a value in it.
- A row with a problem is rejected as a whole; every problem of every row is reported.
- Messages never show a whole NIK or phone number.
- An export writes a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and is not a plain
  number) with a leading ``'``, so a spreadsheet shows it as text instead of running it as a
  formula; reading takes that quote off again.

## units.csv: the organisation (UNOR)

| Column      | Needed         | Content                                                  |
|-------------|----------------|----------------------------------------------------------|
| KODE_UNOR   | yes            | unit code, e.g. ``3510.03.04`` (see below)               |
| NAMA_UNOR   | yes            | unit name, up to 200 characters                          |
| JENIS_UNOR  | yes            | kind of unit, e.g. ``opd`` (see below)                   |
| ZONA_WAKTU  | no             | ``WIB``, ``WITA`` or ``WIT``; empty = WIB                |
| NAMA_KANTOR | no             | an office where staff check in, e.g. ``Gedung Utama``    |
| LINTANG     | with an office | latitude, -11 to 6, e.g. ``-8.2192``                     |
| BUJUR       | with an office | longitude, 95 to 141, e.g. ``114.3691``                  |
| RADIUS_M    | no             | check-in radius in metres, 10 to 5000; empty = 100       |
| AKTIF       | no             | yes/no; empty = yes                                      |

- KODE_UNOR: the Pemda's 4-digit BPS code, then 2 digits per level: ``3510`` Pemda,
  ``3510.03`` an OPD, ``3510.03.04`` a bidang or UPTD of it.
- JENIS_UNOR: ``pemda``, ``opd``, ``bidang``, ``subbidang``, ``seksi``, ``uptd``,
  ``kecamatan`` or ``kelurahan``.
- LINTANG and BUJUR may use a decimal comma (``-8,2192``) in a semicolon file.
- ZONA_WAKTU also accepts ``Asia/Jakarta``, ``Asia/Makassar``, ``Asia/Jayapura``.
- A unit with several offices takes one row per office, all with the same KODE_UNOR; on the
  later rows the unit columns must be empty or equal to the first row's. A unit without an
  office leaves NAMA_KANTOR, LINTANG, BUJUR and RADIUS_M empty.

## positions.csv: the positions (jabatan)

| Column              | Needed | Content                                                  |
|---------------------|--------|----------------------------------------------------------|
| KODE_JABATAN        | yes    | position code, e.g. ``KEPALA.3510.03`` (see below)       |
| NAMA_JABATAN        | yes    | title, up to 200 characters                              |
| JENIS_JABATAN       | yes    | ``struktural``, ``fungsional`` or ``pelaksana``          |
| KODE_UNOR           | yes    | the unit the position belongs to                         |
| KEPALA_UNOR         | no     | yes/no: heads its unit (then struktural); empty = no     |
| PENANDATANGAN       | no     | yes/no: may sign letters; empty = as KEPALA_UNOR         |
| KODE_JABATAN_ATASAN | no     | KODE_JABATAN of the superior position                    |
| AKTIF               | no     | yes/no; empty = yes                                      |

- KODE_JABATAN: letters, digits, ``.``, ``_`` and ``-``, up to 64 characters.
- JENIS_JABATAN in any case; also ``JPT`` = struktural, ``JF``, ``JFT`` or ``fungsional
  tertentu`` = fungsional, ``JFU`` or ``fungsional umum`` = pelaksana.
- KODE_JABATAN_ATASAN empty: the superior is the head of the unit (or of the unit above).
- One file may not have two active positions heading the same unit.

## employees.csv: the employees (PNS and PPPK)

| Column         | Needed | Content                                                       |
|----------------|--------|---------------------------------------------------------------|
| NIP            | yes    | NIP (PNS) or NI PPPK, 18 digits, e.g. ``198609262015051001``  |
| NAMA           | yes    | name without degrees, up to 200 characters                    |
| GELAR_DEPAN    | no     | degrees before the name, e.g. ``dr.``                         |
| GELAR_BELAKANG | no     | degrees after the name, e.g. ``S.E., M.Si.``                  |
| JENIS_KELAMIN  | no     | ``L`` or ``P``; empty = from the NIP                          |
| TANGGAL_LAHIR  | no     | birth date; empty = from the NIP                              |
| JENIS_PEGAWAI  | no     | ``PNS`` or ``PPPK``; empty = from the number                  |
| KODE_UNOR      | yes    | the unit the employee works in                                |
| KODE_JABATAN   | no     | the position held (a position of that unit)                   |
| NOMOR_HP       | no     | mobile (WhatsApp) number, e.g. ``0812-3456-7890``             |
| EMAIL          | no     | e-mail address                                                |
| STATUS         | no     | ``AKTIF``, ``CB``, ``CLTN``, ``PENSIUN`` or ``PINDAH``; empty = AKTIF |
| NIK            | no     | NIK, 16 digits                                                |
| NIP_ATASAN     | no     | NIP of the direct supervisor, when not the superior's holder  |
| TMT_UNOR       | no     | date the employee started in this unit                        |

- The NIP encodes birth date and gender: JENIS_KELAMIN and TANGGAL_LAHIR, when filled, must
  agree with it. JENIS_KELAMIN also accepts ``Laki-laki``/``Perempuan``, ``Pria``/``Wanita``,
  ``1``/``2``. An NI PPPK has ``21`` in digits 13-14; spaces inside the number are ignored.
- NOMOR_HP: an Indonesian mobile, written ``08...``, ``628...`` or ``+628...``.
- STATUS: CB = long leave (cuti besar), CLTN = unpaid leave (cuti di luar tanggungan
  negara), PENSIUN = retired, PINDAH = moved to another agency (PP 11/2017 leave types; the
  others, annual, sick, maternity and important reasons, are days off, not a status);
  ``active``, ``long_leave``, ``unpaid_leave``, ``retired``, ``transferred_out`` too.
- A NIK that disagrees with the birth date or gender is only a warning: a NIK never changes.
"""

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from pamong.contracts.directory import POSITION_ID, POSITION_KINDS, UNIT_CODE, UNIT_KINDS
from pamong.identifiers import nik_matches, parse_nik, parse_staff_number, staff_mismatches
from pamong.privacy import is_masked_nik, mask_text, normalize_phone

__all__ = ["COLUMNS", "KINDS", "Parsed", "Row", "RowError", "export", "parse"]

KINDS = ("units", "positions", "employees")


@dataclass(frozen=True)
class RowError:
    """A problem at a line of the file; ``reason`` reads after the column name."""

    line: int
    column: str | None
    reason: str

    def __str__(self):
        where = f"line {self.line}: {self.column}" if self.column else f"line {self.line}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Row:
    line: int
    record: dict


@dataclass
class Parsed:
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    # record keys whose column the header lacks: an import keeps the stored values there
    absent: set = field(default_factory=set)


# -- cell values: each parser gets a stripped, non-empty cell; ValueError says why not ------


def _words(value):
    return " ".join(value.split())


def _key(value):
    """How a vocabulary compares words: any case, ``_``/``-``/spaces alike."""
    return _words(value.replace("_", " ").replace("-", " ")).upper()


class _Vocab:
    """A closed vocabulary: ``written`` maps each value to the form ``export`` writes."""

    def __init__(self, written, aliases=None):
        self.written = written
        self.accepted = {_key(w): v for v, w in written.items()}
        self.accepted |= {_key(alias): v for alias, v in (aliases or {}).items()}
        self.hint = ", ".join(written.values())

    def parse(self, value):
        try:
            return self.accepted[_key(value)]
        except KeyError:
            raise ValueError(f"{_shown(value)} is not one of {self.hint}") from None

    def show(self, value):
        return self.written[value]


def _shown(value, limit=40):
    """A cell quoted in a message: shortened, and any NIK or phone number in it masked (a
    shifted row can put one in any column)."""
    return repr(mask_text(value if len(value) <= limit else value[:limit] + "..."))


def _text(limit):
    def parse(value):
        value = _words(value)
        if len(value) > limit:
            raise ValueError(f"is longer than {limit} characters")
        return value
    return parse


def _pattern(regex, what):
    compiled = re.compile(regex, re.ASCII)

    def parse(value):
        if not compiled.fullmatch(value):
            raise ValueError(f"{_shown(value)} is not {what}")
        return value
    return parse


def _number(convert, low, high):
    def parse(value):
        try:
            number = convert(value.replace(",", ".") if convert is float else value)
        except ValueError:
            raise ValueError(f"{_shown(value)} is not a number") from None
        if not low <= number <= high:
            raise ValueError(f"{_shown(value)} is not between {low} and {high}")
        return number
    return parse


_DATE_FORMATS = (
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII), (0, 1, 2)),
    (re.compile(r"(\d{1,2})-(\d{1,2})-(\d{4})", re.ASCII), (2, 1, 0)),
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII), (2, 1, 0)),
)


def _date(value):
    for regex, order in _DATE_FORMATS:
        if match := regex.fullmatch(value):
            try:
                return date(*(int(match.group(i + 1)) for i in order))
            except ValueError:
                break
    raise ValueError(f"{_shown(value)} is not a date (YYYY-MM-DD, DD-MM-YYYY or DD/MM/YYYY)")


def _staff_digits(value):
    digits = "".join(value.split())
    if not re.fullmatch(r"[0-9]{18}", digits):
        raise ValueError("must be 18 digits")
    return digits


def _nik(value):
    """A NIK, or a masked one (``3510********0001``, as an opd_admin export shows it): the
    import then keeps the stored NIK it masks."""
    return value if is_masked_nik(value) else parse_nik(value)


def _phone(value):
    try:
        return normalize_phone(value)
    except ValueError:  # its message shows part of the number
        raise ValueError("is not an Indonesian mobile number (08..., 628... or +628...)") from None


EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")  # the API checks e-mails with it too


def _email(value):
    if not EMAIL.fullmatch(value):
        raise ValueError("is not an e-mail address (name@domain.tld)")
    return value.lower()


_TIMEZONES = {"Asia/Jakarta": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}
_STATUSES = {"active": "AKTIF", "long_leave": "CB", "unpaid_leave": "CLTN",
             "retired": "PENSIUN", "transferred_out": "PINDAH"}

_BOOL = _Vocab({True: "Y", False: "N"},
               {"YA": True, "TIDAK": False, "1": True, "0": False, "TRUE": True, "FALSE": False})
_TIMEZONE = _Vocab(_TIMEZONES, {tz: tz for tz in _TIMEZONES})
_UNIT_KIND = _Vocab({k: k for k in UNIT_KINDS})
_POSITION_KIND = _Vocab({k: k for k in POSITION_KINDS}, {
    "JPT": "struktural", "JF": "fungsional", "JFT": "fungsional", "fungsional tertentu":
    "fungsional", "JFU": "pelaksana", "fungsional umum": "pelaksana"})
_GENDER = _Vocab({"L": "L", "P": "P"}, {"laki-laki": "L", "pria": "L", "1": "L",
                                         "perempuan": "P", "wanita": "P", "2": "P"})
_STAFF_KIND = _Vocab({"pns": "PNS", "pppk": "PPPK"})
_STATUS = _Vocab(_STATUSES, {s: s for s in _STATUSES})
_UNIT_CODE = _pattern(UNIT_CODE.strip("^$"), "a unit code (4 digits, then .NN per level)")
_POSITION_ID = _pattern(POSITION_ID.strip("^$"),
                        "a position code (letters, digits, '.', '_', '-'; up to 64)")


@dataclass(frozen=True)
class _Column:
    name: str
    key: str | None  # the record key it fills
    parse: Callable  # stripped non-empty cell -> value; ValueError says why not
    need: str = ""  # "header": the header must name it; "value": and every row fills it
    show: Callable = str  # value -> cell, for export


def _vocab(name, key, vocab, need=""):
    return _Column(name, key, vocab.parse, need, vocab.show)


def _date_column(name, key):
    return _Column(name, key, _date, show=date.isoformat)


# -- one row being read -----------------------------------------------------------------


@dataclass
class _Line:
    line: int
    values: dict = field(default_factory=dict)  # column -> parsed value, filled valid cells
    bad: set = field(default_factory=set)  # columns whose cell was rejected
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def get(self, column, default=None):
        return self.values.get(column, default)

    def error(self, column, reason):
        self.errors.append(RowError(self.line, column, reason))

    def warn(self, column, reason):
        self.warnings.append(RowError(self.line, column, reason))

    def require(self, *columns):
        for column in columns:
            if column not in self.values and column not in self.bad:
                self.error(column, "is empty")


class _Layout:
    """One CSV layout: its columns, and the checks that span several cells of a row."""

    columns: tuple[_Column, ...]
    key: str | None = None  # the column whose value may appear on one row only
    fills: tuple[tuple[str, str], ...]  # (record key, column) for each column with a key

    def __init_subclass__(cls):
        cls.fills = tuple((c.key, c.name) for c in cls.columns if c.key)

    def __init__(self, today):
        self.today = today
        self.rows = []
        self._first = {}  # (what, value) -> line where first seen

    def first_line(self, ln, what, value):
        """The line where ``value`` of ``what`` was first seen (this line if new)."""
        return self._first.setdefault((what, value), ln.line)

    def read(self, ln):
        value = ln.get(self.key) if self.key else None
        if value is not None and (first := self.first_line(ln, self.key, value)) != ln.line:
            ln.error(self.key, f"{mask_text(value)} is already on line {first}")
        values = ln.values
        record = self.record(ln, {key: values.get(name) for key, name in self.fills})
        if not ln.errors and record is not None:
            self.rows.append(Row(ln.line, record))

    @classmethod
    def cells(cls, record):
        """The rows (column -> value) that ``export`` writes for one record."""
        yield {c.name: record[c.key] for c in cls.columns if c.key}


class _Units(_Layout):
    columns = (
        _Column("KODE_UNOR", "code", _UNIT_CODE, "value"),
        _Column("NAMA_UNOR", "name", _text(200), "header"),
        _vocab("JENIS_UNOR", "kind", _UNIT_KIND, "header"),
        _vocab("ZONA_WAKTU", "timezone", _TIMEZONE),
        _Column("NAMA_KANTOR", None, _text(200)),
        _Column("LINTANG", None, _number(float, -11, 6)),
        _Column("BUJUR", None, _number(float, 95, 141)),
        _Column("RADIUS_M", None, _number(int, 10, 5000)),
        _vocab("AKTIF", "active", _BOOL),
    )
    office_columns = (("NAMA_KANTOR", "name"), ("LINTANG", "latitude"),
                      ("BUJUR", "longitude"), ("RADIUS_M", "radius_m"))

    def __init__(self, today):
        super().__init__(today)
        self.units = {}  # code -> record, for the units whose first row was accepted

    def record(self, ln, unit):
        code = unit["code"]
        office = self.office(ln)
        if code is None:
            return None
        first = self.first_line(ln, "KODE_UNOR", code)
        if first == ln.line:  # the row that defines the unit
            ln.require("NAMA_UNOR", "JENIS_UNOR")
            unit |= {"timezone": ln.get("ZONA_WAKTU", "Asia/Jakarta"),
                     "offices": [office] if office else [], "active": ln.get("AKTIF", True)}
            if not ln.errors:
                self.units[code] = unit
            return unit
        known = self.units.get(code)
        if known is None:
            ln.error("KODE_UNOR", f"the first row of unit {code} (line {first}) is rejected")
            return None
        for column in self.columns[1:]:
            if column.key and ln.get(column.name, known[column.key]) != known[column.key]:
                ln.error(column.name, f"differs from line {first}, the first row of unit {code}")
        if office is None:
            if "NAMA_KANTOR" not in ln.bad:
                ln.error("NAMA_KANTOR", f"unit {code} is already on line {first}; a further "
                                        "row of the same unit adds an office")
        elif any(o["name"] == office["name"] for o in known["offices"]):
            ln.error("NAMA_KANTOR", f"unit {code} already has an office {office['name']!r}")
        if not ln.errors:
            known["offices"].append(office)
        return None  # the unit is among the rows already, at its first line

    @classmethod
    def office(cls, ln):
        if ln.get("NAMA_KANTOR") is None:
            for column, _ in cls.office_columns[1:]:
                if column in ln.values:
                    ln.error(column, "is given without NAMA_KANTOR")
            return None
        ln.require("LINTANG", "BUJUR")
        return {key: ln.get(column) for column, key in cls.office_columns} | {
            "radius_m": ln.get("RADIUS_M", 100)}

    @classmethod
    def cells(cls, unit):
        (base,) = super().cells(unit)
        if not unit["offices"]:
            yield base
        for office in unit["offices"]:
            yield base | {column: office[key] for column, key in cls.office_columns}


class _Positions(_Layout):
    columns = (
        _Column("KODE_JABATAN", "id", _POSITION_ID, "value"),
        _Column("NAMA_JABATAN", "title", _text(200), "value"),
        _vocab("JENIS_JABATAN", "kind", _POSITION_KIND, "value"),
        _Column("KODE_UNOR", "unit", _UNIT_CODE, "value"),
        _vocab("KEPALA_UNOR", "heads_unit", _BOOL),
        _vocab("PENANDATANGAN", "may_sign", _BOOL),
        _Column("KODE_JABATAN_ATASAN", "superior", _POSITION_ID),
        _vocab("AKTIF", "active", _BOOL),
    )
    key = "KODE_JABATAN"

    def record(self, ln, position):
        heads = ln.get("KEPALA_UNOR", False)
        position |= {"heads_unit": heads, "may_sign": ln.get("PENANDATANGAN", heads),
                     "active": ln.get("AKTIF", True)}
        if heads and position["kind"] not in (None, "struktural"):
            ln.error("KEPALA_UNOR", "a position that heads its unit must be struktural")
        if position["superior"] is not None and position["superior"] == position["id"]:
            ln.error("KODE_JABATAN_ATASAN", "a position cannot be its own superior")
        if heads and position["active"] and position["unit"] is not None:
            first = self.first_line(ln, "head of", position["unit"])
            if first != ln.line:
                ln.error("KEPALA_UNOR", f"unit {position['unit']} already has a head position "
                                        f"on line {first}")
        return position


class _Employees(_Layout):
    columns = (
        _Column("NIP", "nip", _staff_digits, "value"),
        _Column("NAMA", "name", _text(200), "value"),
        _Column("GELAR_DEPAN", "title_front", _text(100)),
        _Column("GELAR_BELAKANG", "title_back", _text(100)),
        _vocab("JENIS_KELAMIN", "gender", _GENDER),
        _date_column("TANGGAL_LAHIR", "birth_date"),
        _vocab("JENIS_PEGAWAI", "kind", _STAFF_KIND),
        _Column("KODE_UNOR", "unit", _UNIT_CODE, "value"),
        _Column("KODE_JABATAN", "position", _POSITION_ID),
        _Column("NOMOR_HP", "phone", _phone),
        _Column("EMAIL", "email", _email),
        _vocab("STATUS", "status", _STATUS),
        _Column("NIK", "nik", _nik),
        _Column("NIP_ATASAN", "supervisor", _staff_digits),
        _date_column("TMT_UNOR", "effective_date"),
    )
    key = "NIP"

    def record(self, ln, employee):
        staff = None
        if "JENIS_PEGAWAI" not in ln.bad:
            staff = self.staff_number(ln, "NIP", kind=employee["kind"])
        if staff is not None:
            columns = {"gender": "JENIS_KELAMIN", "birth_date": "TANGGAL_LAHIR"}
            for key, reason in staff_mismatches(staff, employee["gender"],
                                                employee["birth_date"]).items():
                ln.error(columns[key], reason)
        supervisor = self.staff_number(ln, "NIP_ATASAN")
        if supervisor is not None and supervisor.number == employee["nip"]:
            ln.error("NIP_ATASAN", "an employee cannot be their own supervisor")
        nik = employee["nik"]
        if isinstance(nik, str):  # masked: stands for the stored NIK
            return None if staff is None else employee | {
                "kind": staff.kind, "gender": staff.gender, "birth_date": staff.birth_date,
                "status": ln.get("STATUS", "active")}
        if nik is not None and staff is not None:
            for warning in nik_matches(nik, staff.birth_date, staff.gender):
                ln.warn("NIK", warning)
        if staff is None:
            return None
        return employee | {"kind": staff.kind, "gender": staff.gender,
                           "birth_date": staff.birth_date, "status": ln.get("STATUS", "active"),
                           "nik": nik.number if nik else None}

    def staff_number(self, ln, column, kind=None):
        if ln.get(column) is None:
            return None
        try:
            return parse_staff_number(ln.get(column), kind=kind, today=self.today)
        except ValueError as exc:
            ln.error(column, str(exc))
            return None


_LAYOUTS = {"units": _Units, "positions": _Positions, "employees": _Employees}
COLUMNS = {kind: [c.name for c in layout.columns] for kind, layout in _LAYOUTS.items()}


# -- files ------------------------------------------------------------------------------


class _FileError(ValueError):
    def __init__(self, line, reason):
        super().__init__(reason)
        self.line = line


def _lines(text):
    """(line number, cells) for each non-blank row; the delimiter comes from the first."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text.count(b"\n", 0, exc.start) + 1
            raise _FileError(line, "the file is not UTF-8 text (save it as CSV UTF-8)") from None
    text = text.removeprefix("\ufeff")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                yield line, cells
            line = reader.line_num + 1
    except csv.Error as exc:
        raise _FileError(line, f"the file is not valid CSV: {exc}") from None


def _header(layout, cells, line):
    """Column index -> _Column (None for an unnamed column), or the header's errors."""
    known = {c.name: c for c in layout.columns}
    names = [_words(cell).upper() for cell in cells]
    expected = f"the columns are: {', '.join(known)}"
    if not known.keys() & set(names):
        return [], [RowError(line, None, f"the first line must be the header ({expected})")]
    errors = []
    for index, name in enumerate(names):
        if name and name in names[:index]:
            errors.append(RowError(line, name, "the column appears twice in the header"))
        elif name and name not in known:
            shown = mask_text(name)
            errors.append(RowError(line, shown, f"unknown column ({expected})"))
    for column in layout.columns:
        if column.need and column.name not in names:
            errors.append(RowError(line, column.name, "a required column, missing from the "
                                                      "header"))
    return [known.get(name) for name in names], errors


def parse(kind, text, *, today=None):
    """Read one CSV file of ``kind`` (see the module docstring); bad data never raises.

    ``text`` is a ``str`` or UTF-8 ``bytes``. ``today`` (default: the real date) bounds the
    dates encoded in staff numbers.
    """
    layout = _layout(kind)(today)
    result = Parsed()
    rows = _lines(text)
    try:
        header_line, header = next(rows, (1, None))
        if header is None:
            result.errors.append(RowError(1, None, "the file is empty: the first line must be "
                                                   f"the header ({', '.join(COLUMNS[kind])})"))
            return result
        columns, header_errors = _header(layout, header, header_line)
        if header_errors:
            result.errors.extend(header_errors)
            return result
        present = {c.name for c in columns if c is not None}
        result.absent = {c.key for c in layout.columns if c.key and c.name not in present}
        if kind == "units" and "NAMA_KANTOR" not in present:
            result.absent.add("offices")
        required = [c.name for c in columns if c is not None and c.need == "value"]
        for line, cells in rows:
            ln = _Line(line)
            _cells(ln, columns, cells)
            ln.require(*required)
            layout.read(ln)
            result.errors.extend(ln.errors)
            result.warnings.extend(ln.warnings)
    except _FileError as exc:
        result.errors.append(RowError(exc.line, None, str(exc)))
    result.rows = layout.rows
    return result


def _cells(ln, columns, cells):
    width = len(columns)
    for index, cell in enumerate(cells):
        value = cell.strip()
        if value[:1] == "'":
            value = _unguard(value)
        column = columns[index] if index < width else None
        if column is None:
            if value:
                ln.error(None, f"column {index + 1} has a value but no name in the header")
        elif value:
            try:
                ln.values[column.name] = column.parse(value)
            except ValueError as exc:
                ln.bad.add(column.name)
                ln.error(column.name, str(exc))


def export(kind, records):
    """CSV text (comma, header first, CRLF) of ``records`` in the ``kind`` layout."""
    layout = _layout(kind)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS[kind])
    for record in records:
        for cells in layout.cells(record):
            writer.writerow("" if cells.get(c.name) is None else _guard(c.show(cells[c.name]))
                            for c in layout.columns)
    return out.getvalue()


# A cell starting with = + - @ is run as a formula when the file is opened in a spreadsheet
# (CSV injection): an exported name like "=HYPERLINK(...)" is written as "'=HYPERLINK(...)",
# which spreadsheets show as text, and parse() takes the quote off again. Plain numbers
# (coordinates, +62... phones) stay as they are.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _guard(text):
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _unguard(value):
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_START) else value


def _layout(kind):
    if kind not in _LAYOUTS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return _LAYOUTS[kind]
