"""The batcher actor: collects accepted messages and hands them over in batches.

A batch goes out when it is full, when its oldest message has waited
``max_delay``, and at shutdown; at most ``max_in_flight`` at once, each in a
sender task in the batcher's nursery. A batch that exhausts its attempts is
parked and tried again later; messages past their TTL become FAILED.

The POST path runs in the caller's task: admit (or refuse with QueueFull), save
through the repository, then cast to the batcher. It never waits on the
provider, the stats actor, or the batcher's loop.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import structlog
import trio

from actors._mailbox import Envelope, Mailbox, receive_ready
from actors.errors import ActorError, ActorUnavailable
from actors.repository import RepositoryHandle
from actors.restarting import restarting
from actors.sender import RetryPolicy, deliver
from actors.stats import StatsHandle
from smsproxy.batching import (
    VALIDITY_EXPIRED,
    BatchingRules,
    BatchQueue,
    Expired,
    QueueGauge,
    lapsed_by_validity,
)
from smsproxy.errors import LargerThanQueue, QueueFull, ShuttingDown, StoreError
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
    Outgoing,
    ProviderTook,
    Saved,
    Submitted,
    new_messages,
)
from smsproxy.providers import Provider
from smsproxy.statuses import Status

__all__ = ["BatcherHandle", "run"]

RELEASE_AT_ONCE = 1000
"""Scheduled messages moved from the store into the queue per look."""
RELEASE_POLL = 60.0
"""Seconds between looks for scheduled messages at most (another instance's, a clock
step): a new one due sooner wakes the loop at once."""

log = structlog.get_logger("smsproxy.batcher")

WallClock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class _Enqueue:
    messages: tuple[Message, ...]
    recovered: bool = False
    scheduled: int = 0
    """Messages accepted with them that wait in the store for their send_at."""


@dataclass(frozen=True, slots=True)
class _SenderFinished:
    batch: Batch
    outcome: BatchOutcome | None
    """None when nothing was left to send: the provider had reported on all of it."""
    sent: Batch
    """What the last attempt carried: the batch less the messages reported on since."""


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
        self, phone_number: str, content: str, idempotency: Idempotency | None = None,
        callback_url: str | None = None,
    ) -> Saved:
        """Accept one message: stored as ACCEPTED and queued when this returns."""
        return await self.submit_many([Outgoing(phone_number, content, callback_url)],
                                      idempotency)

    async def submit_many(
        self, items: Sequence[Submitted], idempotency: Idempotency | None = None
    ) -> Saved:
        """Accept (phone number, content) pairs, all or none, as one store transaction.

        With an idempotency key seen before, nothing is stored or queued and the
        first request's ids come back.
        """
        if not self._accepting:
            raise ShuttingDown()
        now = self._clock()
        messages = new_messages(items, now)
        # Scheduled ones wait in the store, not in the queue, until their send_at.
        queued = tuple(m for m in messages if m.send_at is None)
        if len(queued) > self._gauge.limit:  # waiting would never help
            raise LargerThanQueue(len(queued), self._gauge.limit)
        if not self._gauge.try_admit(len(queued)):
            raise QueueFull(self._gauge.depth, self._retry_after)
        try:
            # save() is shielded: a client that hangs up cannot leave a stored message unqueued.
            saved = await self._repository.save(*messages, idempotency=idempotency, at=now)
        except BaseException:
            self._gauge.release(len(queued))
            raise
        if saved.replayed:
            self._gauge.release(len(queued))
            return saved
        try:
            self._mailbox.cast_nowait(_Enqueue(queued, scheduled=len(messages) - len(queued)))
        except ActorUnavailable:
            # Shutdown finished between the save and now. The messages are stored,
            # so the answer is still 202: the next start sends them.
            self._gauge.release(len(queued))
            log.warning("stored_during_shutdown", messages=len(messages),
                        message_ids=list(saved.message_ids))
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
    retry_after = rules.retry_after
    queue = BatchQueue(rules)
    handle = BatcherHandle(mailbox, repository, gauge, queue, clock, retry_after, stopped)
    try:
        async with trio.open_nursery() as nursery, inbox:
            batcher = _Batcher(nursery, mailbox, repository, provider, stats, gauge, clock,
                               queue, retry)
            nursery.start_soon(batcher.release_scheduled)
            task_status.started(handle)
            await batcher.serve(inbox)
            batcher.releasing.cancel()
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
        self.schedule_changed = trio.Event()
        self.releasing = trio.CancelScope()

    async def release_scheduled(self) -> None:
        """Scheduled messages wait in the store; each joins the queue when its send_at
        comes (recovered after a restart, too: the store knows which are released).
        A side task: restarted when it crashes, until the batcher stops."""
        with self.releasing:
            await restarting("scheduled_release", self._release_due, self.stats.record_restart)

    async def _release_due(self) -> None:
        while True:
            try:
                due, next_at = await self.repository.release_scheduled(
                    self.clock(), RELEASE_AT_ONCE)
            except (StoreError, ActorError):
                due, next_at = [], None  # the store logged why; look again soon
            if due:
                self.gauge.force_admit(len(due))
                self.mailbox.cast_nowait(_Enqueue(tuple(due), recovered=True))
                if len(due) == RELEASE_AT_ONCE:
                    continue
            wait = RELEASE_POLL if next_at is None else max(0.0, next_at - self.clock())
            with trio.move_on_after(min(wait, RELEASE_POLL)):
                await self.schedule_changed.wait()
            self.schedule_changed = trio.Event()

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
            wall_now = self.clock()
            self.fail_soon(queue.take_due_parked(now, wall_now))
            batches = queue.take_batches(now, wall_now)
            self.fail_soon(queue.take_lapsed(now, wall_now))
            for batch in batches:
                self.nursery.start_soon(self.send, batch)
        log.info("batcher_drained", parked=queue.parked_count)

    def handle(self, request: Request) -> None:
        match request:
            case _Enqueue(messages, recovered, scheduled):
                self.queue.add(messages, trio.current_time(), self.clock())
                if not recovered:
                    self.accepted += len(messages) + scheduled
                if scheduled:
                    self.schedule_changed.set()
                if debug_enabled():
                    for message in messages:
                        log.debug("message_queued", message_id=message.id,
                                  phone_number=message.phone_number, recovered=recovered)
            case _SenderFinished(batch, outcome, sent):
                self.finished(batch, outcome, sent)
            case _Drain():
                self.queue.draining = True
                self.releasing.cancel()  # what is scheduled waits in the store

    def finished(self, batch: Batch, outcome: BatchOutcome | None, sent: Batch) -> None:
        carried = {m.id for m in sent.messages}
        reported = tuple(m for m in batch.messages if m.id not in carried)
        if reported:  # the provider had them already: nothing more to do for them
            self.queue.forget(reported)
            self.gauge.release(len(reported))
        match outcome:
            case BatchFailed(error=error, maybe_delivered=maybe_taken):
                self.last_error = error
                expired = self.queue.exhausted(
                    sent, trio.current_time(), self.clock(), maybe_taken
                )
                self.fail_soon(expired)
            case _:
                self.queue.succeeded(sent)
                self.gauge.release(len(sent))

    async def send(self, batch: Batch) -> None:
        sent = batch

        async def narrow(batch: Batch) -> Batch:
            nonlocal sent
            sent = await self.still_waiting(batch)
            return sent

        outcome: BatchOutcome | None = None
        if self.queue.was_attempted(batch):  # parked or recovered: some may be taken since
            await narrow(batch)
        if sent.messages:
            left_at = self.clock()
            outcome = await deliver(sent, self.provider, self.retry, self.stats.record, narrow)
            self.stats.record(outcome)
            if isinstance(outcome, BatchSucceeded):
                self.stats.record(ProviderTook.of(sent.messages, left_at))
        self.mailbox.cast_nowait(_SenderFinished(batch, outcome, sent))
        if isinstance(outcome, BatchFailed):
            with _logged("recording attempts"):
                await self.repository.add_attempts(
                    [m.id for m in sent.messages], outcome.attempts
                )

    async def still_waiting(self, batch: Batch) -> Batch:
        """The batch less the messages the provider has reported on (paid for already)."""
        try:
            waiting = await self.repository.still_accepted([m.id for m in batch.messages])
        except (StoreError, ActorError) as error:
            # Sending all costs a little; not sending could lose messages.
            log.warning("resend_not_narrowed", batch_id=batch.id, error=str(error))
            return batch
        if len(waiting) < len(batch):
            log.info("resend_narrowed", batch_id=batch.id, messages=len(batch),
                     still_waiting=len(waiting))
        return Batch(batch.id, tuple(m for m in batch.messages if m.id in waiting))

    def fail_soon(self, expired: list[Expired]) -> None:
        if expired:
            self.nursery.start_soon(self.fail_expired, expired)

    async def fail_expired(self, expired: list[Expired]) -> None:
        """Mark them FAILED, trying again while the store fails; at shutdown what is
        left stays ACCEPTED in the store, and the next start expires it."""
        rules = self.queue.rules
        by_validity = [(m, lapsed_by_validity(m, rules.message_ttl), maybe)
                       for m, maybe in expired]
        lapsed = [m for m, invalid, _ in by_validity if invalid]
        never_taken = [m for m, invalid, maybe in by_validity if not invalid and not maybe]
        maybe_taken = [m for m, invalid, maybe in by_validity if not invalid and maybe]
        try:
            if lapsed:
                await self.fail_until_stored(lapsed, VALIDITY_EXPIRED)
            if never_taken:
                await self.fail_until_stored(never_taken, (
                    f"not accepted by the provider within the message TTL of "
                    f"{rules.message_ttl:g} s; no attempt reached it; "
                    f"last error: {self.last_error}"))
            if maybe_taken:
                await self.fail_until_stored(maybe_taken, (
                    f"no status report from the provider within the message TTL of "
                    f"{rules.message_ttl:g} s and a grace of {rules.status_grace:g} s; "
                    f"an attempt may have reached it; last error: {self.last_error}"))
        finally:
            self.gauge.release(len(expired))

    async def fail_until_stored(self, messages: list[Message], reason: str) -> None:
        pause = STORE_RETRY_INITIAL
        while True:
            with _logged("failing expired messages"):
                await self.fail(messages, reason)
                return
            await trio.sleep(pause)
            pause = min(STORE_RETRY_MAX, pause * 2)

    async def fail(self, messages: list[Message], reason: str) -> None:
        refused = await self.repository.update_many(
            dict.fromkeys((m.id for m in messages), Status.FAILED), reason
        )
        failed = [m.id for m in messages if m.id not in refused]
        if failed:  # counted and logged: only what changed (a report may have come first)
            self.stats.record(MessagesExpired(len(failed)))
            log.warning("messages_expired", count=len(failed), reason=reason,
                        message_ids=failed)


STORE_RETRY_INITIAL = 1.0
"""Pause before a side path tries the store again; it doubles up to STORE_RETRY_MAX."""
STORE_RETRY_MAX = 60.0


@contextmanager
def _logged(doing: str) -> Iterator[None]:
    """A store or actor failure on a side path: say what it cost, and go on sending.

    The repository has logged the store's failure itself, at error level; this is
    the consequence, one warning."""
    try:
        yield
    except (StoreError, ActorError) as error:
        log.warning("batcher_store_call_failed", doing=doing, error=str(error))
