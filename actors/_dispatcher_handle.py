"""The dispatcher's door: what the HTTP layer calls (submit, the queue's depth, the
drain at shutdown), the loop's settings, and the state it shares with the loop
(:mod:`actors.dispatcher`). A POST saves its message here, in its own task; the save
is the queueing, and a poke wakes the loop when a batch may be due."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog
import trio

from actors.repository import RepositoryHandle
from actors.stats import StatsHandle
from smsproxy.compliance import Quota
from smsproxy.dispatching import BatchingRules
from smsproxy.errors import LargerThanQueue, QueueFull, ShuttingDown
from smsproxy.logs import debug_enabled
from smsproxy.models import Idempotency, Outgoing, Saved, Submitted, new_messages
from smsproxy.records import MessagesAccepted

__all__ = ["DispatchSettings", "DispatchState", "DispatcherHandle", "WallClock"]

log = structlog.get_logger("smsproxy.dispatcher")

WallClock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    instance: str
    lease: float
    poll: float = 0.25
    """Seconds between looks at the table when nothing woke the loop."""
    expire_every: float = 5.0
    count_every: float = 1.0
    """Seconds between counts of the cluster's unsent messages (queue depth, admission)."""


class DispatchState:
    """What the loop and the door share: the loop writes it, POSTs read and poke it."""

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


class DispatcherHandle:
    """What the HTTP layer sees: submit, the queue's depth, and the drain at shutdown."""

    def __init__(self, repository: RepositoryHandle, stats: StatsHandle, state: DispatchState,
                 max_queue: int, rules: BatchingRules, clock: WallClock) -> None:
        self._repository = repository
        self._stats = stats
        self._rules = rules
        self._state = state
        self._max_queue = max_queue
        self._clock = clock

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
        self, items: Sequence[Submitted], idempotency: Idempotency | None = None,
        quota: Quota | None = None,
    ) -> Saved:
        """Save as ACCEPTED, all or none; the saved rows are the queue. With an
        idempotency key seen before, nothing is stored and the first ids come back.
        ``quota``: the sending key's daily cap, if it has one."""
        if not self.accepting:
            raise ShuttingDown()
        now = self._clock()
        messages = new_messages(items, now)
        queued = sum(1 for m in messages if m.send_at is None)  # scheduled ones wait aside
        if queued > self._max_queue:
            raise LargerThanQueue(queued, self._max_queue)
        if queued and self._state.unsent + queued > self._max_queue:
            raise QueueFull(self._state.unsent, self._rules.retry_after)
        saved = await self._repository.save(*messages, idempotency=idempotency, at=now,
                                            quota=quota)
        if saved.replayed:
            return saved
        self._state.unsent += queued
        self._state.claimable += queued
        earliest = min((self._rules.leave_by(m) for m in messages if m.send_at is None),
                       default=math.inf)
        if self._state.claimable >= self._rules.batch_size or earliest < self._state.next_look:
            # A batch may be full now, or one of these must leave before the loop looks
            # again. Short of that, the loop's own timer (the earliest due time, or the
            # poll) is soon enough, and a claim per POST would cost a query per POST.
            self._state.poke()
        self._stats.record(MessagesAccepted(len(messages)))
        if debug_enabled():
            for message in messages:
                log.debug("message_queued", message_id=message.id,
                          phone_number=message.phone_number)
        return saved

    async def drain(self) -> None:
        """Stop claiming, wait for the batches in flight, give back every claim."""
        self._state.accepting = False
        self._state.poke()
        await self._state.stopped.wait()
