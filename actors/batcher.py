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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
import trio

from actors._mailbox import Envelope, Mailbox, receive_ready
from actors.errors import ActorError
from actors.repository import RepositoryHandle
from actors.sender import RetryPolicy, deliver
from actors.stats import StatsHandle
from smsproxy.batching import BatchingRules, BatchQueue, QueueGauge
from smsproxy.errors import QueueFull, ShuttingDown, StoreError
from smsproxy.logs import debug_enabled
from smsproxy.models import (
    Batch,
    BatchFailed,
    BatchOutcome,
    BatchSucceeded,
    Idempotency,
    Message,
    MessagesAccepted,
    MessagesExpired,
    Saved,
    new_ids,
)
from smsproxy.providers import Provider
from smsproxy.statuses import Status

__all__ = ["BatcherHandle", "run"]

log = structlog.get_logger("smsproxy.batcher")

WallClock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class _Enqueue:
    messages: tuple[Message, ...]
    recovered: bool = False


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
        queue: BatchQueue,
        clock: WallClock,
        retry_after: int,
        stopped: trio.Event,
    ) -> None:
        self._mailbox = mailbox
        self._repository = repository
        self._gauge = gauge
        self._queue = queue
        self._clock = clock
        self._retry_after = retry_after
        self._accepting = True
        self._stopped = stopped

    @property
    def queue_depth(self) -> int:
        return self._gauge.depth

    @property
    def in_flight(self) -> int:
        return self._queue.in_flight

    @property
    def accepting(self) -> bool:
        """False once draining has begun, or the actor has stopped."""
        return self._accepting and not self._stopped.is_set()

    async def submit(
        self, phone_number: str, content: str, idempotency: Idempotency | None = None
    ) -> Saved:
        """Accept one message: stored as ACCEPTED and queued when this returns."""
        return await self.submit_many([(phone_number, content)], idempotency)

    async def submit_many(
        self, items: Sequence[tuple[str, str]], idempotency: Idempotency | None = None
    ) -> Saved:
        """Accept (phone number, content) pairs, all or none, as one store transaction.

        With an idempotency key seen before, nothing is stored or queued and the
        first request's ids come back.
        """
        if not self._accepting:
            raise ShuttingDown()
        if not self._gauge.try_admit(len(items)):
            raise QueueFull(self._gauge.depth, self._retry_after)
        now = self._clock()
        messages = tuple(
            Message(message_id, phone, content, now)
            for message_id, (phone, content) in zip(new_ids(len(items)), items, strict=True)
        )
        try:
            # save() is shielded: a client that hangs up cannot leave a stored message unqueued.
            saved = await self._repository.save(*messages, idempotency=idempotency, at=now)
        except BaseException:
            self._gauge.release(len(messages))
            raise
        if saved.replayed:
            self._gauge.release(len(messages))
        else:
            self._mailbox.cast_nowait(_Enqueue(messages))
        return saved

    def requeue(self, messages: Sequence[Message]) -> None:
        """Queue messages accepted before a restart; they were promised, so no limit applies."""
        if messages:
            self._gauge.force_admit(len(messages))
            self._mailbox.cast_nowait(_Enqueue(tuple(messages), recovered=True))

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
    queue = BatchQueue(rules)
    handle = BatcherHandle(mailbox, repository, gauge, queue, clock, retry_after, stopped)
    try:
        async with trio.open_nursery() as nursery, inbox:
            batcher = _Batcher(nursery, mailbox, repository, provider, stats, gauge, clock,
                               queue, retry)
            task_status.started(handle)
            await batcher.serve(inbox)
    finally:
        stopped.set()


class _Batcher:
    """The loop's state: the queue, the gauge, and the nursery that holds the senders."""

    def __init__(
        self,
        nursery: trio.Nursery,
        mailbox: Mailbox[Request],
        repository: RepositoryHandle,
        provider: Provider,
        stats: StatsHandle,
        gauge: QueueGauge,
        clock: WallClock,
        queue: BatchQueue,
        retry: RetryPolicy,
    ) -> None:
        self.nursery = nursery
        self.mailbox = mailbox
        self.repository = repository
        self.provider = provider
        self.stats = stats
        self.gauge = gauge
        self.clock = clock
        self.queue = queue
        self.retry = retry
        self.last_error = "none recorded"
        self.accepted = 0

    async def serve(self, inbox: trio.MemoryReceiveChannel[Envelope[Request]]) -> None:
        queue = self.queue
        while not queue.finished():
            with trio.move_on_at(queue.next_wakeup()):
                first = await inbox.receive()
                for envelope in receive_ready(inbox, first, 10_000):
                    self.handle(envelope.request)
                if self.accepted:  # one record for everything this pass took in
                    self.stats.record(MessagesAccepted(self.accepted))
                    self.accepted = 0
            now = trio.current_time()
            self.fail_soon(queue.take_due_parked(now, self.clock()))
            for batch in queue.take_batches(now):
                self.nursery.start_soon(self.send, batch)
        log.info("batcher_drained", parked=queue.parked_count)

    def handle(self, request: Request) -> None:
        match request:
            case _Enqueue(messages, recovered):
                self.queue.add(messages, trio.current_time())
                if not recovered:
                    self.accepted += len(messages)
                if debug_enabled():
                    for message in messages:
                        log.debug("message_queued", message_id=message.id,
                                  phone_number=message.phone_number, recovered=recovered)
            case _SenderFinished(batch, BatchSucceeded()):
                self.queue.succeeded(batch)
                self.gauge.release(len(batch))
            case _SenderFinished(batch, BatchFailed(error=error)):
                self.last_error = error
                self.fail_soon(self.queue.exhausted(batch, trio.current_time(), self.clock()))
            case _Drain():
                self.queue.draining = True

    async def send(self, batch: Batch) -> None:
        outcome = await deliver(batch, self.provider, self.retry, self.stats.record)
        self.stats.record(outcome)
        self.mailbox.cast_nowait(_SenderFinished(batch, outcome))
        if isinstance(outcome, BatchFailed):
            with _logged("recording attempts"):
                await self.repository.add_attempts(
                    [m.id for m in batch.messages], outcome.attempts
                )

    def fail_soon(self, expired: list[Message]) -> None:
        if expired:
            self.nursery.start_soon(self.fail_expired, expired)

    async def fail_expired(self, messages: list[Message]) -> None:
        reason = (f"not accepted by the provider within the message TTL of "
                  f"{self.queue.rules.message_ttl:g} s; last error: {self.last_error}")
        with _logged("failing expired messages"):
            updates = dict.fromkeys((m.id for m in messages), Status.FAILED)
            await self.repository.update_many(updates, reason)
            self.stats.record(MessagesExpired(len(messages)))
            log.warning("messages_expired", count=len(messages), last_error=self.last_error,
                        message_ids=[m.id for m in messages])
        # Whether or not the store took it, they leave this queue; a store that
        # failed still holds them ACCEPTED, and the next start sends them again.
        self.gauge.release(len(messages))


@contextmanager
def _logged(doing: str) -> Iterator[None]:
    """Log a store or actor failure on a side path, rather than stop all sending."""
    try:
        yield
    except (StoreError, ActorError) as error:
        log.error("batcher_store_call_failed", doing=doing, error=str(error))
