import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pamong.privacy import (
    MOBILE_E164,
    mask_nik,
    mask_phone,
    mask_text,
    normalize_phone,
    whatsapp_digits,
)

pytestmark = pytest.mark.unit

# -- strategies ------------------------------------------------------------------------

operator_digit = st.sampled_from("12356789")
subscriber_rest = st.text(alphabet="0123456789", min_size=7, max_size=10)


@st.composite
def mobiles(draw):
    """A valid Indonesian mobile as its national significant number: ``8x`` + 7-10 digits."""
    return "8" + draw(operator_digit) + draw(subscriber_rest)


@st.composite
def written(draw, national):
    """``national`` with random single separators between some digits."""
    out = []
    for i, digit in enumerate(national):
        if i and draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from([" ", "-", "."])))
        out.append(digit)
    return "".join(out)


niks = st.text(alphabet="0123456789", min_size=16, max_size=16)

# -- NIK ----------------------------------------------------------------------------


def test_mask_nik_example():
    assert mask_nik("3602041211870001") == "3602********0001"


@given(niks)
def test_mask_nik_keeps_only_the_ends(nik):
    masked = mask_nik(nik)
    assert len(masked) == 16
    assert masked[:4] == nik[:4] and masked[-4:] == nik[-4:]
    assert masked[4:12] == "*" * 8


@pytest.mark.parametrize("bad", ["", "360204121187000", "36020412118700011", "3602O41211870001",
                                 None, 3602041211870001])
def test_mask_nik_rejects_non_niks(bad):
    with pytest.raises(ValueError, match="NIK"):
        mask_nik(bad)


# -- phones -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    "081234567890", "6281234567890", "+6281234567890", "0812-3456-7890", "0812 3456 7890",
    "+62 812.3456.7890", "  +62-812-3456-7890 ", "(0812) 3456 7890",
])
def test_normalize_phone_examples(raw):
    assert normalize_phone(raw) == "+6281234567890"


@pytest.mark.parametrize("bad, reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("+6581234567", "not an Indonesian number"),  # Singapore
    ("0214567890", "not an Indonesian mobile"),  # Jakarta landline
    ("0841234567", "not an Indonesian mobile"),  # 84 is not a mobile prefix
    ("08123456", "not an Indonesian mobile"),  # too short
    ("0812345678901234", "not an Indonesian mobile"),  # too long
    ("812345678", "not an Indonesian mobile"),  # no trunk prefix
    ("0812-3456-789a", "not an Indonesian mobile"),
    ("+62+81234567890", "not an Indonesian mobile"),
])
def test_normalize_phone_rejects_with_clear_message(bad, reason):
    with pytest.raises(ValueError, match=reason):
        normalize_phone(bad)


def test_normalize_phone_rejects_non_strings():
    with pytest.raises(ValueError, match="string"):
        normalize_phone(81234567890)


def test_error_message_does_not_echo_the_whole_number():
    with pytest.raises(ValueError) as info:
        normalize_phone("0812345678901234")
    assert "0812345678901234" not in str(info.value)


@given(mobiles(), st.data())
def test_three_written_forms_normalise_to_the_same_e164(national, data):
    expected = "+62" + national
    assert MOBILE_E164.fullmatch(expected)
    for prefix in ("0", "62", "+62"):
        raw = prefix + data.draw(written(national))
        assert normalize_phone(raw) == expected
    assert whatsapp_digits(expected) == "62" + national


def test_mask_phone_example():
    assert mask_phone("+6281234567890") == "+62812****7890"
    assert mask_phone("0812-3456-7890") == "+62812****7890"


@given(mobiles())
def test_mask_phone_never_reveals_the_middle(national):
    masked = mask_phone("0" + national)
    assert masked.startswith("+62" + national[:3])
    assert masked.endswith(national[-4:])
    middle = masked[6:-4]
    assert middle == "*" * (len(national) - 7)
    assert re.fullmatch(r"\+62\d{3}\*+\d{4}", masked)


def test_whatsapp_digits():
    assert whatsapp_digits("+6281234567890") == "6281234567890"
    with pytest.raises(ValueError):
        whatsapp_digits("+6521234567")


# -- free text ----------------------------------------------------------------------


def test_mask_text_examples():
    text = ("warga NIK 3602041211870001 hp 0812-3456-7890, wa +6281234567890 "
            "atau 62 812 3456 7890; permohonan 12 pada 2024-05-01")
    assert mask_text(text) == (
        "warga NIK 3602********0001 hp +62812****7890, wa +62812****7890 "
        "atau +62812****7890; permohonan 12 pada 2024-05-01"
    )


def test_mask_text_leaves_other_numbers():
    for text in ("NIP 198609262015051001", "NIB 1234567890123", "id 550e8400-e29b-41d4",
                 "amount 1500000", "0214567890 kantor", "17 digits 12345678901234567"):
        assert mask_text(text) == text


def test_mask_text_accepts_non_strings():
    assert mask_text(3602041211870001) == "3602********0001"


@given(niks, st.text(alphabet="abc xyz:=,", max_size=8), st.text(alphabet="abc xyz:=,",
                                                                      max_size=8))
def test_mask_text_hides_a_nik_anywhere(nik, before, after):
    masked = mask_text(before + nik + after)
    assert masked == before + nik[:4] + "*" * 8 + nik[-4:] + after


@given(mobiles(), st.sampled_from(["0", "62", "+62"]), st.data())
def test_mask_text_hides_a_phone_in_any_written_form(national, prefix, data):
    raw = prefix + data.draw(written(national))
    masked = mask_text(f"hubungi {raw} segera")
    assert masked == f"hubungi +62{national[:3]}{'*' * (len(national) - 7)}{national[-4:]} segera"


_no_match_text = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=10),
        st.text(alphabet="0123456789", min_size=1, max_size=7),
    ),
    max_size=12,
)


@given(_no_match_text)
def test_mask_text_leaves_non_matching_text_intact(parts):
    # join digit runs (at most 7 long) only through non-separator characters: nothing in
    # the text can look like a NIK (16 digits) or a mobile number (at least 10 digits)
    text = "x".join(parts)
    assert mask_text(text) == text
