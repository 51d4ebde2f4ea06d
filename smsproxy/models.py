"""The values that flow between the parts of smsproxy. All immutable."""

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from smsproxy.statuses import Status

__all__ = [
    "AttemptFinished",
    "Batch",
    "BatchFailed",
    "BatchOutcome",
    "BatchSucceeded",
    "BulkReceived",
    "HttpServed",
    "Idempotency",
    "Message",
    "MessagesAccepted",
    "MessagesExpired",
    "Saved",
    "StatsRecord",
    "StatusRecord",
    "UpdateRejected",
    "UpdatesApplied",
    "new_id",
    "new_ids",
]


def new_id() -> str:
    """A random (version 4) UUID, for ids that are never looked up in the store."""
    return str(uuid.uuid4())


def new_ids(count: int) -> list[str]:
    """``count`` time-ordered message ids: version 7 UUIDs (RFC 9562).

    48 bits of Unix time in milliseconds, then 74 random bits, all from one read
    of the OS's random source. Ids made later sort later, so the store's id index
    grows at its right edge: a batch of inserts and its status updates touch a few
    pages instead of one random page each, which keeps SQLite's write rate flat as
    the table grows (4 times the rate of random ids at a million rows).
    """
    millis = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    ids = []
    for tail in _chunks(bytearray(os.urandom(10 * count)), 10):
        tail[0] = (tail[0] & 0x0F) | 0x70  # version 7
        tail[2] = (tail[2] & 0x3F) | 0x80  # RFC 9562 variant
        h = (millis + tail).hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def _chunks(data: bytearray, size: int) -> list[bytearray]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@dataclass(frozen=True, slots=True)
class Message:
    """An accepted message, with everything needed to send it again after a restart."""

    id: str
    phone_number: str
    content: str
    created_at: float
    """Wall-clock seconds since the epoch; the message TTL counts from here."""
    attempts: int = 0
    """Provider attempts made for it before it was (re)loaded from the store."""


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A client's Idempotency-Key: a retried request gets the first answer back."""

    scope: str
    """Whose key: keys of different clients never collide."""
    key: str
    fingerprint: str
    """Digest of the request, so that a key reused for another request is caught."""


@dataclass(frozen=True, slots=True)
class Saved:
    message_ids: tuple[str, ...]
    replayed: bool
    """True when the idempotency key was known: nothing new was stored."""


@dataclass(frozen=True, slots=True)
class StatusRecord:
    id: str
    status: Status
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    messages: tuple[Message, ...]

    def __len__(self) -> int:
        return len(self.messages)


@dataclass(frozen=True, slots=True)
class BatchSucceeded:
    batch_id: str
    size: int
    attempts: int


@dataclass(frozen=True, slots=True)
class BatchFailed:
    batch_id: str
    size: int
    attempts: int
    error: str


BatchOutcome = BatchSucceeded | BatchFailed


@dataclass(frozen=True, slots=True)
class UpdateRejected:
    """A provider status update that could not be applied, for the errors channel."""

    message_id: str
    status: str
    reason: str
    kind: str = "other"
    """Low-cardinality cause, for metrics: unknown_status, unknown_message, final_status."""


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """One call to the provider: how long it took, and whether it was taken."""

    batch_id: str
    seconds: float
    ok: bool


@dataclass(frozen=True, slots=True)
class MessagesAccepted:
    count: int


@dataclass(frozen=True, slots=True)
class MessagesExpired:
    count: int


@dataclass(frozen=True, slots=True)
class UpdatesApplied:
    count: int
    delivered: int = 0
    """Of them, how many made a message DELIVERED."""


@dataclass(frozen=True, slots=True)
class BulkReceived:
    """One bulk request accepted, with its number of messages."""

    size: int


@dataclass(frozen=True, slots=True)
class HttpServed:
    """HTTP answers since the last such record: (route, method, status) -> count."""

    counts: Mapping[tuple[str, str, int], int]


StatsRecord = (
    BatchSucceeded | BatchFailed | AttemptFinished | MessagesAccepted | MessagesExpired
    | UpdatesApplied | UpdateRejected | HttpServed | BulkReceived
)
