"""The batcher actor: collects accepted messages and hands them over in batches.

A batch goes out when it is full, when its oldest message has waited
``max_delay``, and at shutdown; at most ``max_in_flight`` at once, each in a
sender task in the batcher's nursery. A batch that exhausts its attempts is
parked and tried again later; messages past their TTL become FAILED.

The POST path runs in the caller's task: admit (or refuse with QueueFull), save
through the repository, then cast to the batcher. It never waits on the
provider, the stats actor, or the batcher's loop.
"""

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
import trio

from actors._mailbox import Mailbox, receive_ready
from actors.repository import RepositoryHandle
from actors.sender import RetryPolicy, deliver
from actors.stats import StatsHandle
from smsproxy.batching import BatchingRules, BatchQueue, QueueGauge
from smsproxy.errors import QueueFull, ShuttingDown
from smsproxy.models import Batch, BatchOutcome, BatchSucceeded, Message, new_id
from smsproxy.provider import Provider
from smsproxy.statuses import Status

__all__ = ["BatcherHandle", "run"]

log = structlog.get_logger("smsproxy.batcher")

WallClock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class _Enqueue:
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class _SenderFinished:
    batch: Batch
    outcome: BatchOutcome


@dataclass(frozen=True, slots=True)
class _Drain:
    pass


Request = _Enqueue | _SenderFinished | _Drain


class BatcherHandle:
    def __init__(
        self,
        mailbox: Mailbox[Request],
        repository: RepositoryHandle,
        gauge: QueueGauge,
        clock: WallClock,
        retry_after: int,
        stopped: trio.Event,
    ) -> None:
        self._mailbox = mailbox
        self._repository = repository
        self._gauge = gauge
        self._clock = clock
        self._retry_after = retry_after
        self._accepting = True
        self._stopped = stopped

    @property
    def queue_depth(self) -> int:
        return self._gauge.depth

    async def submit(self, phone_number: str, content: str) -> Message:
        """Accept one message: stored as ACCEPTED and queued when this returns."""
        message = Message(new_id(), phone_number, content, self._clock())
        await self.submit_many((message,))
        return message

    async def submit_many(self, messages: Sequence[Message]) -> None:
        if not self._accepting:
            raise ShuttingDown()
        if not self._gauge.try_admit(len(messages)):
            raise QueueFull(self._gauge.depth, self._retry_after)
        try:
            # Shielded: a client that hangs up must not leave a stored message unqueued.
            with trio.CancelScope(shield=True):
                await self._repository.save(*messages)
        except BaseException:
            self._gauge.release(len(messages))
            raise
        self._mailbox.cast_nowait(_Enqueue(tuple(messages)))

    async def drain(self) -> None:
        """Refuse new messages, flush the pending ones, wait for in-flight batches."""
        self._accepting = False
        self._mailbox.cast_nowait(_Drain())
        await self._stopped.wait()


async def run(
    repository: RepositoryHandle,
    provider: Provider,
    stats: StatsHandle,
    rules: BatchingRules,
    retry: RetryPolicy,
    max_queue: int,
    *,
    clock: WallClock = time.time,
    task_status: trio.TaskStatus[BatcherHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    mailbox, inbox = Mailbox[Request].open("batcher")
    gauge = QueueGauge(max_queue)
    stopped = trio.Event()
    retry_after = max(1, math.ceil(rules.max_delay))
    handle = BatcherHandle(mailbox, repository, gauge, clock, retry_after, stopped)
    queue = BatchQueue(rules)

    async def send(batch: Batch) -> None:
        outcome = await deliver(batch, provider, retry)
        stats.record(outcome)
        mailbox.cast_nowait(_SenderFinished(batch, outcome))

    async def fail_expired(messages: list[Message]) -> None:
        reason = f"not accepted by the provider within the message TTL of {rules.message_ttl:g} s"
        await repository.update_many(dict.fromkeys((m.id for m in messages), Status.FAILED), reason)
        gauge.release(len(messages))
        log.warning("messages_expired", count=len(messages), reason=reason)

    try:
        async with trio.open_nursery() as nursery, inbox:
            task_status.started(handle)
            while not queue.finished():
                with trio.move_on_at(queue.next_wakeup()):
                    first = await inbox.receive()
                    for envelope in receive_ready(inbox, first, 10_000):
                        expired = _handle(envelope.request, queue, gauge, clock)
                        if expired:
                            nursery.start_soon(fail_expired, expired)
                now = trio.current_time()
                expired = queue.take_due_parked(now, clock())
                if expired:
                    nursery.start_soon(fail_expired, expired)
                for batch in queue.take_batches(now):
                    nursery.start_soon(send, batch)
            log.info("batcher_drained", parked=queue.parked_count)
    finally:
        stopped.set()


def _handle(
    request: Request, queue: BatchQueue, gauge: QueueGauge, clock: WallClock
) -> list[Message]:
    """Apply one inbox request to the queue; return messages that expired."""
    match request:
        case _Enqueue(messages):
            queue.add(messages, trio.current_time())
        case _SenderFinished(batch, BatchSucceeded()):
            queue.succeeded(batch)
            gauge.release(len(batch))
        case _SenderFinished(batch, _):
            return queue.exhausted(batch, trio.current_time(), clock())
        case _Drain():
            queue.draining = True
    return []
