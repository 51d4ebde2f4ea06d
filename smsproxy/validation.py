"""Validation of submitted messages. Pure functions: they return clean values or raise."""

from smsproxy.errors import InvalidMessage

__all__ = ["MAX_PHONE_DIGITS", "validate_content", "validate_phone_number"]

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


def validate_content(value: str) -> str:
    if not value:
        raise InvalidMessage("content", "must not be empty")
    if "\x00" in value:
        raise InvalidMessage("content", "must not contain NUL characters")
    return value
