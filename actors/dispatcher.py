"""The dispatcher actor: the one engine that hands messages to the provider in batches.

The message table is the queue, on every store (:class:`~smsproxy.stores.queue.Queue`).
A POST saves its message and wakes this loop; the loop claims batches from the
table for a lease, but only when the waiting messages fill a batch or the earliest
of them is due (``max_delay`` after it was ready, or its own deadline). With
several instances on one PostgreSQL database, whichever looks first takes the
batch and the others find nothing: the provider is called as often with ten
instances as with one. Every instance also looks every ``poll`` seconds, for
messages saved by the others, parked ones due again and claims whose instance died.

A sender keeps its lease alive while it works (every third of the lease) and, before
every retry, sends only what it still holds and what still waits: a message
reported on since is left out, and a batch whose lease was lost stops there
(another instance may hold it; ``--claim-lease`` > ``--provider-timeout``, so a
batch is never in flight from two live instances). Sent messages are marked and
never claimed again, even after a restart; a batch that used its attempts is parked
in the table with a growing delay; messages past their TTL are failed through the
repository's status rules by whichever instance finds them, once.
"""

import math
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import replace

import structlog
import trio

from actors._dispatcher_handle import (
    DispatcherHandle,
    DispatchSettings,
    DispatchState,
    WallClock,
)
from actors._repository_facets import QueueHandle
from actors.errors import ActorError
from actors.repository import RepositoryHandle
from actors.sender import RetryPolicy, Withdrawn, deliver
from actors.stats import StatsHandle
from smsproxy.dispatching import BatchingRules
from smsproxy.errors import StoreError
from smsproxy.models import (
    Batch,
    BatchFailed,
    BatchLeaseLost,
    BatchOutcome,
    BatchSucceeded,
    Message,
    new_id,
)
from smsproxy.providers import Provider
from smsproxy.records import ClaimsTaken, MessagesExpired, ProviderTook

__all__ = ["DispatchSettings", "DispatcherHandle", "WallClock", "run"]

log = structlog.get_logger("smsproxy.dispatcher")


EXPIRE_AT_ONCE = 1000
"""Messages failed per expiry transaction, at most (the next round takes the rest)."""


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
    state = DispatchState()
    loop = _Dispatcher(repository.queue, provider, stats, rules, retry, settings, state, clock)
    try:
        async with trio.open_nursery() as senders:
            loop.senders = senders
            await loop.count()
            # Nothing to queue again: the table holds them, and a dead process's claims
            # are void. How many wait is worth a line at start.
            log.info("recovered", messages=state.unsent)
            task_status.started(DispatcherHandle(repository, stats, state, max_queue, rules,
                                                 clock))
            await loop.serve()
    finally:
        # Also when shutdown's grace ran out and the senders were cancelled: what this
        # instance still holds goes back now, rather than when the leases run out.
        await loop.release()
        state.stopped.set()


class _Dispatcher:
    def __init__(self, queue: QueueHandle, provider: Provider, stats: StatsHandle,
                 rules: BatchingRules, retry: RetryPolicy, settings: DispatchSettings,
                 state: DispatchState, clock: WallClock) -> None:
        self.queue = queue
        self.provider = provider
        self.stats = stats
        self.rules = rules
        self.claim_rules = rules.claim(settings.lease)
        self.retry = retry
        self.settings = settings
        self.state = state
        self.clock = clock
        self.senders: trio.Nursery
        self.sending = trio.Semaphore(rules.max_in_flight)
        """A sender's turn to call the provider: ``max_in_flight`` at a time."""
        self.held = 0
        """Batches claimed and not yet sent: being sent, or waiting for a turn."""
        self.hold_at_most = 2 * rules.max_in_flight
        self.claims_failing = False

    async def serve(self) -> None:
        next_expiry = trio.current_time()
        next_count = next_expiry + self.settings.count_every  # run() has just counted
        while self.state.accepting:
            # Looking now: a message saved meanwhile pokes, whatever its deadline (the
            # claim may have read the table before it), so the wait below is cut short.
            self.state.next_look = math.inf
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
            self.state.wake = trio.Event()  # after waking: a poke since the claim stays
        await self.flush()

    async def flush(self) -> None:
        """At shutdown: whatever waits leaves now, in partial batches if need be (the
        shutdown grace bounds how long); scheduled messages wait for the next start."""
        rules = self.claim_rules.flushing()
        while True:
            while self.held >= self.hold_at_most:
                await self.state.wake.wait()
                self.state.wake = trio.Event()
            try:
                claimed = await self.queue.claim(self.settings.instance, rules)
            except (StoreError, ActorError):
                return  # the store logged why; the messages wait in the table
            if not claimed.messages:
                return
            self.start_senders(claimed.messages)

    async def claim_while_room(self) -> float:
        """Claim batches while there is room; seconds until it is worth looking again.

        Room is for a batch per sender and one round ahead: the next round is claimed,
        in one transaction, while this one is being sent (a claim per batch, each
        waiting for its commit, would cap the rate at a batch per commit). While no
        sender is free, a claim takes full batches only."""
        wait = self.settings.poll
        while self.state.accepting and self.held < self.hold_at_most:
            rules = replace(self.claim_rules, batches=self.hold_at_most - self.held,
                            partial=self.held < self.rules.max_in_flight)
            try:
                claimed = await self.queue.claim(self.settings.instance, rules)
                # Shielded, so it returns even when the loop is being stopped; stop here
                # then (the stats actor may be gone): release() gives the claim back.
                await trio.lowlevel.checkpoint_if_cancelled()
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
                self.start_senders(claimed.messages)
                continue
            self.state.claimable = claimed.waiting
            if claimed.next_due is not None:
                wait = min(wait, max(0.0, claimed.next_due - self.clock()))
            return wait
        return wait

    def start_senders(self, messages: Sequence[Message]) -> None:
        """One sender per batch of what a claim took (in deadline order)."""
        size = self.rules.batch_size
        for start in range(0, len(messages), size):
            self.held += 1
            self.senders.start_soon(self.send, Batch(new_id(), tuple(messages[start:start + size])))

    async def send(self, batch: Batch) -> None:
        try:
            sent, outcome, left_at = await self.deliver_holding(batch)
        finally:
            # Its room goes to the next claim now, which then joins this one's settling
            # in one transaction (the messages stay claimed until they are settled).
            self.held -= 1
            self.state.poke()
        self.stats.record(outcome)
        if isinstance(outcome, BatchSucceeded):
            self.stats.record(ProviderTook.of(sent.messages, left_at))
        await self.finish(sent, outcome)

    async def deliver_holding(self, batch: Batch) -> tuple[Batch, BatchOutcome, float]:
        """Deliver in its turn, the lease kept alive: what was last sent, how it ended,
        and when it left."""
        sent = batch

        async def still_held(batch: Batch) -> Batch:
            nonlocal sent
            sent = await self.still_held(batch)
            return sent

        async with trio.open_nursery() as keeping:
            keeping.start_soon(self.keep_lease, lambda: sent)
            async with self.sending:
                # A turn that comes as the loop is being stopped (the shutdown grace ran
                # out) starts no provider call: the claim goes back instead.
                await trio.lowlevel.checkpoint_if_cancelled()
                left_at = self.clock()
                self.state.in_flight += 1
                try:
                    outcome = await deliver(batch, self.provider, self.retry,
                                            self.stats.record, still_held)
                finally:
                    self.state.in_flight -= 1
            keeping.cancel_scope.cancel()
        return sent, outcome, left_at

    async def keep_lease(self, holding: Callable[[], Batch]) -> None:
        """Renew the lease every third of it while the batch is being sent, so that a
        long backoff between attempts never lets it run out (the loop would claim the
        same messages again)."""
        while True:
            await trio.sleep(self.settings.lease / 3)
            ids = [m.id for m in holding().messages]
            with suppress(StoreError, ActorError):  # the resend's renewal will tell
                await self.queue.renew(self.settings.instance, ids, self.settings.lease)

    async def still_held(self, batch: Batch) -> Batch:
        """Renew the lease: what this instance still holds and what still waits.
        Withdrawn when none is held while some still wait, or when the store cannot
        say (another instance may hold it by now)."""
        ids = [m.id for m in batch.messages]
        try:
            renewal = await self.queue.renew(self.settings.instance, ids, self.settings.lease)
        except (StoreError, ActorError) as error:
            log.warning("lease_not_renewed", batch_id=batch.id, error=str(error))
            raise Withdrawn() from error
        if renewal.lost and not renewal.held:
            raise Withdrawn()
        return Batch(batch.id, tuple(m for m in batch.messages if m.id in renewal.held))

    async def finish(self, sent: Batch, outcome: BatchOutcome) -> None:
        if isinstance(outcome, BatchLeaseLost):
            return  # what is left of it is another claim's now
        taken = set(outcome.taken)
        ids = [m.id for m in sent.messages if m.id not in taken]
        try:
            if outcome.taken:  # some requests of it were taken before one failed
                await self.mark_sent(outcome.taken, outcome)
            if not ids:
                return
            if isinstance(outcome, BatchFailed):
                await self.queue.park(
                    self.settings.instance, ids, outcome.attempts, outcome.error,
                    outcome.maybe_delivered, self.rules.requeue_initial, self.rules.requeue_max,
                    outcome.pinned)
            else:
                await self.mark_sent(ids, outcome)
        except (StoreError, ActorError) as error:
            # The claim runs out and another instance (or this one) takes it again.
            log.warning("claim_not_settled", batch_id=sent.id, error=str(error))

    async def mark_sent(self, ids: Sequence[str],
                        outcome: BatchSucceeded | BatchFailed) -> None:
        providers = {i: outcome.providers.get(i, self.provider.name) for i in ids}
        refs = {i: outcome.refs[i] for i in ids if i in outcome.refs}
        await self.queue.mark_sent(self.settings.instance, ids, outcome.attempts, providers, refs)
        self.state.unsent = max(0, self.state.unsent - len(ids))

    async def expire(self) -> None:
        try:
            failed = await self.queue.expire(self.rules, EXPIRE_AT_ONCE)
            await trio.lowlevel.checkpoint_if_cancelled()  # as after a claim
        except (StoreError, ActorError):
            return  # the store logged why; the next round tries again
        for reason, ids in failed.items():
            self.state.unsent = max(0, self.state.unsent - len(ids))
            self.stats.record(MessagesExpired(len(ids)))
            log.warning("messages_expired", count=len(ids), reason=reason, message_ids=ids)

    async def count(self) -> None:
        # A failure is the store's, logged there; the last count stands meanwhile.
        with suppress(StoreError, ActorError):
            backlog = await self.queue.backlog()
            self.state.unsent, self.state.claimable = backlog.unsent, backlog.claimable

    async def release(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                released = await self.queue.release(self.settings.instance)
            except (StoreError, ActorError) as error:
                log.warning("claims_not_released", error=str(error))  # they run out instead
                return
        log.info("dispatcher_drained", claims_released=released)
