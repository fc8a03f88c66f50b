import csv
import io
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pamong.identifiers import nik_matches, parse_nik, parse_staff_number
from pamong.privacy import MOBILE_E164
from services.directory import csvio
from services.directory.csvio import COLUMNS, KINDS, export, parse
from services.directory.demo import EMAIL_DOMAIN, VACANT_HEAD_POSITION, demo_pemda

pytestmark = pytest.mark.unit

TODAY = date(2025, 6, 30)  # fixed: no test depends on the clock
DATA = Path(__file__).resolve().parents[1] / "data" / "directory"
SAMPLE_COUNTS = {"units": 4, "positions": 5, "employees": 6}


def sample(kind):
    return (DATA / f"{kind}.csv").read_text(encoding="utf-8")


def read(kind, text):
    return parse(kind, text, today=TODAY)


def records(parsed):
    return [row.record for row in parsed.rows]


def problems(parsed):
    """{line: [(column, reason), ...]} of the errors."""
    found = {}
    for error in parsed.errors:
        found.setdefault(error.line, []).append((error.column, error.reason))
    return found


def with_header(kind, *rows, header=None):
    return "\n".join([header or ",".join(COLUMNS[kind]), *rows]) + "\n"


def semicolons(text):
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\n").writerows(rows)
    return out.getvalue()


# -- the sample files ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sample_is_valid(kind):
    parsed = read(kind, sample(kind))
    assert parsed.errors == [] and parsed.warnings == []
    assert len(parsed.rows) == SAMPLE_COUNTS[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_sample_round_trips(kind):
    first = records(read(kind, sample(kind)))
    text = export(kind, first)
    assert text.splitlines()[0] == ",".join(COLUMNS[kind])
    assert records(read(kind, text)) == first


def test_units_sample_records():
    units = {u["code"]: u for u in records(read("units", sample("units")))}
    assert list(units) == ["3510", "3510.06", "3510.06.01", "3510.06.02"]
    bkpsdm = units["3510.06"]
    assert bkpsdm["kind"] == "opd" and bkpsdm["timezone"] == "Asia/Jakarta" and bkpsdm["active"]
    assert bkpsdm["offices"] == [
        {"name": "Kantor BKPSDM", "latitude": -8.2176, "longitude": 114.3667, "radius_m": 100},
        {"name": "Ruang Layanan Kepegawaian Mal Pelayanan Publik", "latitude": -8.2164,
         "longitude": 114.3703, "radius_m": 50},
    ]
    assert units["3510.06.02"] == {"code": "3510.06.02", "name": "Bidang Mutasi dan Promosi",
                                   "kind": "bidang", "timezone": "Asia/Jakarta", "offices": [],
                                   "active": True}


def test_positions_sample_records():
    positions = {p["id"]: p for p in records(read("positions", sample("positions")))}
    assert positions["KEPALA.3510.06"]["may_sign"] is True  # empty: as KEPALA_UNOR
    assert positions["SEKDA"] == {"id": "SEKDA", "title": "Sekretaris Daerah",
                                  "kind": "struktural", "unit": "3510", "heads_unit": False,
                                  "may_sign": True, "superior": "BUPATI", "active": True}
    assert positions["ANALIS-KEPEGAWAIAN.3510.06.02"]["superior"] is None


def test_employees_sample_records():
    employees = {e["nip"]: e for e in records(read("employees", sample("employees")))}
    assert employees["199004172015032001"] == {
        "nip": "199004172015032001", "kind": "pns", "name": "Siti Nur Aini",
        "title_front": None, "title_back": "S.Psi.", "gender": "P",
        "birth_date": date(1990, 4, 17), "unit": "3510.06.02",
        "position": "ANALIS-KEPEGAWAIAN.3510.06.02", "phone": "+6285733044001",
        "email": "siti.aini@banyuwangikab.example", "status": "active",
        "nik": "3510055704900003", "supervisor": None, "effective_date": None,
    }
    pppk = employees["199306082023212014"]  # written with spaces in the file
    assert (pppk["kind"], pppk["supervisor"]) == ("pppk", "197811232005011002")
    inferred = employees["197811232005011002"]  # gender, birth date and status left empty
    assert (inferred["gender"], inferred["birth_date"], inferred["status"]) == (
        "L", date(1978, 11, 23), "active")
    assert inferred["phone"] == "+6285233033002"
    assert employees["198707302010121001"]["status"] == "unpaid_leave"  # CLTN
    assert employees["197202141998032005"]["title_back"] == "S.Sos., M.Si."


# -- every rejection reason, at its physical line ------------------------------------------

BAD_EMPLOYEES = {  # line -> [(column, words in the reason)]; line 7 is blank
    3: [("NIP", "birth date 1986-02-30 is not a date")],
    4: [("JENIS_KELAMIN", "P differs from the NIP")],
    5: [("NOMOR_HP", "not an Indonesian mobile number")],
    6: [("STATUS", "'MUTASI' is not one of")],
    8: [("NIP", "already on line 2")],
    9: [("NAMA", "is empty")],
    10: [("EMAIL", "not an e-mail address")],
    12: [("TANGGAL_LAHIR", "1986-09-27 differs from the NIP")],
    13: [("NIP", "digits 13-14 '21' mark an NI PPPK")],
    14: [("NIP_ATASAN", "cannot be their own supervisor")],
    15: [("KODE_UNOR", "not a unit code")],
    16: [("NOMOR_HP", "not an Indonesian mobile number"), ("STATUS", "is not one of")],
}


def test_bad_employees_every_reason_at_its_line():
    parsed = read("employees", sample("employees_bad"))
    found = problems(parsed)
    assert sorted(found) == sorted(BAD_EMPLOYEES)
    for line, expected in BAD_EMPLOYEES.items():
        assert [column for column, _ in found[line]] == [column for column, _ in expected]
        for (_, reason), (_, words) in zip(found[line], expected, strict=True):
            assert words in reason, (line, reason)
    assert str(parsed.errors[0]) == "line 3: NIP: NIP 198602302015051002: birth date " \
                                    "1986-02-30 is not a date"
    assert [row.line for row in parsed.rows] == [2, 11]


def test_nik_mismatch_is_only_a_warning_and_masked():
    parsed = read("employees", sample("employees_bad"))
    assert [(w.line, w.column) for w in parsed.warnings] == [(11, "NIK")]
    reason = parsed.warnings[0].reason
    assert "birth day" in reason and "3510********0004" in reason
    accepted = {r.line: r.record for r in parsed.rows}
    assert accepted[11]["nik"] == "3510055804900004"


def test_no_message_shows_a_whole_nik_or_phone():
    rows = [
        "198609262015051001,Budi,,,,,,3510.01,,021-7654321,,,9910055704900003,,",  # bad NIK
        "198609262015051002,Budi,,,,,,3510.01,,+6221 7654321,,,351005570490,,",  # short NIK
        "198609262015051003,Budi,,,,,,3510.01,,0812345,,,3510055704900003,,",  # mismatch
        # a shifted row: the phone in KODE_UNOR, the NIK in STATUS
        "198609262015051004,Budi,,,,,,081234567890,,,,3510055704900005,,,",
    ]
    parsed = read("employees", with_header("employees", *rows))
    messages = " ".join(str(e) + str(e.column) for e in parsed.errors + parsed.warnings)
    assert len(parsed.errors) == 7 and len(parsed.warnings) == 2  # date and gender
    for secret in ("7654321", "0812345", "9910055704900003", "351005570490",
                   "3510055704900003", "081234567890", "3510055704900005"):
        assert secret not in messages


def test_a_file_without_header():
    parsed = read("employees", "198609262015051001,Budi,3510055704900003\n")
    assert [(e.line, e.column) for e in parsed.errors] == [(1, None)]
    assert "must be the header" in parsed.errors[0].reason
    assert "3510055704900003" not in parsed.errors[0].reason


def test_a_row_with_several_problems_reports_each_once():
    row = "12345,,,,X,31-02-1990,ASN,35100,-bad,0,a@b,?,1,2,2020-13-01"
    found = problems(read("employees", with_header("employees", row)))
    assert [column for column, _ in found[2]] == [
        "NIP", "JENIS_KELAMIN", "TANGGAL_LAHIR", "JENIS_PEGAWAI", "KODE_UNOR", "KODE_JABATAN",
        "NOMOR_HP", "EMAIL", "STATUS", "NIK", "NIP_ATASAN", "TMT_UNOR", "NAMA"]


def test_line_numbers_count_physical_lines():
    rows = ['198609262015051001,"Budi',  # a quoted name over lines 2-3
            'Santoso",,,,,,3510.01,,,,,,,', "", "  ", "x,Ani,,,,,,3510.01"]
    parsed = read("employees", with_header("employees", *rows))
    assert [row.line for row in parsed.rows] == [2]
    assert records(parsed)[0]["name"] == "Budi Santoso"  # inner whitespace collapsed
    assert [(e.line, e.column) for e in parsed.errors] == [(6, "NIP")]


# -- file format ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_semicolons_read_like_commas(kind):
    assert records(read(kind, semicolons(sample(kind)))) == records(read(kind, sample(kind)))


def test_semicolon_file_with_decimal_commas():
    text = "KODE_UNOR;NAMA_UNOR;JENIS_UNOR;NAMA_KANTOR;LINTANG;BUJUR\n" \
           "3510;Pemkab;pemda;Kantor;-8,2192;114,3691\n"
    office = records(read("units", text))[0]["offices"][0]
    assert (office["latitude"], office["longitude"]) == (-8.2192, 114.3691)


@pytest.mark.parametrize("kind", KINDS)
def test_bom_and_crlf_and_bytes(kind):
    expected = records(read(kind, sample(kind)))
    with_bom = "\ufeff" + sample(kind).replace("\n", "\r\n")
    assert records(read(kind, with_bom)) == expected
    assert records(read(kind, with_bom.encode("utf-8"))) == expected


def test_bytes_that_are_not_utf8():
    parsed = read("units", "KODE_UNOR,NAMA_UNOR,JENIS_UNOR\n3510,Caf\xe9,pemda\n".encode("cp1252"))
    assert [(e.line, e.column) for e in parsed.errors] == [(2, None)]
    assert "UTF-8" in parsed.errors[0].reason


def test_header_any_case_any_order_optional_columns_left_out():
    text = with_header("positions", "3510.01, Bagian Umum ,SEKDA.X ,Y,STRUKTURAL",
                       header=" kode_unor ,Nama_Jabatan,KODE_JABATAN,kepala_unor,jenis_jabatan")
    assert records(read("positions", text)) == [{
        "id": "SEKDA.X", "title": "Bagian Umum", "kind": "struktural", "unit": "3510.01",
        "heads_unit": True, "may_sign": True, "superior": None, "active": True}]


@pytest.mark.parametrize(("header", "expected"), [
    ("NIP,NAMA,KODE_UNOR,UNIT_KERJA,JABATAN", [("UNIT_KERJA", "unknown column"),
                                               ("JABATAN", "unknown column")]),
    ("NIP,KODE_UNOR", [("NAMA", "required column, missing")]),
    ("NIP,NAMA,KODE_UNOR,nip", [("NIP", "appears twice")]),
])
def test_header_problems_reject_the_file(header, expected):
    parsed = read("employees", with_header("employees", "198609262015051001,Budi,3510",
                                           header=header))
    assert parsed.rows == []
    assert [(e.line, e.column) for e in parsed.errors] == [(1, c) for c, _ in expected]
    for error, (_, words) in zip(parsed.errors, expected, strict=True):
        assert words in error.reason


@pytest.mark.parametrize("text", ["", "\n\n", " \n;;\n"])
def test_empty_file(text):
    parsed = read("units", text)
    assert parsed.rows == [] and [(e.line, e.column) for e in parsed.errors] == [(1, None)]
    assert "header" in parsed.errors[0].reason


def test_trailing_empty_columns_are_ignored_but_not_values_in_them():
    text = "KODE_UNOR;NAMA_UNOR;JENIS_UNOR;;\n3510;Pemkab;pemda;;\n3510.01;Setda;opd;;x\n"
    parsed = read("units", text)
    assert [r.line for r in parsed.rows] == [2]
    assert [(e.line, e.column) for e in parsed.errors] == [(3, None)]
    assert "column 5" in parsed.errors[0].reason


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        parse("pegawai", "")
    with pytest.raises(ValueError, match="kind"):
        export("pegawai", [])


# -- cell values ------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["1986-09-26", "26-09-1986", "26/09/1986", "26/9/1986"])
def test_dates(written):
    row = f"198609262015051001,Budi,,,,{written},,3510.01"
    assert records(read("employees", with_header("employees", row)))[0]["birth_date"] == \
        date(1986, 9, 26)


@pytest.mark.parametrize(("written", "value"), [
    ("Y", True), ("n", False), ("Ya", True), ("TIDAK", False), ("1", True), ("0", False),
    ("true", True), ("False", False), ("", True)])
def test_booleans(written, value):
    text = with_header("units", f"3510,Pemkab,pemda,,,,,,{written}")
    assert records(read("units", text))[0]["active"] is value


@pytest.mark.parametrize(("written", "value"), [
    ("struktural", "struktural"), ("FUNGSIONAL", "fungsional"), ("Pelaksana", "pelaksana"),
    ("JPT", "struktural"), ("JF", "fungsional"), ("JFT", "fungsional"), ("JFU", "pelaksana"),
    ("Fungsional Tertentu", "fungsional"), ("fungsional umum", "pelaksana")])
def test_position_kinds(written, value):
    text = with_header("positions", f"P1,Judul,{written},3510.01")
    assert records(read("positions", text))[0]["kind"] == value


@pytest.mark.parametrize(("written", "value"), [
    ("L", "L"), ("laki-laki", "L"), ("Laki Laki", "L"), ("PRIA", "L"), ("1", "L"),
    ("P", "P"), ("Perempuan", "P"), ("wanita", "P"), ("2", "P")])
def test_genders(written, value):
    nip = "198609262015051001" if value == "L" else "198609262015052001"
    row = f"{nip},Budi,,,{written},,,3510.01"
    assert records(read("employees", with_header("employees", row)))[0]["gender"] == value


@pytest.mark.parametrize(("written", "value"), [
    ("AKTIF", "active"), ("cltn", "unpaid_leave"), ("CB", "long_leave"), ("Pensiun", "retired"),
    ("PINDAH", "transferred_out"), ("active", "active"), ("long_leave", "long_leave"),
    ("RETIRED", "retired"), ("transferred_out", "transferred_out"), ("", "active")])
def test_statuses(written, value):
    row = f"198609262015051001,Budi,,,,,,3510.01,,,,{written}"
    assert records(read("employees", with_header("employees", row)))[0]["status"] == value


@pytest.mark.parametrize(("written", "value"), [
    ("WIB", "Asia/Jakarta"), ("wita", "Asia/Makassar"), ("WIT", "Asia/Jayapura"),
    ("Asia/Makassar", "Asia/Makassar"), ("", "Asia/Jakarta")])
def test_timezones(written, value):
    text = with_header("units", f"3510,Pemkab,pemda,{written}")
    assert records(read("units", text))[0]["timezone"] == value


def test_employee_kind_given_must_fit_the_number():
    rows = ["199306082023212014,Dewi,,,,,PNS,3510.01", "199306082023212015,Dewi,,,,,PPPK,3510.01",
            "198609262015051001,Budi,,,,,PPPK,3510.01"]
    parsed = read("employees", with_header("employees", *rows))
    assert [r.line for r in parsed.rows] == [3]
    assert [(e.line, e.column) for e in parsed.errors] == [(2, "NIP"), (4, "NIP")]


def test_supervisor_must_be_a_valid_staff_number():
    row = "198609262015051001,Budi,,,,,,3510.01,,,,,,198613262015051001"
    assert problems(read("employees", with_header("employees", row)))[2][0][0] == "NIP_ATASAN"


@pytest.mark.parametrize(("row", "column", "words"), [
    ("3510,Pemkab,pemda,,Kantor,-12,114", "LINTANG", "between -11 and 6"),
    ("3510,Pemkab,pemda,,Kantor,-8.2,150", "BUJUR", "between 95 and 141"),
    ("3510,Pemkab,pemda,,Kantor,-8.2,114.3,5", "RADIUS_M", "between 10 and 5000"),
    ("3510,Pemkab,pemda,,Kantor,utara,114.3", "LINTANG", "not a number"),
    ("3510,Pemkab,pemda,,Kantor,,114.3", "LINTANG", "is empty"),
    ("3510,Pemkab,pemda,,,-8.2", "LINTANG", "without NAMA_KANTOR"),
    ("3510,Pemkab,pemda,,,,,150", "RADIUS_M", "without NAMA_KANTOR"),
    ("3510,Pemkab,kabupaten", "JENIS_UNOR", "is not one of"),
    ("3510,Pemkab,pemda,WITA+1", "ZONA_WAKTU", "is not one of"),
    ("3510,,pemda", "NAMA_UNOR", "is empty"),
    ("351,Pemkab,pemda", "KODE_UNOR", "not a unit code"),
    ("3510,Pemkab,pemda,,,,,,mungkin", "AKTIF", "is not one of"),
])
def test_unit_rejections(row, column, words):
    found = problems(read("units", with_header("units", row)))
    assert [c for c, _ in found[2]] == [column] and words in found[2][0][1]


def test_unit_rows_sharing_a_code():
    rows = ["3510,Pemkab,pemda,WITA,A,-8.2,114.3", "3510,,,WITA,B,-8.3,114.3",
            "3510,Pemkab,opd,,C,-8.3,114.3", "3510,,,,A,-8.3,114.3", "3510,Pemkab",
            "3510.01,,opd", "3510.01,Setda,opd,,D,-8.3,114.3"]
    parsed = read("units", with_header("units", *rows))
    assert [o["name"] for o in records(parsed)[0]["offices"]] == ["A", "B"]
    assert [(e.line, e.column) for e in parsed.errors] == [
        (4, "JENIS_UNOR"), (5, "NAMA_KANTOR"), (6, "NAMA_KANTOR"), (7, "NAMA_UNOR"),
        (8, "KODE_UNOR")]
    assert "line 2" in parsed.errors[0].reason and "line 7" in parsed.errors[-1].reason


@pytest.mark.parametrize(("row", "column", "words"), [
    ("P1,Kepala,fungsional,3510.01,Y", "KEPALA_UNOR", "must be struktural"),
    ("P1,Kepala,struktural,3510.01,,,P1", "KODE_JABATAN_ATASAN", "its own superior"),
    ("P 1,Kepala,struktural,3510.01", "KODE_JABATAN", "not a position code"),
    ("P1,Kepala,eselon,3510.01", "JENIS_JABATAN", "is not one of"),
    ("P1,,struktural,3510.01", "NAMA_JABATAN", "is empty"),
    ("P1,Kepala,struktural,", "KODE_UNOR", "is empty"),
    ("P1," + "x" * 201 + ",struktural,3510.01", "NAMA_JABATAN", "longer than 200"),
])
def test_position_rejections(row, column, words):
    found = problems(read("positions", with_header("positions", row)))
    assert [c for c, _ in found[2]] == [column] and words in found[2][0][1]


def test_positions_duplicates_and_second_head():
    rows = ["P1,Kepala,struktural,3510.01,Y", "P1,Lagi,pelaksana,3510.01",
            "P2,Kepala lama,struktural,3510.01,Y,,,N", "P3,Kepala baru,struktural,3510.01,Y"]
    parsed = read("positions", with_header("positions", *rows))
    assert [r.line for r in parsed.rows] == [2, 4]
    assert [(e.line, e.column, "line 2" in e.reason) for e in parsed.errors] == [
        (3, "KODE_JABATAN", True), (5, "KEPALA_UNOR", True)]


# -- round trips over generated records -----------------------------------------------------

genders = st.sampled_from(["L", "P"])
words = st.text(st.characters(categories=["L"]) | st.sampled_from(",;\"'.-"), min_size=1,
                max_size=10)
texts = st.lists(words, min_size=1, max_size=5).map(" ".join)
unit_codes = st.from_regex(r"35[0-9]{2}(\.[0-9]{2}){0,3}", fullmatch=True)
position_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
optional_dates = st.none() | st.dates(date(1970, 1, 1), date(2030, 12, 31))


@st.composite
def staff_numbers(draw, gender=None, birth=None):
    gender = gender or draw(genders)
    if draw(st.booleans()):  # PNS: appointed at 18 or older, by 2024
        birth = birth or draw(st.dates(date(1950, 1, 1), date(2006, 1, 31)))
        month = draw(st.integers((birth.year + 18) * 12 + birth.month - 1, 2024 * 12 + 11))
        middle = f"{month // 12}{month % 12 + 1:02d}"
    else:  # PPPK: appointed 2019-2024
        birth = birth or draw(st.dates(date(1950, 1, 1), date(2006, 12, 31)))
        middle = f"{draw(st.integers(max(2019, birth.year + 18), 2024))}21"
    sequence = draw(st.integers(1, 999))
    return f"{birth:%Y%m%d}{middle}{'1' if gender == 'L' else '2'}{sequence:03d}"


@st.composite
def niks(draw):
    province = draw(st.sampled_from(["31", "32", "33", "35", "51"]))
    regency, district = draw(st.integers(1, 99)), draw(st.integers(1, 99))
    birth = draw(st.dates(date(1950, 1, 1), date(2006, 12, 31)))
    day = birth.day + draw(st.sampled_from([0, 40]))
    return f"{province}{regency:02d}{district:02d}{day:02d}{birth:%m%y}" \
           f"{draw(st.integers(1, 9999)):04d}"


@st.composite
def employee_records(draw):
    nip = draw(staff_numbers())
    staff = parse_staff_number(nip, today=TODAY)
    supervisor = draw(st.none() | staff_numbers().filter(lambda n: n != nip))
    local = draw(st.from_regex(r"[a-z0-9][a-z0-9._]{0,15}", fullmatch=True))
    domain = draw(st.from_regex(r"[a-z0-9]{1,10}(\.[a-z]{2,6}){1,2}", fullmatch=True))
    phone = "+628" + draw(st.sampled_from("12356789")) + draw(
        st.text("0123456789", min_size=7, max_size=10))
    return {
        "nip": nip, "kind": staff.kind, "name": draw(texts),
        "title_front": draw(st.none() | texts), "title_back": draw(st.none() | texts),
        "gender": staff.gender, "birth_date": staff.birth_date, "unit": draw(unit_codes),
        "position": draw(st.none() | position_ids), "phone": draw(st.none() | st.just(phone)),
        "email": draw(st.none() | st.just(f"{local}@{domain}")),
        "status": draw(st.sampled_from(["active", "long_leave", "unpaid_leave", "retired",
                                        "transferred_out"])),
        "nik": draw(st.none() | niks()), "supervisor": supervisor,
        "effective_date": draw(optional_dates),
    }


offices = st.fixed_dictionaries({
    "name": texts, "latitude": st.floats(-11, 6), "longitude": st.floats(95, 141),
    "radius_m": st.integers(10, 5000)})
unit_records = st.fixed_dictionaries({
    "code": unit_codes, "name": texts,
    "kind": st.sampled_from(["pemda", "opd", "bidang", "subbidang", "seksi", "uptd",
                             "kecamatan", "kelurahan"]),
    "timezone": st.sampled_from(["Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"]),
    "offices": st.lists(offices, max_size=3, unique_by=lambda o: o["name"]),
    "active": st.booleans()})


@settings(max_examples=150, deadline=None)
@given(st.lists(employee_records(), max_size=5, unique_by=lambda e: e["nip"]))
def test_employees_round_trip(employees):
    parsed = read("employees", export("employees", employees))
    assert parsed.errors == []
    assert records(parsed) == employees


@settings(max_examples=100, deadline=None)
@given(st.lists(unit_records, max_size=4, unique_by=lambda u: u["code"]))
def test_units_round_trip(units):
    parsed = read("units", export("units", units))
    assert parsed.errors == []
    assert records(parsed) == units


def test_export_quotes_and_line_endings():
    text = export("employees", records(read("employees", sample("employees"))))
    assert text.count("\r\n") == text.count("\n") == 7
    assert '"S.Sos., M.Si."' in text


# -- the demo Pemda -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo():
    files = demo_pemda()
    parsed = {kind: read(kind, files[kind]) for kind in KINDS}
    for result in parsed.values():
        assert result.errors == [] and result.warnings == []
    return {kind: records(result) for kind, result in parsed.items()}


def test_demo_is_deterministic():
    assert demo_pemda() == demo_pemda()


def test_demo_units(demo):
    units = {u["code"]: u for u in demo["units"]}
    assert units["3510"]["kind"] == "pemda"
    opds = [code for code in units if code.count(".") == 1]
    assert opds == [f"3510.0{i}" for i in range(1, 9)]
    for code in opds:
        assert 2 <= sum(c.startswith(code + ".") and c.count(".") == 2 for c in units) <= 5
        assert units[code]["offices"], code
    assert {u["kind"] for u in units.values()} >= {"uptd", "seksi", "bidang", "kecamatan"}
    for unit in units.values():
        assert unit["timezone"] == "Asia/Jakarta"
        for office in unit["offices"]:
            assert -8.6 <= office["latitude"] <= -8.2 and 114.0 <= office["longitude"] <= 114.4


def test_demo_positions(demo):
    units = {u["code"] for u in demo["units"]}
    positions = {p["id"]: p for p in demo["positions"]}
    for position in positions.values():
        assert position["unit"] in units
        assert position["superior"] is None or position["superior"] in positions
        if position["heads_unit"]:
            assert position["kind"] == "struktural" and position["may_sign"]
    assert positions["BUPATI"]["heads_unit"] and positions["BUPATI"]["superior"] is None
    assert positions["SEKDA"]["unit"] == "3510" and positions["SEKDA"]["superior"] == "BUPATI"
    heads = {p["unit"]: p["id"] for p in positions.values() if p["heads_unit"]}
    assert set(heads) == units  # every unit has exactly one head position
    for code, head in heads.items():
        if code.count(".") == 1:
            assert positions[head]["superior"] == "SEKDA"
        elif "." in code:
            assert positions[head]["superior"] == heads[code.rsplit(".", 1)[0]]
    kinds = Counter(p["kind"] for p in positions.values() if not p["heads_unit"])
    assert kinds["fungsional"] and kinds["pelaksana"]
    titles = {p["title"] for p in positions.values()}
    assert {"Analis Kepegawaian", "Pranata Komputer", "Pengadministrasi Umum", "Guru",
            "Perawat"} <= titles


def test_demo_employees(demo):
    employees = demo["employees"]
    assert len(employees) == 300
    assert len({e["nip"] for e in employees}) == 300
    units = {u["code"] for u in demo["units"]}
    positions = {p["id"]: p for p in demo["positions"]}
    for employee in employees:
        staff = parse_staff_number(employee["nip"], today=TODAY)
        assert (staff.kind, staff.gender, staff.birth_date) == (
            employee["kind"], employee["gender"], employee["birth_date"])
        assert employee["unit"] in units
        assert positions[employee["position"]]["unit"] == employee["unit"]
        assert employee["phone"] is None or MOBILE_E164.fullmatch(employee["phone"])
        assert employee["email"] is None or employee["email"].endswith("@" + EMAIL_DOMAIN)
        if employee["nik"]:
            nik = parse_nik(employee["nik"])
            assert nik.province + nik.regency == "3510"
            assert nik_matches(nik, employee["birth_date"], employee["gender"]) == []
    assert EMAIL_DOMAIN.endswith(".example")  # RFC 2606: can never reach a real mailbox
    pppk = sum(e["kind"] == "pppk" for e in employees)
    assert 0.10 <= pppk / 300 <= 0.20
    away = Counter(e["status"] for e in employees if e["status"] != "active")
    assert 2 <= sum(away.values()) <= 3 and set(away) <= {"unpaid_leave", "retired"}
    assert sum(e["nik"] is not None for e in employees) > 100
    assert any(e["title_front"] == "dr." for e in employees)
    assert len({e["phone"] for e in employees if e["phone"]}) == sum(
        bool(e["phone"]) for e in employees)
    names = " ".join(e["name"] for e in employees)
    assert re.search(r"\bSiti\b", names) and re.search(r"\bAgus\b", names)


def test_demo_heads_filled_except_the_vacant_one(demo):
    positions = {p["id"]: p for p in demo["positions"]}
    holders = Counter(e["position"] for e in demo["employees"] if e["status"] == "active")
    struktural = [p for p in positions.values() if p["kind"] == "struktural"]
    vacant = sorted(p["id"] for p in struktural if holders[p["id"]] == 0)
    assert vacant == sorted(["BUPATI", VACANT_HEAD_POSITION])  # the Bupati is elected
    assert all(holders[p["id"]] == 1 for p in struktural if p["id"] not in vacant)
    assert positions[VACANT_HEAD_POSITION]["heads_unit"]
    assert positions[VACANT_HEAD_POSITION]["unit"].count(".") == 1  # an OPD
    inactive_holders = [e for e in demo["employees"] if e["status"] != "active"
                        and positions[e["position"]]["kind"] == "struktural"]
    assert inactive_holders == []


def test_module_docstring_documents_every_column():
    for columns in COLUMNS.values():
        for column in columns:
            assert f"| {column} " in csvio.__doc__, column


def test_export_guards_cells_a_spreadsheet_would_run_as_formulas():
    record = {"nip": "198609262015051001", "kind": "pns", "name": "=HYPERLINK(\"x\")",
              "title_front": "@dr.", "title_back": "-S.Kom.", "gender": "L",
              "birth_date": date(1986, 9, 26), "unit": "3510.01", "position": None,
              "phone": "+6281234567890", "email": None, "status": "active", "nik": None,
              "supervisor": None, "effective_date": None}
    text = csvio.export("employees", [record])
    assert "'=HYPERLINK" in text and "'@dr." in text and "'-S.Kom." in text
    assert ",+6281234567890," in text  # a plain number is left alone
    parsed = csvio.parse("employees", text, today=date(2025, 6, 30))
    assert parsed.errors == [] and parsed.rows[0].record == record
