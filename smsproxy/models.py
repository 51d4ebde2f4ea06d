"""The values that flow between the parts of smsproxy. All immutable."""

import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from smsproxy.statuses import Status

__all__ = [
    "Batch",
    "BatchFailed",
    "BatchLeaseLost",
    "BatchOutcome",
    "BatchSucceeded",
    "CallbackState",
    "Event",
    "Idempotency",
    "ListedMessage",
    "Message",
    "MessageQuery",
    "Outgoing",
    "PendingCallback",
    "Saved",
    "StatusRecord",
    "Submitted",
    "event_id_of",
    "new_id",
    "new_ids",
    "new_messages",
]


def new_id() -> str:
    """A random (version 4) UUID, for ids that are never looked up in the store."""
    return str(uuid.uuid4())


def new_ids(count: int) -> list[str]:
    """``count`` time-ordered message ids: version 7 UUIDs (RFC 9562).

    48 bits of Unix time in milliseconds, then 74 random bits, all from one read
    of the OS's random source and formatted straight from its hex digits. Ids made
    in a later millisecond sort later, so the store's id index grows at its right
    edge: a batch of inserts and its status updates touch a few pages instead of
    one random page each, which keeps SQLite's write rate flat as the table grows
    (4 times the rate of random ids at a million rows).
    """
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"  # the time, then the version nibble
    random_hex = os.urandom(10 * count).hex()
    ids = []
    for start in range(0, 20 * count, 20):
        r = random_hex[start : start + 20]
        # 3 hex digits after the version, the variant (10xx) in the next digit, then 15 more.
        ids.append(f"{head}{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[7:19]}")
    return ids


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""A random hex digit with its two top bits set to the RFC 9562 variant, 10."""


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
    callback_url: str | None = None
    """Where its status events are POSTed (None: nowhere)."""
    deliver_by: float | None = None
    """Wall-clock time by which it must leave for the provider (None: ``--max-delay``
    after it was queued)."""
    delivery_class: str | None = None
    """The delivery class that set ``deliver_by``, if one did (for the metrics)."""
    valid_until: float | None = None
    """Wall-clock time after which it is never handed to the provider: FAILED instead."""
    send_at: float | None = None
    """Wall-clock time before which it is not sent (scheduled); its TTL counts from then."""
    sender: str | None = None
    """Whom the phone shows it from (None: the provider's default sender)."""
    provider: str | None = None
    """The provider that may have it already (an attempt's outcome was unknown): it is
    sent to that provider only, which can deduplicate it. None: free to route."""
    tenant: str | None = None
    """The name of the API key that sent it (None: the service runs without keys)."""

    @property
    def ready_at(self) -> float:
        """When it may first be sent: its TTL and deadline count from here."""
        return self.created_at if self.send_at is None else self.send_at

    @property
    def class_label(self) -> str:
        """Its delivery class; ``custom`` for a deadline of its own, else ``default``."""
        if self.delivery_class is not None:
            return self.delivery_class
        return "default" if self.deliver_by is None else "custom"


class Outgoing(NamedTuple):
    """What a client submits."""

    phone_number: str
    content: str
    callback_url: str | None = None
    deliver_within: float | None = None
    """Seconds within which it must leave for the provider (None: --max-delay)."""
    delivery_class: str | None = None
    """The class that gave ``deliver_within``, if one did."""
    valid_until: float | None = None
    """Wall-clock time after which it must not be sent (FAILED instead)."""
    send_at: float | None = None
    """Wall-clock time before which it must not be sent."""
    sender: str | None = None
    """Whom the phone shows it from (None: the provider's default)."""
    tenant: str | None = None
    """The name of the API key that sends it."""


Submitted = Outgoing | tuple[str, str]
"""An Outgoing, or just (phone number, content)."""


def new_messages(items: Sequence[Submitted], created_at: float) -> tuple[Message, ...]:
    """Messages for submitted items, with new time-ordered ids."""
    outgoing = [Outgoing(*item) for item in items]
    return tuple(
        Message(message_id, item.phone_number, item.content, created_at, 0,
                item.callback_url, _deliver_by(item, created_at), item.delivery_class,
                item.valid_until, item.send_at, item.sender, None, item.tenant)
        for message_id, item in zip(new_ids(len(outgoing)), outgoing, strict=True)
    )


def _deliver_by(item: Outgoing, created_at: float) -> float | None:
    if item.deliver_within is None:
        return None
    return (created_at if item.send_at is None else item.send_at) + item.deliver_within


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


EVENT_NAMESPACE = uuid.UUID("5d4c1f0e-8a36-4c2b-9e57-3f0b6a1d2c94")
"""Event ids are derived in this namespace (version 5 UUIDs), never stored."""


def event_id_of(message_id: str, sequence: int) -> str:
    """The id of a message's ``sequence``-th event: the same on every store and
    instance and at every read, so a receiver that drops repeats by it always can,
    and the store writes no random text per event (a third of an event row's cost
    in SQLite, measured for issue 28)."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{message_id}/{sequence}"))


@dataclass(frozen=True, slots=True)
class Event:
    """One status step of a message, recorded in the transaction that made it."""

    message_id: str
    sequence: int
    """The message's events counted from 1 (ACCEPTED)."""
    status: Status
    previous_status: Status | None
    reason: str | None
    at: float
    """Wall-clock seconds since the epoch."""
    position: int | None = None
    """Its place in the feed of every event (set by the store; None until it has one)."""
    stored_id: str | None = None
    """The random id of an event recorded before ids were derived (schema 11)."""

    @property
    def event_id(self) -> str:
        return self.stored_id or event_id_of(self.message_id, self.sequence)


@dataclass(frozen=True, slots=True)
class PendingCallback:
    """An event to POST to its message's callback URL, claimed for a while."""

    event: Event
    url: str
    attempts: int
    """Attempts made before this one."""


@dataclass(frozen=True, slots=True)
class CallbackState:
    """Where one event's callback stands, for support staff."""

    sequence: int
    """The event's, in its message's history."""
    url: str
    state: str
    """``pending``, ``delivered`` or ``abandoned`` (given up)."""
    attempts: int
    error: str | None
    """The last attempt's reason, when it did not end in a 2xx."""


@dataclass(frozen=True, slots=True)
class ListedMessage:
    """A message as support staff find it: its status, and when it came and changed."""

    id: str
    status: Status
    reason: str | None
    accepted_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Messages of one status (None: any), accepted in [since, until), newest first,
    older than ``before`` (the last one of the previous page: accepted_at, id)."""

    status: Status | None = None
    since: float | None = None
    until: float | None = None
    before: tuple[float, str] | None = None
    limit: int = 100
    tenant: str | None = None
    """Only this key's messages (None: every key's)."""


@dataclass(frozen=True, slots=True)
class StatusRecord:
    id: str
    status: Status
    reason: str | None = None
    deliver_by: float | None = None
    """The message's own deadline to leave for the provider, if it set one."""
    valid_until: float | None = None
    """After this it is never sent, if it set a validity period."""
    send_at: float | None = None
    """Not sent before this, if it was scheduled."""
    sender: str | None = None
    """Whom the phone shows it from, if the client named one."""
    provider: str | None = None
    """The provider that took it, once one did."""
    phone_number: str | None = None
    """Its recipient, in E.164 (None: NOT_FOUND)."""
    tenant: str | None = None
    """The name of the key that sent it."""


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
    taken: tuple[str, ...] = ()
    """Messages an earlier attempt's requests took before it failed (besides the rest)."""
    providers: Mapping[str, str] = field(default_factory=dict)
    """Behind a router: the provider that took each message."""
    refs: Mapping[str, str] = field(default_factory=dict)
    """A provider's own id for a message, where its reports name it by that."""


@dataclass(frozen=True, slots=True)
class BatchFailed:
    batch_id: str
    size: int
    attempts: int
    error: str
    maybe_delivered: bool = False
    """An attempt's outcome is unknown: the provider may have taken the batch."""
    taken: tuple[str, ...] = ()
    """Messages of it the provider did take (a batch sent in several requests)."""
    providers: Mapping[str, str] = field(default_factory=dict)
    refs: Mapping[str, str] = field(default_factory=dict)
    pinned: Mapping[str, str] = field(default_factory=dict)
    """Messages an unknown outcome left with a provider (only it is sent them again)."""


@dataclass(frozen=True, slots=True)
class BatchLeaseLost:
    """Before a resend, what was left of the batch was no longer this instance's (its
    lease ran out, another instance holds it): nothing more was sent."""

    batch_id: str
    size: int
    attempts: int


BatchOutcome = BatchSucceeded | BatchFailed | BatchLeaseLost
