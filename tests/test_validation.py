"""Message validation rules from docs/design.md."""

import re

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsproxy.errors import InvalidMessage
from smsproxy.validation import _read_international, validate_content, validate_phone_number

_PHONE = re.compile(r"\+?[0-9 ().\-]{1,40}")


@pytest.mark.parametrize(("written", "region", "e164"), [
    ("+4915112345678", None, "+4915112345678"),  # E.164 as it is
    ("+49 151 1234 5678", None, "+4915112345678"),  # spaces
    ("+1 (555) 010-9999", None, "+15550109999"),  # parentheses and dashes
    ("+44.20.7946.0958", None, "+442079460958"),  # dots
    ("0049 151 12345678", None, "+4915112345678"),  # 00 for +
    ("4915112345678", None, "+4915112345678"),  # digits alone: international
    ("015112345678", "DE", "+4915112345678"),  # national, in --default-region
    ("(030) 1234567", "DE", "+49301234567"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("+33 1 23 45 67 89", "DE", "+33123456789"),  # a + is international in any region
    ("+49 0151 12345678", None, "+4915112345678"),  # a trunk 0 after the code is dropped
    ("+4912345678", None, "+4912345678"),  # possible, if not in use (not strict)
])
def test_a_number_is_read_into_e164(written, region, e164):
    assert validate_phone_number(written, region) == e164


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("", "must not be empty"),
        ("+", "digits"),
        ("++49123", "digits"),
        ("49+123", "digits"),
        ("+49-12a", "digits"),
        ("abc", "digits"),
        ("١٢٣", "digits"),  # Arabic-Indic digits are digits to str.isdigit, not to E.164
        ("²", "digits"),
        ("( )", "has no digits"),
        ("+4912345678901234", "more than 15"),
        ("1234567890123456", "more than 15"),
        ("+99912345", "unknown country code"),  # 999 is no country's
        ("+123", "too short"),
        ("1", "not a phone number"),
        ("+491", "too short"),
    ],
)
def test_invalid_phone_numbers(number, reason):
    with pytest.raises(InvalidMessage) as error:
        validate_phone_number(number)
    assert error.value.field == "phone_number"
    assert reason in error.value.reason


def test_strict_numbers_refuse_a_number_not_in_use():
    assert validate_phone_number("+4912345678") == "+4912345678"
    with pytest.raises(InvalidMessage, match="not a number in use") as refused:
        validate_phone_number("+4912345678", strict=True)
    assert refused.value.field == "phone_number"
    assert validate_phone_number("+4915112345678", strict=True) == "+4915112345678"


REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


KINDS = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE,
         phonenumbers.PhoneNumberType.TOLL_FREE]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REGIONS), st.sampled_from(KINDS))
def test_every_accepted_number_round_trips_to_e164(region, kind):
    """Each region's example numbers of each kind, written every way, read back into
    the same E.164 form, which reads as itself."""
    example = phonenumbers.example_number_for_type(region, kind)
    if example is None:  # the region has no such numbers
        return
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    international = phonenumbers.format_number(
        example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert validate_phone_number(e164, strict=True) == e164
    assert validate_phone_number(international) == e164
    assert validate_phone_number(e164) == validate_phone_number(validate_phone_number(e164))
    if _PHONE.fullmatch(national):  # some regions write theirs with other signs
        assert validate_phone_number(national, region) == e164


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


def _parsed(read, digits):
    try:
        return read(digits)
    except phonenumbers.NumberParseException as error:
        return ("refused", error.error_type)


_NATIONAL_PREFIXES = ["", "0", "00", "1", "8", "06", "01"]


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.text("0123456789", min_size=1, max_size=17).map(lambda d: "+" + d),
    st.tuples(st.sampled_from(sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)),
              st.sampled_from(_NATIONAL_PREFIXES), st.text("0123456789", max_size=14))
      .map(lambda t: f"+{t[0]}{t[1]}{t[2]}"),
))
def test_the_fast_reading_of_e164_is_phonenumbers_own(digits):
    """Every '+digits' string, random or a country code, a national prefix and digits:
    the fast path and phonenumbers.parse give the same number, or the same refusal."""
    assert _parsed(_read_international, digits) == _parsed(
        lambda d: phonenumbers.parse(d, None), digits)


def test_an_e164_number_is_read_without_the_generic_parser(monkeypatch):
    """What keeps a message's validation cheap (bench/README.md, phone numbers)."""
    def parse(*_):
        raise AssertionError("phonenumbers.parse called for a plain E.164 number")
    monkeypatch.setattr(phonenumbers, "parse", parse)
    assert validate_phone_number("+4915112345678") == "+4915112345678"
    assert validate_phone_number("+39 06 1234 5678") == "+390612345678"  # Italy keeps its 0
