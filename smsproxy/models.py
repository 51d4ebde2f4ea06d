"""The values that flow between the parts of smsproxy. All immutable."""

import os
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
    return str(uuid.uuid4())


def new_ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs from one read of the OS's random source.

    The same bits as uuid.uuid4(), without building a UUID object for each.
    """
    ids = []
    for raw in _chunks(bytearray(os.urandom(16 * count)), 16):
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        h = raw.hex()
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
