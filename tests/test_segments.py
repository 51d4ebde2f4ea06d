"""SMS segment counting: GSM-7 160/153, UCS-2 70/67, extension characters count double."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsproxy.segments import Segments, count_segments


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 1530, 10),
        ("a" * 1531, 11),
    ],
)
def test_gsm7_160_then_153(text, segments):
    counted = count_segments(text)
    assert (counted.count, counted.encoding) == (segments, "GSM-7")


@pytest.mark.parametrize(
    ("text", "segments"),
    [("€" * 80, 1), ("€" * 81, 2), ("a" * 158 + "{", 1), ("a" * 159 + "{", 2)],
)
def test_extension_characters_count_double(text, segments):
    assert count_segments(text) == Segments(segments, "GSM-7")


def test_an_escape_pair_is_not_split_across_segments():
    # 152 septets, then a 2-septet character that no longer fits the first 153.
    assert count_segments("a" * 152 + "€" + "a" * 10).count == 2
    assert count_segments("a" * 152 + "€" + "a" * 152).count == 3


@pytest.mark.parametrize(
    ("text", "segments"),
    [("ж" * 70, 1), ("ж" * 71, 2), ("ж" * 134, 2), ("ж" * 135, 3), ("a" * 69 + "ж", 1)],
)
def test_ucs2_70_then_67(text, segments):
    counted = count_segments(text)
    assert (counted.count, counted.encoding) == (segments, "UCS-2")


def test_astral_characters_take_two_code_units_and_are_not_split():
    assert count_segments("😀" * 35).count == 1
    assert count_segments("😀" * 36).count == 2
    assert count_segments("a" * 66 + "😀").count == 1  # 68 units fit one segment of 70
    # 73 units: the pair would straddle units 67 and 68, so it opens the second segment
    assert count_segments("a" * 66 + "😀" + "a" * 5).count == 2
    assert count_segments("a" * 66 + "😀" + "a" * 66).count == 3


def test_one_non_gsm_character_turns_the_whole_text_ucs2():
    assert count_segments("a" * 100).encoding == "GSM-7"
    assert count_segments("a" * 100 + "ś") == Segments(2, "UCS-2")


def _walk(text: str) -> Segments:
    """The plain definition, character by character, that the fast paths must agree with."""
    from smsproxy.segments import GSM7_BASIC, GSM7_EXTENSION, _pack

    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        return Segments(_pack((2 if c in GSM7_EXTENSION else 1 for c in text), 160, 153), "GSM-7")
    return Segments(_pack((2 if ord(c) > 0xFFFF else 1 for c in text), 70, 67), "UCS-2")


@given(st.text(alphabet="ab {€ж😀\n@", max_size=400))
@settings(max_examples=500)
def test_fast_paths_agree_with_the_plain_walk(text):
    assert count_segments(text) == _walk(text)
