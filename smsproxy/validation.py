"""Validation of submitted messages. Pure functions: they return clean values or raise."""

import re

import phonenumbers

from smsproxy.errors import InvalidMessage
from smsproxy.segments import MAX_SEGMENTS, Segments, count_segments

__all__ = [
    "MAX_PHONE_DIGITS", "PHONE_REGIONS", "SENDER_PATTERN", "is_storable_text", "validate_content",
    "validate_phone_number", "validate_sender",
]

MAX_PHONE_DIGITS = 15
"""E.164 allows at most 15 digits."""


def validate_phone_number(value: str, region: str | None = None, strict: bool = False) -> str:
    """The number in E.164 (``+`` and its digits), read by Google's numbering metadata
    (``phonenumbers``): formatting (spaces, dashes, dots, parentheses) is dropped; a
    leading ``00`` is the international prefix; a number with neither ``+`` nor ``00``
    is national in ``region``, or, without one, international digits. A number that
    cannot be one (its length, an unknown country code) is refused with the reason;
    with ``strict``, so is one the metadata says is not assigned."""
    if not value:
        raise InvalidMessage("phone_number", "must not be empty")
    if not _PHONE_CHARACTERS.fullmatch(value):
        raise InvalidMessage("phone_number", "must be digits, with an optional leading '+' "
                                             "or '00', spaces, dashes, dots or parentheses")
    digits = re.sub(r"[^0-9+]", "", value)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif not digits.startswith("+") and region is None:
        digits = "+" + digits
    if not digits.strip("+"):
        raise InvalidMessage("phone_number", "has no digits")
    if len(digits.lstrip("+")) > MAX_PHONE_DIGITS:
        raise InvalidMessage("phone_number", f"has more than {MAX_PHONE_DIGITS} digits")
    try:
        number = (_read_international(digits) if digits.startswith("+")
                  else phonenumbers.parse(digits, region))
    except phonenumbers.NumberParseException as error:
        raise InvalidMessage("phone_number", _PARSE_REASONS.get(
            error.error_type, "is not a phone number")) from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible not in _POSSIBLE:
        raise InvalidMessage("phone_number", _IMPOSSIBLE_REASONS.get(
            possible, "is not a possible number"))
    if strict and not phonenumbers.is_valid_number(number):
        raise InvalidMessage("phone_number", "is not a number in use in its country "
                                             "(--strict-numbers)")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _read_international(digits: str) -> phonenumbers.PhoneNumber:
    """``+`` and digits, read as ``phonenumbers.parse`` reads them (the country code,
    then a national prefix dropped where what is left is still a possible length),
    without its handling of every other way to write a number: a fifth of its cost,
    paid by every message. Anything unusual (too short or long, no country code) is
    left to ``parse``, for its own refusal. ``tests/test_validation.py`` holds both to
    one answer."""
    code, national = _util._extract_country_code(digits[1:])
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(
        code, phonenumbers.region_code_for_country_code(code)) if code else None
    if metadata is None or not _NATIONAL_LENGTHS[0] <= len(national) <= _NATIONAL_LENGTHS[1]:
        return phonenumbers.parse(digits, None)
    _, stripped, _ = _util._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _util._test_number_length(stripped, metadata) not in _KEEP_PREFIX:
        national = stripped
    if len(national) < _NATIONAL_LENGTHS[0]:
        return phonenumbers.parse(digits, None)
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    _util._set_italian_leading_zeros_for_phone_number(national, number)
    return number


_util = phonenumbers.phonenumberutil
_NATIONAL_LENGTHS = (3, _util._MAX_LENGTH_FOR_NSN)
"""National numbers the fast path reads; shorter or longer ones go to ``parse``."""

PHONE_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
"""Region codes a national number may be read in (``--default-region``)."""

_PHONE_CHARACTERS = re.compile(r"\+?[0-9 ().\-]{1,40}")
"""What a written number may hold (ASCII digits only: other scripts' digits are not
E.164's)."""

_Reason = phonenumbers.ValidationResult
_POSSIBLE = (_Reason.IS_POSSIBLE, _Reason.IS_POSSIBLE_LOCAL_ONLY)
_KEEP_PREFIX = (_Reason.TOO_SHORT, _Reason.IS_POSSIBLE_LOCAL_ONLY, _Reason.INVALID_LENGTH)
"""Lengths at which a national prefix stays: without it the number could not be one."""
_IMPOSSIBLE_REASONS = {
    _Reason.INVALID_COUNTRY_CODE: "has an unknown country code",
    _Reason.TOO_SHORT: "is too short for its country",
    _Reason.TOO_LONG: "is too long for its country",
    _Reason.INVALID_LENGTH: "has a length its country does not use",
}
_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has an unknown country code",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}


SENDER_PATTERN = re.compile(r"^(?:[A-Za-z0-9 ]{1,11}|\+[1-9][0-9]{1,14})$")
"""A sender: 1 to 11 letters, digits or spaces (an alphanumeric sender id), or an
E.164 number."""


def validate_sender(value: str) -> str:
    """Whom the phone shows a message from: ``SENDER_PATTERN``."""
    if not SENDER_PATTERN.fullmatch(value):
        raise InvalidMessage("sender", "must be 1 to 11 letters, digits or spaces, or an "
                                       "E.164 number (+ and up to 15 digits)")
    return value


def validate_content(value: str) -> Segments:
    """The segments the content takes; at most ``MAX_SEGMENTS`` concatenated SMS."""
    if not value:
        raise InvalidMessage("content", "must not be empty")
    if "\x00" in value:
        raise InvalidMessage("content", "must not contain NUL characters")
    if not is_storable_text(value):
        raise InvalidMessage("content", "is not valid Unicode (lone surrogate)")
    segments = count_segments(value)
    if segments.count > MAX_SEGMENTS:
        raise InvalidMessage(
            "content", f"takes {segments.count} SMS segments ({segments.encoding}); "
                       f"at most {MAX_SEGMENTS}"
        )
    return segments


def is_storable_text(value: str) -> bool:
    """False for text with a lone surrogate: it cannot be encoded, stored or logged."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
