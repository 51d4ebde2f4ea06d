"""Message validation rules from DESIGN.md."""

import pytest

from smsproxy.errors import InvalidMessage
from smsproxy.validation import validate_content, validate_phone_number


@pytest.mark.parametrize("number", ["1", "+1", "4912345678", "+491234567890123", "123456789012345"])
def test_valid_phone_numbers(number):
    assert validate_phone_number(number) == number


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("", "must not be empty"),
        ("+", "has no digits"),
        ("++49123", "digits"),
        ("49+123", "digits"),
        ("+49 123", "digits"),
        ("+49-123", "digits"),
        ("abc", "digits"),
        ("١٢٣", "digits"),  # Arabic-Indic digits are digits to str.isdigit, not to E.164
        ("²", "digits"),
        ("+4912345678901234", "more than 15"),
        ("1234567890123456", "more than 15"),
    ],
)
def test_invalid_phone_numbers(number, reason):
    with pytest.raises(InvalidMessage) as error:
        validate_phone_number(number)
    assert error.value.field == "phone_number"
    assert reason in error.value.reason


def test_content_must_not_be_empty():
    with pytest.raises(InvalidMessage, match="content: must not be empty"):
        validate_content("")


def test_content_must_not_hold_nul():
    with pytest.raises(InvalidMessage, match="NUL"):
        validate_content("a\x00b")


@pytest.mark.parametrize(("content", "segments"),
                         [("hi", 1), (" ", 1), ("Grüße 👋", 1), ("x" * 1530, 10)])
def test_valid_content_and_its_segments(content, segments):
    assert validate_content(content).count == segments


def test_content_over_ten_segments_is_refused():
    with pytest.raises(InvalidMessage, match="11 SMS segments"):
        validate_content("x" * 1531)


def test_content_with_a_lone_surrogate_is_refused():
    with pytest.raises(InvalidMessage, match="lone surrogate"):
        validate_content("a" + chr(0xD800) + "b")


def test_new_ids_are_distinct_version_7_uuids():
    import uuid

    from smsproxy.models import new_ids

    ids = new_ids(1000)
    assert len(set(ids)) == 1000
    for message_id in ids:
        parsed = uuid.UUID(message_id)
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
        assert str(parsed) == message_id


def test_new_ids_carry_the_time_they_were_made_and_sort_by_it():
    import uuid
    from unittest import mock

    from smsproxy.models import new_ids

    with mock.patch("time.time_ns", return_value=1_795_000_000_123_456_789):
        earlier = new_ids(50)
    with mock.patch("time.time_ns", return_value=1_795_000_000_124_000_000):
        later = new_ids(50)
    assert {uuid.UUID(i).int >> 80 for i in earlier} == {1_795_000_000_123}
    assert max(earlier) < min(later)
