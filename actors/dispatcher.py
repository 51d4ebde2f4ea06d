"""The dispatcher actor: the batcher of instances that share one PostgreSQL database.

The message table is the queue. A POST saves its message and wakes this loop; the
loop claims batches from the table (:class:`~smsproxy.stores.protocol.SharedQueue`)
for a lease, but only when the cluster's waiting messages fill a batch or the
oldest of them has waited ``max_delay``. Whichever instance looks first takes the
batch, and the others find nothing: the provider is called as often with ten
instances as with one. Every instance also looks every ``poll`` seconds, for
messages saved by the others and claims whose instance died.

A sender renews its lease before every retry and sends only what it still holds
and what still waits (a message reported since is left out; a message another
instance took over is too). The lease outlasts one attempt (``--claim-lease`` >
``--provider-timeout``), so a batch is never in flight from two live instances.
Sent messages are marked; a batch that used its attempts is parked in the table
with a growing delay, for any instance to take; messages past their TTL are failed
by whichever instance finds them, once.
"""

import math
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, replace

import structlog
import trio

from actors.batcher import WallClock
from actors.errors import ActorError
from actors.repository import RepositoryHandle, SharedQueueHandle
from actors.sender import RetryPolicy, deliver
from actors.stats import StatsHandle
from smsproxy.batching import BatchingRules
from smsproxy.errors import LargerThanQueue, QueueFull, ShuttingDown, StoreError
from smsproxy.models import (
    Batch,
    BatchFailed,
    BatchOutcome,
    BatchSucceeded,
    ClaimsTaken,
    Idempotency,
    Message,
    MessagesAccepted,
    MessagesExpired,
    Outgoing,
    ProviderTook,
    Saved,
    Submitted,
    new_id,
    new_messages,
)
from smsproxy.providers import Provider

__all__ = ["DispatchSettings", "DispatcherHandle", "run"]

log = structlog.get_logger("smsproxy.dispatcher")

EXPIRY_REASONS = (
    "not accepted by the provider within the message TTL; no attempt reached it; "
    "last error: ",
    "no status report from the provider within the message TTL and the status grace; "
    "an attempt may have reached it; last error: ",
)


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    instance: str
    lease: float
    poll: float = 0.25
    """Seconds between looks at the table when nothing woke the loop."""
    expire_every: float = 5.0
    count_every: float = 1.0
    """Seconds between counts of the cluster's unsent messages (queue depth, admission)."""


class _State:
    def __init__(self) -> None:
        self.accepting = True
        self.in_flight = 0
        self.unsent = 0
        """The cluster's unsent messages, as last counted plus this instance's since."""
        self.claimable = 0
        """Of them, those a claim could take now: an estimate that decides when to look."""
        self.next_look = math.inf
        """Wall-clock time the loop looks again unless poked: a message due sooner pokes."""
        self.wake = trio.Event()
        self.stopped = trio.Event()

    def poke(self) -> None:
        self.wake.set()


def _due_by(message: Message, max_delay: float) -> Message:
    """A scheduled message's deadline counts from its send_at: stored, so that claims
    order it by that and not by its acceptance."""
    if message.send_at is None or message.deliver_by is not None:
        return message
    return replace(message, deliver_by=message.send_at + max_delay)


class DispatcherHandle:
    """The same face as the single-process batcher's handle, for the HTTP layer."""

    def __init__(self, repository: RepositoryHandle, stats: StatsHandle, state: _State,
                 max_queue: int, rules: BatchingRules, clock: WallClock) -> None:
        self._repository = repository
        self._stats = stats
        self._batch_size = rules.batch_size
        self._max_delay = rules.max_delay
        self._state = state
        self._max_queue = max_queue
        self._clock = clock
        self._retry_after = rules.retry_after

    @property
    def queue_depth(self) -> int:
        """Unsent messages in the whole cluster, as last counted (at most a second ago)."""
        return self._state.unsent

    @property
    def in_flight(self) -> int:
        return self._state.in_flight

    @property
    def accepting(self) -> bool:
        return self._state.accepting and not self._state.stopped.is_set()

    async def submit(
        self, phone_number: str, content: str, idempotency: Idempotency | None = None,
        callback_url: str | None = None,
    ) -> Saved:
        return await self.submit_many([Outgoing(phone_number, content, callback_url)],
                                      idempotency)

    async def submit_many(
        self, items: Sequence[Submitted], idempotency: Idempotency | None = None
    ) -> Saved:
        """Save as ACCEPTED, all or none; the saved rows are the queue."""
        if not self.accepting:
            raise ShuttingDown()
        now = self._clock()
        messages = tuple(_due_by(m, self._max_delay) for m in new_messages(items, now))
        queued = sum(1 for m in messages if m.send_at is None)  # scheduled ones wait aside
        if queued > self._max_queue:
            raise LargerThanQueue(queued, self._max_queue)
        if queued and self._state.unsent + queued > self._max_queue:
            raise QueueFull(self._state.unsent, self._retry_after)
        saved = await self._repository.save(*messages, idempotency=idempotency, at=now)
        if not saved.replayed:
            self._state.unsent += queued
            self._state.claimable += queued
            earliest = min((m.deliver_by for m in messages if m.deliver_by is not None),
                           default=math.inf)
            if self._state.claimable >= self._batch_size or earliest < self._state.next_look:
                # A batch may be full now, or one of these must leave before the loop
                # looks again. Short of that, the loop's own timer (the earliest due
                # time, or the poll) is soon enough, and a claim per POST would cost a
                # query per POST.
                self._state.poke()
            self._stats.record(MessagesAccepted(len(messages)))
        return saved

    async def drain(self) -> None:
        """Stop claiming, wait for the batches in flight, give back every claim."""
        self._state.accepting = False
        self._state.poke()
        await self._state.stopped.wait()


async def run(
    repository: RepositoryHandle,
    provider: Provider,
    stats: StatsHandle,
    rules: BatchingRules,
    retry: RetryPolicy,
    max_queue: int,
    settings: DispatchSettings,
    *,
    clock: WallClock = time.time,
    task_status: trio.TaskStatus[DispatcherHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    state = _State()
    loop = _Dispatcher(repository.shared_queue, provider, stats, rules, retry, settings,
                       state, clock)
    try:
        async with trio.open_nursery() as senders:
            loop.senders = senders
            await loop.count()
            task_status.started(DispatcherHandle(repository, stats, state, max_queue, rules,
                                                 clock))
            await loop.serve()
    finally:
        # Also when shutdown's grace ran out and the senders were cancelled: what this
        # instance still holds goes back now, rather than when the leases run out.
        await loop.release()
        state.stopped.set()


class _Dispatcher:
    def __init__(self, shared: SharedQueueHandle, provider: Provider, stats: StatsHandle,
                 rules: BatchingRules, retry: RetryPolicy, settings: DispatchSettings,
                 state: _State, clock: WallClock) -> None:
        self.shared = shared
        self.provider = provider
        self.stats = stats
        self.rules = rules
        self.retry = retry
        self.settings = settings
        self.state = state
        self.clock = clock
        self.senders: trio.Nursery
        self.claims_failing = False

    async def serve(self) -> None:
        next_expiry = next_count = trio.current_time()
        while self.state.accepting:
            self.state.wake = trio.Event()
            wait = await self.claim_while_room()
            now = trio.current_time()
            if now >= next_expiry:
                await self.expire()
                next_expiry = now + self.settings.expire_every
            if now >= next_count:
                await self.count()
                next_count = now + self.settings.count_every
            self.state.next_look = self.clock() + wait
            with trio.move_on_after(wait):
                await self.state.wake.wait()

    async def claim_while_room(self) -> float:
        """Claim batches while senders are free; seconds until it is worth looking again."""
        wait = self.settings.poll
        settings, rules = self.settings, self.rules
        while self.state.accepting and self.state.in_flight < rules.max_in_flight:
            try:
                claimed = await self.shared.claim(settings.instance, rules.batch_size,
                                                  rules.max_delay, settings.lease)
            except (StoreError, ActorError) as error:
                if not self.claims_failing:  # once, not every poll (the cause is logged too)
                    log.warning("claims_failing", error=str(error))
                self.claims_failing = True
                return wait
            if self.claims_failing:
                log.info("claims_resumed")
                self.claims_failing = False
            if claimed.messages:
                self.state.claimable = max(0, self.state.claimable - len(claimed.messages))
                self.stats.record(ClaimsTaken(len(claimed.messages), claimed.taken_over))
                if claimed.taken_over:
                    log.warning("claims_taken_over", messages=claimed.taken_over)
                self.state.in_flight += 1
                self.senders.start_soon(self.send, Batch(new_id(), claimed.messages))
                continue
            self.state.claimable = claimed.waiting
            if claimed.next_due is not None:
                wait = min(wait, max(0.0, claimed.next_due - self.clock()))
            return wait
        return wait

    async def send(self, batch: Batch) -> None:
        sent = batch

        async def renewed(batch: Batch) -> Batch:
            nonlocal sent
            sent = await self.still_held(batch)
            return sent

        try:
            left_at = self.clock()
            outcome = await deliver(batch, self.provider, self.retry, self.stats.record, renewed)
            self.stats.record(outcome)
            if isinstance(outcome, BatchSucceeded):
                self.stats.record(ProviderTook.of(sent.messages, left_at))
            await self.finish(sent, outcome)
        finally:
            self.state.in_flight -= 1
            self.state.poke()

    async def still_held(self, batch: Batch) -> Batch:
        """Renew the lease: what this instance still holds and what still waits. When
        the store cannot say, send nothing: another instance may hold it by now."""
        ids = [m.id for m in batch.messages]
        try:
            held = await self.shared.renew(self.settings.instance, ids, self.settings.lease)
        except (StoreError, ActorError) as error:
            log.warning("lease_not_renewed", batch_id=batch.id, error=str(error))
            held = set()
        return Batch(batch.id, tuple(m for m in batch.messages if m.id in held))

    async def finish(self, sent: Batch, outcome: BatchOutcome) -> None:
        ids = [m.id for m in sent.messages]
        if not ids:
            return
        try:
            if isinstance(outcome, BatchFailed):
                await self.shared.park(
                    self.settings.instance, ids, outcome.attempts, outcome.error,
                    outcome.maybe_delivered, self.rules.requeue_initial, self.rules.requeue_max,
                )
            else:
                await self.shared.mark_sent(self.settings.instance, ids)
                self.state.unsent = max(0, self.state.unsent - len(ids))
        except (StoreError, ActorError) as error:
            # The claim runs out and another instance (or this one) takes it again.
            log.warning("claim_not_settled", batch_id=sent.id, error=str(error))

    async def expire(self) -> None:
        rules = self.rules
        try:
            failed = await self.shared.expire(rules.message_ttl, rules.status_grace,
                                              EXPIRY_REASONS)
        except (StoreError, ActorError):
            return  # the store logged why; the next round tries again
        if failed:
            self.state.unsent = max(0, self.state.unsent - len(failed))
            self.stats.record(MessagesExpired(len(failed)))
            log.warning("messages_expired", count=len(failed), message_ids=failed)

    async def count(self) -> None:
        # A failure is the store's, logged there; the last count stands meanwhile.
        with suppress(StoreError, ActorError):
            backlog = await self.shared.backlog()
            self.state.unsent, self.state.claimable = backlog.unsent, backlog.claimable

    async def release(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                released = await self.shared.release(self.settings.instance)
            except (StoreError, ActorError) as error:
                log.warning("claims_not_released", error=str(error))  # they run out instead
                return
        log.info("dispatcher_drained", claims_released=released)
