from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pamong.identifiers import (
    PROVINCE_CODES,
    Nik,
    StaffNumber,
    nik_matches,
    parse_nik,
    parse_nip,
    parse_pppk,
    parse_staff_number,
    staff_kind,
)

pytestmark = pytest.mark.unit

TODAY = date(2025, 6, 30)  # fixed: no test depends on the clock

NIP = "198609262015051001"
PPPK = "199003122023212019"
NIK = "3602041211870001"
NIK_MASKED = "3602********0001"

# -- strategies ------------------------------------------------------------------------

genders = st.sampled_from(["L", "P"])
_G = {"L": "1", "P": "2"}


def _months(year, month):
    return year * 12 + month - 1


@st.composite
def nip_parts(draw):
    """Valid NIP parts: born 1900-TODAY, appointed 1950-TODAY at 18 or older."""
    birth = draw(st.dates(date(1900, 1, 1), date(TODAY.year - 18, TODAY.month, 1)))
    lowest = max(_months(1950, 1), _months(birth.year + 18, birth.month))
    appointed = draw(st.integers(lowest, _months(TODAY.year, TODAY.month)))
    return dict(birth_date=birth, appointed_year=appointed // 12,
                appointed_month=appointed % 12 + 1, gender=draw(genders),
                sequence=draw(st.integers(1, 999)))


@st.composite
def pppk_parts(draw):
    """Valid NI PPPK parts: appointed 2019-TODAY.year, born at least 18 years before."""
    year = draw(st.integers(2019, TODAY.year))
    birth = draw(st.dates(date(1940, 1, 1), date(year - 18, 12, 31)))
    return dict(birth_date=birth, appointed_year=year, appointed_month=None,
                gender=draw(genders), sequence=draw(st.integers(1, 999)))


@st.composite
def nik_parts(draw):
    """Valid NIK parts; the birth date is a real date of 1900-2099."""
    birth = draw(st.dates(date(1900, 1, 1), date(2099, 12, 31)))
    return dict(province=draw(st.sampled_from(sorted(PROVINCE_CODES))),
                regency=f"{draw(st.integers(1, 99)):02d}",
                district=f"{draw(st.integers(1, 99)):02d}",
                gender=draw(genders), birth_date=birth, sequence=draw(st.integers(1, 9999)))


def compose_nip(p):
    return (f"{p['birth_date']:%Y%m%d}{p['appointed_year']:04d}{p['appointed_month']:02d}"
            f"{_G[p['gender']]}{p['sequence']:03d}")


def compose_pppk(p):
    return (f"{p['birth_date']:%Y%m%d}{p['appointed_year']:04d}21"
            f"{_G[p['gender']]}{p['sequence']:03d}")


def compose_nik(p):
    day = p["birth_date"].day + (40 if p["gender"] == "P" else 0)
    return (f"{p['province']}{p['regency']}{p['district']}"
            f"{day:02d}{p['birth_date']:%m%y}{p['sequence']:04d}")


def replace(number, start, digits):
    return number[:start] + digits + number[start + len(digits):]


# -- NIP ------------------------------------------------------------------------------


def test_nip_example():
    assert parse_nip(NIP, today=TODAY) == StaffNumber(
        number=NIP, kind="pns", birth_date=date(1986, 9, 26), appointed_year=2015,
        appointed_month=5, gender="L", sequence=1)


def test_nip_strips_whitespace_and_defaults_today_to_the_clock():
    assert parse_nip(f"  {NIP}\n") == parse_nip(NIP, today=TODAY)
    assert parse_nip(NIP, today=datetime(2025, 6, 30, 12, 0)) == parse_nip(NIP, today=TODAY)


@pytest.mark.parametrize("bad, reason", [
    (None, "NIP must be a string of 18 digits, got NoneType"),
    (198609262015051001, "NIP must be a string of 18 digits, got int"),
    ("", "NIP must be 18 digits"),
    ("19860926201505100", "NIP must be 18 digits"),
    ("1986092620150510011", "NIP must be 18 digits"),
    ("19860926 201505 1 001", "NIP must be 18 digits"),
    ("19860926201505100x", "NIP must be 18 digits"),
    ("١٩٨٦٠٩٢٦٢٠١٥٠٥١٠٠١", "NIP must be 18 digits"),  # Arabic-Indic digits are not digits
    ("198613262015051001", "NIP 198613262015051001: birth date 1986-13-26 is not a date"),
    ("198602302015051001", "birth date 1986-02-30 is not a date"),
    ("198609002015051001", "birth date 1986-09-00 is not a date"),
    ("000009262015051001", "birth date 0000-09-26 is not a date"),
    ("202507012015051001", "birth date 2025-07-01 is in the future"),
    ("198609262015131001", "appointment month 2015-13 is not a month"),
    ("198609262015001001", "appointment month 2015-00 is not a month"),
    ("198609262015212001", r"2015-21 is not a month \(digits 13-14 '21' mark an NI PPPK\)"),
    ("192009261949051001", "appointment 1949-05 is before 1950"),
    ("198609262025071001", "appointment 2025-07 is in the future"),
    ("198609262004081001", r"appointment 2004-08 is before age 18 \(born 1986-09-26\)"),
    ("198609262015053001", "gender digit 3 is not 1 \\(L\\) or 2 \\(P\\)"),
    ("198609262015050001", "gender digit 0"),
    ("198609262015051000", "sequence 000 is not 001-999"),
])
def test_nip_rejections(bad, reason):
    with pytest.raises(ValueError, match=reason):
        parse_nip(bad, today=TODAY)


def test_nip_boundaries():
    # 18 years to the month, appointed this month, born today
    assert parse_nip("198609262004091001", today=TODAY).appointed_month == 9
    assert parse_nip("198609262025061001", today=TODAY).appointed_year == 2025
    assert parse_nip("193001011950011001", today=TODAY).appointed_year == 1950
    with pytest.raises(ValueError, match="before age 18"):
        parse_nip("202506302025061001", today=TODAY)


@given(nip_parts())
def test_nip_round_trip(parts):
    number = compose_nip(parts)
    assert parse_nip(number, today=TODAY) == StaffNumber(number=number, kind="pns", **parts)
    assert staff_kind(number) == "pns"
    assert parse_staff_number(number, today=TODAY) == parse_nip(number, today=TODAY)


@given(nip_parts(), st.sampled_from([
    (4, "13", "birth date"), (4, "00", "birth date"), (6, "32", "birth date"),
    (6, "00", "birth date"), (12, "13", "appointment month"), (12, "00", "appointment month"),
    (14, "3", "gender digit"), (15, "000", "sequence"),
]))
def test_nip_mutated_part_is_rejected(parts, mutation):
    start, digits, reason = mutation
    with pytest.raises(ValueError, match=reason):
        parse_nip(replace(compose_nip(parts), start, digits), today=TODAY)


# -- NI PPPK ------------------------------------------------------------------------------


def test_pppk_example():
    assert parse_pppk(PPPK, today=TODAY) == StaffNumber(
        number=PPPK, kind="pppk", birth_date=date(1990, 3, 12), appointed_year=2023,
        appointed_month=None, gender="P", sequence=19)


@pytest.mark.parametrize("bad, reason", [
    (None, "NI PPPK must be a string of 18 digits"),
    ("19900312202321201", "NI PPPK must be 18 digits"),
    ("199013122023212019", "NI PPPK 199013122023212019: birth date 1990-13-12 is not a date"),
    ("202607012023212019", "birth date 2026-07-01 is in the future"),
    ("199003122018212019", "appointment year 2018 is before 2019"),
    ("199003122026212019", "appointment year 2026 is in the future"),
    ("199003122023052019", "digits 13-14 are '05', expected '21'"),
    ("200601012023212019", r"appointment year 2023 is before age 18 \(born 2006-01-01\)"),
    ("199003122023213019", "gender digit 3"),
    ("199003122023212000", "sequence 000"),
])
def test_pppk_rejections(bad, reason):
    with pytest.raises(ValueError, match=reason):
        parse_pppk(bad, today=TODAY)


def test_pppk_age_is_counted_in_whole_years():
    # born December 2005, appointed 2023: 18 in the appointment year
    assert parse_pppk("200512312023211001", today=TODAY).birth_date == date(2005, 12, 31)


@given(pppk_parts())
def test_pppk_round_trip(parts):
    number = compose_pppk(parts)
    assert parse_pppk(number, today=TODAY) == StaffNumber(number=number, kind="pppk", **parts)
    assert staff_kind(number) == "pppk"
    assert parse_staff_number(number, today=TODAY) == parse_pppk(number, today=TODAY)


@given(pppk_parts(), st.sampled_from([
    (4, "13", "birth date"), (4, "00", "birth date"), (6, "32", "birth date"),
    (6, "00", "birth date"), (12, "13", "digits 13-14"), (14, "3", "gender digit"),
    (15, "000", "sequence"),
]))
def test_pppk_mutated_part_is_rejected(parts, mutation):
    start, digits, reason = mutation
    with pytest.raises(ValueError, match=reason):
        parse_pppk(replace(compose_pppk(parts), start, digits), today=TODAY)


# -- kind dispatch ------------------------------------------------------------------------


def test_staff_kind():
    assert staff_kind(NIP) == "pns"
    assert staff_kind(f" {PPPK} ") == "pppk"
    assert staff_kind("000000000000210000") == "pppk"  # no validation beyond 18 digits
    with pytest.raises(ValueError, match="staff number .* must be 18 digits"):
        staff_kind("12345")
    with pytest.raises(ValueError, match="must be a string"):
        staff_kind(None)


def test_parse_staff_number_kind():
    assert parse_staff_number(NIP, today=TODAY).kind == "pns"
    assert parse_staff_number(PPPK, today=TODAY).kind == "pppk"
    assert parse_staff_number(NIP, kind="pns", today=TODAY) == parse_nip(NIP, today=TODAY)
    with pytest.raises(ValueError, match="NI PPPK .* digits 13-14 are '05'"):
        parse_staff_number(NIP, kind="pppk", today=TODAY)
    with pytest.raises(ValueError, match="NIP .* '21' mark an NI PPPK"):
        parse_staff_number(PPPK, kind="pns", today=TODAY)
    with pytest.raises(ValueError, match="kind must be 'pns', 'pppk' or None"):
        parse_staff_number(NIP, kind="PNS", today=TODAY)
    with pytest.raises(ValueError, match="must be 18 digits"):
        parse_staff_number("123", today=TODAY)


# -- NIK ------------------------------------------------------------------------------


def test_nik_example():
    nik = parse_nik(NIK)
    assert nik == Nik(number=NIK, province="36", regency="02", district="04", gender="L",
                      birth_day=12, birth_month=11, birth_year_2=87, sequence=1)
    assert nik.birth_date_candidates() == [date(1987, 11, 12), date(2087, 11, 12)]
    assert parse_nik(f"\t{NIK} ") == nik


def test_nik_repr_is_masked():
    assert repr(parse_nik(NIK)) == f"Nik('{NIK_MASKED}')"
    assert NIK not in str(parse_nik(NIK))


def test_nik_female_and_century():
    nik = parse_nik("3175065202000123")  # day 52 = 12 + 40, February 2000 (or 1900)
    assert (nik.gender, nik.birth_day, nik.birth_month, nik.birth_year_2) == ("P", 12, 2, 0)
    leap = parse_nik("3175066902000123")  # 29-02-00: only 2000 was a leap year
    assert leap.birth_date_candidates() == [date(2000, 2, 29)]
    both = parse_nik("3175062902040123")  # 29-02-04: 1904 and 2004 were both leap years
    assert both.birth_date_candidates() == [date(1904, 2, 29), date(2004, 2, 29)]


@pytest.mark.parametrize("province", ["93", "94", "95", "96", "34", "65", "76", "82"])
def test_nik_recent_and_edge_provinces(province):
    assert parse_nik(province + NIK[2:]).province == province


@pytest.mark.parametrize("bad, reason", [
    (None, "NIK must be a string of 16 digits, got NoneType"),
    (3602041211870001, "NIK must be a string of 16 digits, got int"),
    ("360204121187000", "NIK must be 16 digits"),
    ("36020412118700011", "NIK must be 16 digits"),
    ("3602 0412 1187 0001", "NIK must be 16 digits"),
    ("3602041211870O01", "NIK must be 16 digits"),
    ("1002041211870001", "NIK 1002\\*{8}0001: province code 10 does not exist"),
    ("2002041211870001", "province code 20"),
    ("3702041211870001", "province code 37"),
    ("5402041211870001", "province code 54"),
    ("8302041211870001", "province code 83"),
    ("9002041211870001", "province code 90"),
    ("9702041211870001", "province code 97"),
    ("3600041211870001", "regency code is 00"),
    ("3602001211870001", "district code is 00"),
    ("3602040011870001", "birth day 00 is not 01-31 \\(L\\) or 41-71 \\(P\\)"),
    ("3602043211870001", "birth day 32"),
    ("3602044011870001", "birth day 40"),
    ("3602047211870001", "birth day 72"),
    ("3602049911870001", "birth day 99"),
    ("3602041213870001", "birth month 13 is not 01-12"),
    ("3602041200870001", "birth month 00"),
    ("3602041211870000", "sequence 0000 is not 0001-9999"),
    ("3602043104870001", "birth day 31 month 04 is not a date in either century"),
    ("3602047104870001", "birth day 31 month 04"),  # female
    ("3602043002870001", "birth day 30 month 02"),
    ("3602042902870001", "birth day 29 month 02"),  # 1987 and 2087 are not leap years
])
def test_nik_rejections(bad, reason):
    with pytest.raises(ValueError, match=reason) as info:
        parse_nik(bad)
    if isinstance(bad, str):
        assert bad.strip() not in str(info.value)


@given(nik_parts())
def test_nik_round_trip(parts):
    number = compose_nik(parts)
    birth = parts["birth_date"]
    nik = parse_nik(number)
    assert nik == Nik(number=number, province=parts["province"], regency=parts["regency"],
                      district=parts["district"], gender=parts["gender"],
                      birth_day=birth.day, birth_month=birth.month,
                      birth_year_2=birth.year % 100, sequence=parts["sequence"])
    assert birth in nik.birth_date_candidates()
    assert nik_matches(nik, birth_date=birth, gender=parts["gender"]) == []


@given(nik_parts(), st.sampled_from([
    (6, "32", "birth day"), (6, "00", "birth day"), (6, "40", "birth day"),
    (6, "72", "birth day"), (8, "13", "birth month"), (8, "00", "birth month"),
    (12, "0000", "sequence"), (2, "00", "regency"), (4, "00", "district"),
    (0, "00", "province"),
]))
def test_nik_mutated_part_is_rejected(parts, mutation):
    start, digits, reason = mutation
    number = replace(compose_nik(parts), start, digits)
    with pytest.raises(ValueError, match=reason) as info:
        parse_nik(number)
    assert number not in str(info.value)


@given(st.text(alphabet="0123456789", min_size=16, max_size=16))
def test_nik_messages_never_contain_the_nik(number):
    try:
        parse_nik(number)
    except ValueError as error:
        assert number not in str(error)
        assert number[4:12] not in str(error)


# -- nik_matches --------------------------------------------------------------------------


def test_nik_matches_consistent():
    nik = parse_nik(NIK)
    assert nik_matches(nik) == []
    assert nik_matches(nik, birth_date=date(1987, 11, 12), gender="L") == []
    assert nik_matches(nik, birth_date=date(2087, 11, 12)) == []  # century is ambiguous
    assert nik_matches(nik, birth_date=datetime(1987, 11, 12, 8, 30), gender=" l ") == []


def test_nik_matches_warns_instead_of_raising():
    nik = parse_nik(NIK)
    assert nik_matches(nik, birth_date=date(1987, 11, 13)) == [
        f"NIK {NIK_MASKED}: birth day in the NIK differs from the stated birth date"]
    assert nik_matches(nik, birth_date=date(1988, 12, 12)) == [
        f"NIK {NIK_MASKED}: birth month and year in the NIK differ from the stated birth date"]
    assert nik_matches(nik, birth_date=date(1986, 10, 11), gender="P") == [
        f"NIK {NIK_MASKED}: birth day, month and year in the NIK differ from the stated "
        "birth date",
        f"NIK {NIK_MASKED}: gender L in the NIK differs from the stated gender P",
    ]
    female = parse_nik("3602045211870001")
    assert nik_matches(female, gender="L") == [
        f"NIK {NIK_MASKED}: gender P in the NIK differs from the stated gender L"]


def test_nik_matches_rejects_bad_arguments():
    nik = parse_nik(NIK)
    with pytest.raises(ValueError, match="parsed Nik"):
        nik_matches(NIK)
    with pytest.raises(ValueError, match="birth_date must be a date"):
        nik_matches(nik, birth_date="1987-11-12")
    with pytest.raises(ValueError, match="gender must be 'L' or 'P'"):
        nik_matches(nik, gender="M")


@given(nik_parts(), st.dates(date(1900, 1, 1), date(2099, 12, 31)), genders)
def test_nik_matches_never_raises_on_a_mismatch(parts, stated, gender):
    nik = parse_nik(compose_nik(parts))
    warnings = nik_matches(nik, birth_date=stated, gender=gender)
    same_date = (stated.day, stated.month, stated.year % 100) == (
        nik.birth_day, nik.birth_month, nik.birth_year_2)
    assert len(warnings) == (not same_date) + (gender != nik.gender)
    assert all(nik.number not in warning for warning in warnings)
