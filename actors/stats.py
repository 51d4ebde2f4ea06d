"""The stats actor: counts what happens, for ``/stats`` and ``/metrics``.

One record arrives per batch (success on attempt k, or failure with the last
error), per provider call, per accepted or expired group of messages, per status
update and per HTTP request. Records are cast, never awaited, so a slow stats
actor cannot slow down senders, let alone a POST.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog
import trio

from actors._mailbox import Call, Envelope, Mailbox
from actors.errors import ActorFailed
from smsproxy.metrics import Metrics
from smsproxy.models import BatchFailed, BatchLeaseLost, BatchSucceeded
from smsproxy.records import (
    ActorRestarted,
    CallbackAttempted,
    CallbackBacklog,
    ClaimsTaken,
    KeyAccepted,
    KeySpent,
    MessagesAccepted,
    MessagesExpired,
    MessagesPurged,
    StatsRecord,
    StoreFailed,
    UpdateRejected,
    UpdatesApplied,
)

__all__ = ["Snapshot", "StatsHandle", "run"]

log = structlog.get_logger("smsproxy.stats")


@dataclass(frozen=True, slots=True)
class Snapshot:
    success: int = 0
    """Batches the provider took."""
    failed: int = 0
    """Rounds of a batch that used every attempt; its messages are parked and tried again."""
    attempts: int = 0
    """Calls made to the provider, successful or not: the bill."""
    messages_accepted: int = 0
    messages_sent: int = 0
    """Messages in the batches the provider took."""
    messages_parked: int = 0
    """Messages in the failed rounds above; one message counts once per round it failed."""
    messages_expired: int = 0
    """Messages the proxy made FAILED because they outlived the message TTL."""
    messages_purged: int = 0
    """Final messages deleted with their history after ``--retention``."""
    messages_delivered: int = 0
    updates_applied: int = 0
    updates_rejected: int = 0
    store_errors: int = 0
    """Store transactions that failed (each answered 503 or retried)."""
    messages_claimed: int = 0
    """Messages this instance claimed from the shared queue (PostgreSQL)."""
    claims_taken_over: int = 0
    """Of them, how many another instance had claimed and let run out."""
    leases_lost: int = 0
    """Batches that stopped before a resend because their lease was lost: neither sent
    nor failed (another instance, or a later claim, has their messages)."""
    callbacks_delivered: int = 0
    callback_attempts_failed: int = 0
    """POSTs to a callback URL that did not end in a 2xx (retried or abandoned)."""
    callbacks_abandoned: int = 0
    callbacks_pending: int = 0
    success_by_attempt: dict[int, int] = field(default_factory=dict)
    last_error: str | None = None
    keys: dict[str, dict[str, float]] = field(default_factory=dict)
    """By API key name: the ``messages`` and ``segments`` it sent, and its ``spend``
    (each paid request's price shared among the messages it carried)."""

    @property
    def batches_sent(self) -> int:
        return self.success

    @property
    def success_percentage(self) -> float:
        total = self.success + self.failed
        return round(100.0 * self.success / total, 2) if total else 0.0

    @property
    def provider_calls_saved(self) -> int:
        """Calls batching saved: messages the provider took, minus the successful calls
        that carried them. Never negative; retries show in ``attempts``, not here."""
        return self.messages_sent - self.success


@dataclass(frozen=True, slots=True)
class _GetSnapshot(Call[Snapshot]):
    pass


@dataclass(frozen=True, slots=True)
class _Exposition(Call[bytes]):
    queue_depth: int
    in_flight: int


Request = StatsRecord | _GetSnapshot | _Exposition


class _Counters:
    def __init__(self) -> None:
        self.numbers: Counter[str] = Counter()
        self.by_attempt: Counter[int] = Counter()
        self.last_error: str | None = None
        self.keys: defaultdict[str, defaultdict[str, float]] = defaultdict(
            lambda: defaultdict(float))

    def record(self, record: StatsRecord) -> None:
        n = self.numbers
        match record:
            case BatchSucceeded(size=size, attempts=attempts):
                n["success"] += 1
                n["attempts"] += attempts
                n["messages_sent"] += size
                self.by_attempt[attempts] += 1
            case BatchFailed(size=size, attempts=attempts, error=error):
                n["failed"] += 1
                n["attempts"] += attempts
                n["messages_parked"] += size
                self.last_error = error
            case BatchLeaseLost(attempts=attempts):
                n["leases_lost"] += 1
                n["attempts"] += attempts
            case MessagesAccepted(count):
                n["messages_accepted"] += count
            case MessagesExpired(count):
                n["messages_expired"] += count
            case MessagesPurged(count):
                n["messages_purged"] += count
            case UpdatesApplied(count, delivered):
                n["updates_applied"] += count
                n["messages_delivered"] += delivered
            case UpdateRejected():
                n["updates_rejected"] += 1
            case StoreFailed():
                n["store_errors"] += 1
            case ClaimsTaken(count, taken_over):
                n["messages_claimed"] += count
                n["claims_taken_over"] += taken_over
            case CallbackAttempted(outcome):
                if outcome == "delivered":
                    n["callbacks_delivered"] += 1
                else:
                    n["callback_attempts_failed"] += 1
                    n["callbacks_abandoned"] += outcome == "abandon"
            case CallbackBacklog(pending):
                n["callbacks_pending"] = pending
            case KeyAccepted(key, messages, segments):
                bill = self.keys[key]
                bill["messages"] += messages
                bill["segments"] += segments
            case KeySpent(spend):
                for key, amount in spend.items():
                    if key:
                        self.keys[key]["spend"] += amount

    def snapshot(self) -> Snapshot:
        return Snapshot(
            **self.numbers,
            success_by_attempt=dict(sorted(self.by_attempt.items())),
            last_error=self.last_error,
            keys={key: {"messages": int(bill["messages"]), "segments": int(bill["segments"]),
                        "spend": round(bill["spend"], 6)}
                  for key, bill in sorted(self.keys.items())},
        )


class StatsHandle:
    def __init__(self, mailbox: Mailbox[Request]) -> None:
        self._mailbox = mailbox

    def record(self, record: StatsRecord) -> None:
        """Never waits: the inbox is unbounded (records are small, and few per batch)."""
        self._mailbox.cast_nowait(record)

    def record_restart(self, actor: str) -> None:
        """A side task crashed and is started again (``actors.restarting``'s callback)."""
        self.record(ActorRestarted(actor))

    async def snapshot(self) -> Snapshot:
        return await self._mailbox.call(_GetSnapshot())

    async def exposition(self, queue_depth: int, in_flight: int) -> bytes:
        """The Prometheus text exposition, with the batcher's gauges as given."""
        return await self._mailbox.call(_Exposition(queue_depth, in_flight))

    async def close(self) -> None:
        await self._mailbox.close()


async def run(
    *, instance: str = "", max_attempts: int = 3, store_operations: Iterable[str] = (),
    max_queue: int = 100_000, classes: Iterable[str] = (),
    task_status: trio.TaskStatus[StatsHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``max_attempts`` and ``store_operations``: the label values the metrics start
    at zero (see :class:`~smsproxy.metrics.Metrics`); ``max_queue``: the queue's
    capacity, for alerts; ``classes``: the delivery classes (--class)."""
    mailbox, inbox = Mailbox[Request].open("stats")
    counters = _Counters()
    metrics = Metrics(instance, max_attempts, store_operations, max_queue, classes)
    async with inbox:
        task_status.started(StatsHandle(mailbox))
        async for envelope in inbox:
            try:
                _serve(envelope, counters, metrics)
            except Exception as error:  # that request's failure, as a gen_server answers
                log.exception("stats_request_failed", request=type(envelope.request).__name__)
                if envelope.reply is not None:
                    envelope.reply.fail(ActorFailed("stats", error))


def _serve(envelope: Envelope[Request], counters: "_Counters", metrics: Metrics) -> None:
    match envelope.request:
        case _GetSnapshot():
            assert envelope.reply is not None
            envelope.reply.set(counters.snapshot())
        case _Exposition(queue_depth, in_flight):
            assert envelope.reply is not None
            calls_saved = counters.snapshot().provider_calls_saved
            envelope.reply.set(metrics.exposition(queue_depth, in_flight, calls_saved))
        case record:
            counters.record(record)
            metrics.record(record)
