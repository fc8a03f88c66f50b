"""Personal data helpers: Indonesian phone numbers and NIK masking (DOMAIN "Identifiers").

Pure functions, no I/O. The rules:

- **NIK** (16 digits) is masked as the first 4 digits (province + regency), 8 stars, and the
  last 4 digits: ``3602041211870001`` -> ``3602********0001``. The birth date and district in
  the middle are never shown.
- **Phone numbers** are stored in E.164. ``08xx``, ``628xx`` and ``+628xx`` (with spaces,
  dashes, dots or parentheses as separators) are the same number; after normalisation an
  Indonesian mobile matches ``^\\+628[1-35-9]\\d{7,10}$``.
- A phone number is masked in E.164 form as ``+62``, the first 3 digits of the subscriber
  number (the operator prefix, e.g. ``812``), one ``*`` per hidden digit, and the last 4
  digits: ``+6281234567890`` -> ``+62812****7890``.
- ``mask_text`` masks, inside free text, every run of exactly 16 digits (a NIK, or a KK which
  has the same shape) and every Indonesian-mobile-looking number (``+62``/``62``/``0`` then
  ``8`` and 8 to 11 more digits, optionally split by single spaces, dashes or dots). It errs on
  the side of masking: a 16-digit run that is not a real NIK is masked too.
"""

import re

__all__ = ["MOBILE_E164", "mask_nik", "mask_phone", "mask_text", "normalize_phone",
           "whatsapp_digits"]

MOBILE_E164 = re.compile(r"^\+628[1-35-9][0-9]{7,10}$")

_SEPARATORS = re.compile(r"[\s.\-()]")
_NIK = re.compile(r"^[0-9]{16}$")
_NIK_KEEP = 4

_PHONE_HEAD = 3  # subscriber digits kept after the country code (operator prefix)
_PHONE_TAIL = 4

# In free text: a 16-digit run not glued to other digits, or a mobile-looking number.
_SEP = r"[ .\-]?"
_TEXT_PATTERN = re.compile(
    r"(?<![0-9])(?P<nik>[0-9]{16})(?![0-9])"
    r"|(?<![0-9])(?P<phone>(?:\+62|62|0)" + _SEP + r"8(?:" + _SEP + r"[0-9]){8,11})(?![0-9])"
)


_MASKED_NIK = re.compile(r"[0-9]{4}\*{8}[0-9]{4}")


def is_masked_nik(value):
    """Whether ``value`` is a NIK as ``mask_nik`` shows it (``3510********0001``)."""
    return isinstance(value, str) and _MASKED_NIK.fullmatch(value) is not None


def mask_nik(nik):
    """``3602041211870001`` -> ``3602********0001``; ValueError if not 16 digits."""
    if not isinstance(nik, str):
        raise ValueError(f"a NIK must be a string of 16 digits, got {type(nik).__name__}")
    value = nik.strip()
    if not _NIK.fullmatch(value):
        raise ValueError("a NIK must be exactly 16 digits")
    return _mask_run(value)


def normalize_phone(raw):
    """An Indonesian mobile number in any usual written form -> E.164 (``+628...``).

    Accepts ``0812-3456-7890``, ``62 812 3456 7890``, ``+62.812.3456.7890``... Raises
    ValueError naming the problem when the result is not an Indonesian mobile number.
    """
    if not isinstance(raw, str):
        raise ValueError(f"a phone number must be a string, got {type(raw).__name__}")
    compact = _SEPARATORS.sub("", raw)
    if not compact:
        raise ValueError("the phone number is empty")
    if compact.startswith("+"):
        if not compact.startswith("+62"):
            raise ValueError(f"{_mask_raw(raw)} is not an Indonesian number (expected +62...)")
        e164 = compact
    elif compact.startswith("62"):
        e164 = "+" + compact
    elif compact.startswith("0"):
        e164 = "+62" + compact[1:]
    else:
        raise ValueError(
            f"{_mask_raw(raw)} is not an Indonesian mobile number "
            "(write it as 08..., 628... or +628...)"
        )
    if not MOBILE_E164.fullmatch(e164):
        raise ValueError(
            f"{_mask_raw(raw)} is not an Indonesian mobile number "
            "(+62 8x then 7 to 10 digits, with x one of 1-3, 5-9)"
        )
    return e164


def mask_phone(phone):
    """Mask a mobile number (any form ``normalize_phone`` accepts): ``+62812****7890``."""
    return "+62" + _mask_subscriber(normalize_phone(phone)[3:])


def whatsapp_digits(e164):
    """The number as WhatsApp wants it: the E.164 digits without ``+`` (``6281234567890``)."""
    return normalize_phone(e164)[1:]


def mask_text(text):
    """``text`` with every NIK-looking 16-digit run and mobile-looking number masked."""
    if not isinstance(text, str):
        text = str(text)
    if not any(ch.isdigit() for ch in text):
        return text
    return _TEXT_PATTERN.sub(_mask_match, text)


def _mask_match(match):
    if match.group("nik") is not None:
        return _mask_run(match.group("nik"))
    digits = re.sub(r"[^0-9]", "", match.group("phone"))
    subscriber = digits[2:] if digits.startswith("62") else digits[1:]
    return "+62" + _mask_subscriber(subscriber)


def _mask_run(digits):
    return digits[:_NIK_KEEP] + "*" * (len(digits) - 2 * _NIK_KEEP) + digits[-_NIK_KEEP:]


def _mask_subscriber(subscriber):
    hidden = len(subscriber) - _PHONE_HEAD - _PHONE_TAIL
    return subscriber[:_PHONE_HEAD] + "*" * hidden + subscriber[-_PHONE_TAIL:]


def _mask_raw(raw):
    """Rejected input shown in an error message without revealing a whole number."""
    shown = raw.strip()
    if len(shown) > 40:
        shown = shown[:40] + "..."
    return repr(mask_text(shown))
