"""Indonesian staff and citizen numbers: NIP, NI PPPK and NIK (DOMAIN "Identifiers").

Pure functions, no I/O. Every parser takes a ``str`` (surrounding whitespace is stripped),
raises ValueError naming the wrong part, and returns a frozen dataclass of the parts.
``today`` defaults to ``date.today()``; pass it explicitly for reproducible results.

- **NIP** (PNS employee id, 18 digits) ``YYYYMMDD YYYYMM G NNN``: the birth date is a real
  date and not after ``today``; the CPNS appointment year-month has a month 01-12, a year from
  1950, is not after ``today``'s month, and is at least 18 years (216 months, compared by
  year and month only) after the birth year-month; ``G`` is 1 (laki-laki, ``"L"``) or 2
  (perempuan, ``"P"``); ``NNN`` is 001-999.
- **NI PPPK** (the number BKN issues to PPPK staff, 18 digits) ``YYYYMMDD YYYY 21 G NNN``:
  DOMAIN says the NIP checks must not be applied to PPPK staff, so ``parse_pppk`` is the
  check for them: the birth date is a real date and not after ``today``; the appointment
  year is 2019 (the first PPPK intake) or later and not after ``today``'s year, and at least
  18 years after the birth year; digits 13-14 are literally ``21``; ``G`` and ``NNN`` as for
  a NIP. A PPPK number has no appointment month (``appointed_month`` is None).
- ``staff_kind`` / ``parse_staff_number`` tell the two apart by digits 13-14 (1-based):
  ``21`` means PPPK (a NIP can never have appointment month 21), anything else PNS.
- **NIK** (citizen id, 16 digits) ``PP KK CC DD MM YY SSSS``: ``PP`` is an existing province
  code (``PROVINCE_CODES``, the Kemendagri codes that Dukcapil uses, including the four Papua
  provinces created in 2022: 93-96); ``KK`` (regency/city) and ``CC`` (district) are not
  ``00``; ``DD`` is 01-31 for men and 41-71 for women (day + 40); ``MM`` is 01-12; ``SSSS``
  is not ``0000``; the century is ambiguous, so day and month must form a real date in
  19YY or in 20YY (``29 02 00`` is fine, 2000 was a leap year; ``31 04`` never is).
- A NIK is personal data: no message from this module contains a whole NIK, only
  ``pamong.privacy.mask_nik`` of it (``3602********0001``), and ``repr(Nik)`` is masked too.
  At most the one wrong field of the hidden middle is named in a rejection message.
- A NIK that disagrees with a stated birth date or gender is a *warning*, never an error
  (a NIK never changes, even when its date is wrong): ``nik_matches`` returns the warnings.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime

from pamong.privacy import mask_nik

__all__ = ["MIN_AGE_AT_APPOINTMENT", "PNS_FIRST_YEAR", "PPPK_FIRST_YEAR", "PPPK_MARKER",
           "PROVINCE_CODES", "Nik", "StaffNumber", "nik_matches", "parse_nik", "parse_nip",
           "parse_pppk", "parse_staff_number", "staff_kind", "staff_mismatches"]

MIN_AGE_AT_APPOINTMENT = 18
PNS_FIRST_YEAR = 1950
PPPK_FIRST_YEAR = 2019
PPPK_MARKER = "21"  # digits 13-14 (1-based) of an NI PPPK

# Kemendagri province codes (the first two NIK digits), as of the 2022 Papua split.
PROVINCE_CODES = frozenset({
    "11", "12", "13", "14", "15", "16", "17", "18", "19",  # Sumatra
    "21",  # Kepulauan Riau
    "31", "32", "33", "34", "35", "36",  # Java
    "51", "52", "53",  # Bali, Nusa Tenggara
    "61", "62", "63", "64", "65",  # Kalimantan
    "71", "72", "73", "74", "75", "76",  # Sulawesi
    "81", "82",  # Maluku
    "91", "92",  # Papua, Papua Barat
    "93", "94", "95", "96",  # Papua Selatan, Tengah, Pegunungan, Barat Daya (2022)
})

_GENDERS = {"1": "L", "2": "P"}
_DIGITS = {16: re.compile(r"[0-9]{16}"), 18: re.compile(r"[0-9]{18}")}
_NIK_FEMALE_OFFSET = 40


@dataclass(frozen=True)
class StaffNumber:
    """A parsed NIP (``kind == "pns"``) or NI PPPK (``kind == "pppk"``)."""

    number: str  # the 18 digits
    kind: str  # "pns" or "pppk"
    birth_date: date
    appointed_year: int
    appointed_month: int | None  # None for PPPK
    gender: str  # "L" (digit 1) or "P" (digit 2)
    sequence: int


@dataclass(frozen=True, repr=False)
class Nik:
    """A parsed NIK. ``repr`` shows only the masked number."""

    number: str
    province: str  # 2 digits
    regency: str  # 2 digits
    district: str  # 2 digits
    gender: str  # "L" or "P" (women add 40 to the day)
    birth_day: int  # 1-31, the 40 already removed
    birth_month: int
    birth_year_2: int  # two-digit year, century ambiguous
    sequence: int

    def __repr__(self):
        return f"Nik({mask_nik(self.number)!r})"

    def birth_date_candidates(self):
        """The real dates among 19YY-MM-DD and 20YY-MM-DD, earliest first."""
        return _nik_dates(self.birth_day, self.birth_month, self.birth_year_2)


# -- staff numbers ----------------------------------------------------------------------


def staff_kind(value):
    """``"pppk"`` when digits 13-14 are ``21``, else ``"pns"``; only the 18 digits are checked."""
    number = _digits(value, 18, "a staff number (NIP or NI PPPK)")
    return "pppk" if number[12:14] == PPPK_MARKER else "pns"


def staff_mismatches(number, gender=None, birth_date=None):
    """``{"gender"|"birth_date": reason}`` where a stated value disagrees with what the staff
    number encodes (the number wins: it is the identity)."""
    stated = {"gender": gender, "birth_date": birth_date}
    return {name: f"{value} differs from the NIP, which encodes {getattr(number, name)}"
            for name, value in stated.items()
            if value is not None and value != getattr(number, name)}


def parse_staff_number(value, kind=None, today=None):
    """Parse a NIP or an NI PPPK; ``kind`` ``"pns"``/``"pppk"`` forces one, None guesses it."""
    if kind is None:
        kind = staff_kind(value)
    if kind == "pns":
        return parse_nip(value, today=today)
    if kind == "pppk":
        return parse_pppk(value, today=today)
    raise ValueError(f"kind must be 'pns', 'pppk' or None, got {kind!r}")


def parse_nip(value, today=None):
    """Parse and check a PNS NIP ``YYYYMMDD YYYYMM G NNN`` (not for PPPK numbers)."""
    number = _digits(value, 18, "a NIP")
    today = _today(today)
    label = f"NIP {number}"
    birth = _birth_date(number[:8], today, label)

    year, month = int(number[8:12]), int(number[12:14])
    shown = f"{number[8:12]}-{number[12:14]}"
    if not 1 <= month <= 12:
        hint = " (digits 13-14 '21' mark an NI PPPK)" if number[12:14] == PPPK_MARKER else ""
        raise ValueError(f"{label}: appointment month {shown} is not a month{hint}")
    if year < PNS_FIRST_YEAR:
        raise ValueError(f"{label}: appointment {shown} is before {PNS_FIRST_YEAR}")
    if (year, month) > (today.year, today.month):
        raise ValueError(f"{label}: appointment {shown} is in the future")
    months_old = (year * 12 + month) - (birth.year * 12 + birth.month)
    if months_old < MIN_AGE_AT_APPOINTMENT * 12:
        raise ValueError(f"{label}: appointment {shown} is before age "
                         f"{MIN_AGE_AT_APPOINTMENT} (born {birth.isoformat()})")

    gender, sequence = _gender_and_sequence(number, label)
    return StaffNumber(number=number, kind="pns", birth_date=birth, appointed_year=year,
                       appointed_month=month, gender=gender, sequence=sequence)


def parse_pppk(value, today=None):
    """Parse and check an NI PPPK ``YYYYMMDD YYYY 21 G NNN`` (the PPPK counterpart of a NIP)."""
    number = _digits(value, 18, "an NI PPPK")
    today = _today(today)
    label = f"NI PPPK {number}"
    if number[12:14] != PPPK_MARKER:
        raise ValueError(f"{label}: digits 13-14 are {number[12:14]!r}, "
                         f"expected {PPPK_MARKER!r} for PPPK")
    birth = _birth_date(number[:8], today, label)

    year = int(number[8:12])
    if year < PPPK_FIRST_YEAR:
        raise ValueError(f"{label}: appointment year {year:04d} is before {PPPK_FIRST_YEAR} "
                         "(the first PPPK intake)")
    if year > today.year:
        raise ValueError(f"{label}: appointment year {year} is in the future")
    if year - birth.year < MIN_AGE_AT_APPOINTMENT:
        raise ValueError(f"{label}: appointment year {year} is before age "
                         f"{MIN_AGE_AT_APPOINTMENT} (born {birth.isoformat()})")

    gender, sequence = _gender_and_sequence(number, label)
    return StaffNumber(number=number, kind="pppk", birth_date=birth, appointed_year=year,
                       appointed_month=None, gender=gender, sequence=sequence)


def _birth_date(digits, today, label):
    shown = f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"
    try:
        birth = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise ValueError(f"{label}: birth date {shown} is not a date") from None
    if birth > today:
        raise ValueError(f"{label}: birth date {shown} is in the future")
    return birth


def _gender_and_sequence(number, label):
    digit = number[14]
    if digit not in _GENDERS:
        raise ValueError(f"{label}: gender digit {digit} is not 1 (L) or 2 (P)")
    if number[15:] == "000":
        raise ValueError(f"{label}: sequence 000 is not 001-999")
    return _GENDERS[digit], int(number[15:])


# -- NIK ----------------------------------------------------------------------------------


def parse_nik(value):
    """Parse and check a NIK ``PP KK CC DD MM YY SSSS``; messages show it masked only."""
    number = _digits(value, 16, "a NIK")
    label = f"NIK {mask_nik(number)}"
    province, regency, district = number[:2], number[2:4], number[4:6]
    day, month, year_2 = int(number[6:8]), int(number[8:10]), int(number[10:12])

    if province not in PROVINCE_CODES:
        raise ValueError(f"{label}: province code {province} does not exist")
    if regency == "00":
        raise ValueError(f"{label}: regency code is 00")
    if district == "00":
        raise ValueError(f"{label}: district code is 00")
    if 1 <= day <= 31:
        gender = "L"
    elif 1 + _NIK_FEMALE_OFFSET <= day <= 31 + _NIK_FEMALE_OFFSET:
        gender, day = "P", day - _NIK_FEMALE_OFFSET
    else:
        raise ValueError(f"{label}: birth day {number[6:8]} is not 01-31 (L) or 41-71 (P)")
    if not 1 <= month <= 12:
        raise ValueError(f"{label}: birth month {number[8:10]} is not 01-12")
    if number[12:] == "0000":
        raise ValueError(f"{label}: sequence 0000 is not 0001-9999")
    if not _nik_dates(day, month, year_2):
        raise ValueError(f"{label}: birth day {day:02d} month {month:02d} is not a date "
                         "in either century")
    return Nik(number=number, province=province, regency=regency, district=district,
               gender=gender, birth_day=day, birth_month=month, birth_year_2=year_2,
               sequence=int(number[12:]))


def nik_matches(nik, birth_date=None, gender=None):
    """Warnings (human-readable, NIK masked) where ``nik`` disagrees with the stated data.

    An empty list means consistent. A mismatch is never an error (DOMAIN): only a ``nik`` that
    is not a ``Nik``, a ``birth_date`` that is not a date or a ``gender`` other than ``"L"`` /
    ``"P"`` (any case) raises ValueError. The warnings name the differing parts, not values.
    """
    if not isinstance(nik, Nik):
        raise ValueError(f"nik must be a parsed Nik (see parse_nik), got {type(nik).__name__}")
    label = f"NIK {mask_nik(nik.number)}"
    warnings = []
    if birth_date is not None:
        if isinstance(birth_date, datetime):
            birth_date = birth_date.date()
        if not isinstance(birth_date, date):
            raise ValueError(f"birth_date must be a date, got {type(birth_date).__name__}")
        differ = [name for name, in_nik, stated in (
            ("day", nik.birth_day, birth_date.day),
            ("month", nik.birth_month, birth_date.month),
            ("year", nik.birth_year_2, birth_date.year % 100),
        ) if in_nik != stated]
        if differ:
            warnings.append(f"{label}: birth {_and(differ)} in the NIK "
                            f"{'differ' if len(differ) > 1 else 'differs'} "
                            "from the stated birth date")
    if gender is not None:
        stated = gender.strip().upper() if isinstance(gender, str) else gender
        if stated not in ("L", "P"):
            raise ValueError(f"gender must be 'L' or 'P', got {gender!r}")
        if stated != nik.gender:
            warnings.append(f"{label}: gender {nik.gender} in the NIK differs from "
                            f"the stated gender {stated}")
    return warnings


def _nik_dates(day, month, year_2):
    found = []
    for century in (1900, 2000):
        try:
            found.append(date(century + year_2, month, day))
        except ValueError:
            pass
    return found


# -- shared -------------------------------------------------------------------------------


def _digits(value, length, what):
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string of {length} digits, "
                         f"got {type(value).__name__}")
    number = value.strip()
    if not _DIGITS[length].fullmatch(number):
        raise ValueError(f"{what} must be {length} digits")
    return number


def _today(today):
    if today is None:
        return date.today()
    if isinstance(today, datetime):
        return today.date()
    if not isinstance(today, date):
        raise ValueError(f"today must be a date, got {type(today).__name__}")
    return today


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
