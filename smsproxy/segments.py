"""How many SMS segments a text takes: GSM 03.38 (GSM-7) when it fits, UCS-2 otherwise.

One segment holds 160 GSM-7 septets or 70 UCS-2 code units; a concatenated
message loses room to its header: 153 septets or 67 code units per segment.
GSM-7 extension characters (``^{}\\[~]|€`` and form feed) take two septets, and
the pair of an escape cannot be split across segments; neither can a UTF-16
surrogate pair.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["MAX_SEGMENTS", "Segments", "count_segments"]

MAX_SEGMENTS = 10

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

_OUTSIDE_GSM7_BASIC = re.compile(f"[^{re.escape(''.join(sorted(GSM7_BASIC)))}]")
_OUTSIDE_GSM7 = re.compile(f"[^{re.escape(''.join(sorted(GSM7_BASIC | GSM7_EXTENSION)))}]")
_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")


@dataclass(frozen=True, slots=True)
class Segments:
    count: int
    encoding: str
    """``GSM-7`` or ``UCS-2``."""


def count_segments(text: str) -> Segments:
    if not _OUTSIDE_GSM7_BASIC.search(text):  # the common case, decided in C
        return Segments(_segments_of(len(text), single=160, multi=153), "GSM-7")
    if not _OUTSIDE_GSM7.search(text):
        sizes = (2 if c in GSM7_EXTENSION else 1 for c in text)
        return Segments(_pack(sizes, single=160, multi=153), "GSM-7")
    if not _ASTRAL.search(text):
        return Segments(_segments_of(len(text), single=70, multi=67), "UCS-2")
    sizes = (2 if ord(c) > 0xFFFF else 1 for c in text)  # UTF-16 code units
    return Segments(_pack(sizes, single=70, multi=67), "UCS-2")


def _segments_of(units: int, single: int, multi: int) -> int:
    """When every unit is the same size, nothing can straddle: plain division."""
    return 1 if units <= single else -(-units // multi)


def _pack(sizes: Iterable[int], single: int, multi: int) -> int:
    """Segments needed when no unit of ``size`` may straddle two segments."""
    units = list(sizes)
    if sum(units) <= single:
        return 1
    segments, room = 1, multi
    for size in units:
        if size > room:
            segments, room = segments + 1, multi
        room -= size
    return segments
