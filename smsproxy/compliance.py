"""What a shop's compliance and finance teams ask for, as plain rules: the opt-out
keywords a reply may carry, the suppression list's entries, replies (inbound
messages), and each key's daily quota, counted by UTC day.

Keywords are those carriers and the large providers honour (CTIA's list, as
Twilio applies it): a reply that is exactly one of them, whatever its case and
the spaces around or inside it, changes the list; any other reply is only stored.
"""

import math
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "OPTED_OUT_REASON",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "SECONDS_PER_DAY",
    "Inbound",
    "InboundQuery",
    "Keyword",
    "PendingReply",
    "Quota",
    "Suppression",
    "keyword_of",
    "seconds_to_midnight",
    "spoken",
    "utc_day",
]

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPT OUT", "REVOKE"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})

OPTED_OUT_REASON = "recipient opted out"
"""The reason of a waiting message failed because its recipient opted out."""

SECONDS_PER_DAY = 86_400


class Keyword(Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


def spoken(content: str) -> str:
    """A reply as a keyword is matched: upper case, single spaces, none around."""
    return " ".join(content.split()).upper()


def keyword_of(content: str) -> Keyword | None:
    """The list change a reply asks for, if it is one of the keywords."""
    word = spoken(content)
    if word in OPT_OUT_KEYWORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return Keyword.OPT_IN
    return None


@dataclass(frozen=True, slots=True)
class Suppression:
    """A number that is sent nothing: its owner said STOP, or support put it there."""

    number: str
    """E.164."""
    reason: str
    """Why, in words (``"replied STOP"``, or what support wrote)."""
    source: str
    """Who put it there: a provider's name (a keyword reply), or ``support:<key name>``."""
    at: float
    """Wall-clock seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class Inbound:
    """A reply that a provider forwarded: a phone's message to one of the shop's numbers."""

    provider: str
    from_number: str
    to_number: str
    content: str
    received_at: float
    """When the provider says it arrived (wall clock)."""
    id: str = ""
    """Given by the store (a UUID), with ``position``."""
    position: int = 0
    """Its place among every reply stored, in order of storing."""
    keyword: Keyword | None = None
    """The list change it made, if it was a keyword."""


@dataclass(frozen=True, slots=True)
class PendingReply:
    """A reply to POST to the shop's callback URL, claimed for a while."""

    inbound: Inbound
    url: str
    attempts: int
    """Attempts made before this one."""
    stored_at: float
    """When it was stored (wall clock): its callback is retried for ``--callback-max-age``
    from then, however late the provider forwarded it."""


@dataclass(frozen=True, slots=True)
class InboundQuery:
    """Replies stored after ``after`` (a position), received at ``since`` or later."""

    after: int = 0
    since: float | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class Quota:
    """A key's cap: at most ``limit`` messages a UTC day, over every instance."""

    tenant: str
    limit: int


def utc_day(at: float) -> int:
    """The UTC day of a wall-clock time, counted from the epoch (a quota's period)."""
    return math.floor(at / SECONDS_PER_DAY)


def seconds_to_midnight(at: float) -> float:
    """Seconds from ``at`` to the next UTC midnight, when every quota starts again."""
    return (utc_day(at) + 1) * SECONDS_PER_DAY - at
