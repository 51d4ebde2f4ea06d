"""What the stats actor counts: a record of each thing that happened (an attempt,
a batch's end, messages accepted or expired, a request served, a store failure, ...),
sent by the part it happened in. All immutable."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from smsproxy.models import BatchFailed, BatchLeaseLost, BatchSucceeded, Message

__all__ = [
    "ActorRestarted",
    "AttemptFinished",
    "BulkReceived",
    "CallbackAttempted",
    "CallbackBacklog",
    "ClaimsTaken",
    "HttpServed",
    "InboundReceived",
    "KeyAccepted",
    "KeySpent",
    "MessagesAccepted",
    "MessagesExpired",
    "MessagesPurged",
    "ProviderTook",
    "StatsRecord",
    "StoreFailed",
    "UpdateRejected",
    "UpdatesApplied",
    "WebhookRefused",
]


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
class MessagesPurged:
    """Final messages deleted, with their history, after the retention window."""

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
    """HTTP answers since the last such record: (route, method, status) -> count, and
    (route, method) -> the seconds each took."""

    counts: Mapping[tuple[str, str, int], int]
    durations: Mapping[tuple[str, str], Sequence[float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderTook:
    """Messages the provider took, by delivery class (``Message.class_label``): the
    seconds each waited from its acceptance (its send_at) until the attempt the provider
    took began, and how many left after their deadline."""

    waited: Mapping[str, Sequence[float]]
    late: Mapping[str, int]

    @classmethod
    def of(cls, messages: Sequence[Message], at: float) -> "ProviderTook":
        """``at``: the wall-clock time the attempt the provider took began."""
        waited: dict[str, list[float]] = {}
        late: dict[str, int] = {}
        for message in messages:
            label = message.class_label
            waited.setdefault(label, []).append(max(0.0, at - message.ready_at))
            if message.deliver_by is not None and at > message.deliver_by:
                late[label] = late.get(label, 0) + 1
        return cls(waited, late)


@dataclass(frozen=True, slots=True)
class WebhookRefused:
    """A provider status report refused for its signature (one of WEBHOOK_REFUSALS)."""

    reason: str


@dataclass(frozen=True, slots=True)
class ClaimsTaken:
    """A batch claimed from the shared queue; how many of it another instance let lapse."""

    count: int
    taken_over: int = 0


@dataclass(frozen=True, slots=True)
class StoreFailed:
    """A store transaction failed; the operations of the requests it held."""

    operations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallbackAttempted:
    """One POST of an event to its callback URL, and what came of it."""

    outcome: str
    """delivered, retry or abandon"""
    reason: str
    """2xx, 4xx, 408, 429, 5xx, timeout, connection, refused_address, too_old"""


@dataclass(frozen=True, slots=True)
class CallbackBacklog:
    """Callbacks not yet delivered or abandoned, as last counted."""

    pending: int
    oldest_age: float
    """Seconds since the oldest pending one's event (0 when none is pending)."""


@dataclass(frozen=True, slots=True)
class InboundReceived:
    """A reply stored: the keyword it was (``opt_out``, ``opt_in``, or ``none``), and how
    many waiting messages an opt-out failed."""

    keyword: str
    failed: int = 0


@dataclass(frozen=True, slots=True)
class KeyAccepted:
    """Messages an API key sent (accepted), and their segments: its side of the bill."""

    key: str
    """The key's name (never the key)."""
    messages: int
    segments: int


@dataclass(frozen=True, slots=True)
class KeySpent:
    """What paid requests cost, shared among the messages each carried, by the name of
    the key that sent them."""

    spend: Mapping[str, float]

    @classmethod
    def of(cls, messages: Sequence[Message], cost: float) -> "KeySpent":
        """``cost``: what the requests that carried ``messages`` cost together."""
        spend: dict[str, float] = {}
        share = cost / len(messages) if messages else 0.0
        for message in messages:
            key = message.tenant or ""
            spend[key] = spend.get(key, 0.0) + share
        return cls(spend)


@dataclass(frozen=True, slots=True)
class ActorRestarted:
    """A side task crashed and is started again."""

    actor: str


StatsRecord = (
    BatchSucceeded | BatchFailed | BatchLeaseLost | AttemptFinished | MessagesAccepted
    | MessagesExpired | MessagesPurged | UpdatesApplied | UpdateRejected | HttpServed
    | BulkReceived | StoreFailed
    | ClaimsTaken | CallbackAttempted | CallbackBacklog | WebhookRefused | ProviderTook
    | ActorRestarted | KeyAccepted | KeySpent | InboundReceived
)
