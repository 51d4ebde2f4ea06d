"""Validation of submitted messages. Pure functions: they return clean values or raise."""

import re

from smsproxy.errors import InvalidMessage
from smsproxy.segments import MAX_SEGMENTS, Segments, count_segments

__all__ = [
    "MAX_PHONE_DIGITS", "SENDER_PATTERN", "is_storable_text", "validate_content",
    "validate_phone_number", "validate_sender",
]

MAX_PHONE_DIGITS = 15
"""E.164 allows at most 15 digits."""


def validate_phone_number(value: str) -> str:
    """Digits only, with an optional single leading ``+``, 1 to 15 digits (E.164)."""
    digits = value[1:] if value.startswith("+") else value
    if not value:
        raise InvalidMessage("phone_number", "must not be empty")
    if not digits:
        raise InvalidMessage("phone_number", "has no digits")
    # str.isdigit() admits other scripts' digits and superscripts; E.164 means 0-9.
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidMessage("phone_number", "must be digits with an optional leading '+'")
    if len(digits) > MAX_PHONE_DIGITS:
        raise InvalidMessage("phone_number", f"has more than {MAX_PHONE_DIGITS} digits")
    return value


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
