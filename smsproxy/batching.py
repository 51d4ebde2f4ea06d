"""The batcher's bookkeeping, free of trio: what to send now, what waits, what expired.

Two clocks meet here. ``now`` is the event loop's monotonic clock and drives
``max_delay`` and retry delays; a message's ``created_at`` is wall-clock time
(it must survive a restart) and drives the TTL, through ``wall_now``.

A message fails by TTL only when no attempt can have reached the provider. Once
an attempt's outcome was unknown (a timeout after the request went out, a
gateway's 502, an unreadable answer), the provider may have it and its status
report may still come: such a message gets ``status_grace`` more before it fails.
So does a message recovered after a restart with attempts on record, since this
run cannot know how those attempts ended.
"""

import heapq
import itertools
import math
from dataclasses import dataclass

from smsproxy.models import Batch, Message, new_id

__all__ = ["DEADLINE_LEAD", "VALIDITY_EXPIRED", "BatchQueue", "BatchingRules", "Expired",
           "QueueGauge", "lapsed_by_validity", "lapses_at"]


@dataclass(frozen=True, slots=True)
class BatchingRules:
    batch_size: int
    """At least 1."""
    max_delay: float
    max_in_flight: int
    message_ttl: float
    status_grace: float = 3600.0
    """Added to the TTL of a message the provider may have taken, for its report to come."""
    requeue_initial: float = 5.0
    """Delay before a batch that exhausted its attempts is tried again; doubles each round."""
    requeue_max: float = 300.0

    @property
    def retry_after(self) -> int:
        """Seconds a refused POST is told to wait (Retry-After): a flush's worth."""
        return max(1, math.ceil(self.max_delay))


Expired = tuple[Message, bool]
"""A message past its deadline, and whether the provider may have taken it."""


DEADLINE_LEAD = 0.02
"""Seconds before a message's own deadline that its batch leaves: the time from the
flush to the provider call's start, on a loaded event loop."""

VALIDITY_EXPIRED = "validity period expired"
"""The reason of a message that was not sent within its validity (valid_for, valid_until)."""


def lapses_at(message: Message, message_ttl: float) -> float:
    """When the message may no longer be sent: its TTL, or its validity if sooner."""
    end = message.ready_at + message_ttl
    return end if message.valid_until is None else min(end, message.valid_until)


def lapsed_by_validity(message: Message, message_ttl: float) -> bool:
    """Whether its validity, not the TTL, is what ended it."""
    until = message.valid_until
    return until is not None and until <= message.ready_at + message_ttl


def _sendable(message: Message, wall_now: float) -> bool:
    return message.valid_until is None or wall_now < message.valid_until


class QueueGauge:
    """Counts messages accepted but not yet handed to the provider (or failed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0

    def try_admit(self, count: int) -> bool:
        if self.depth + count > self.limit:
            return False
        self.depth += count
        return True

    def force_admit(self, count: int) -> None:
        """Admit regardless of the limit: for messages that were accepted before."""
        self.depth += count

    def release(self, count: int) -> None:
        self.depth -= count


class BatchQueue:
    """Messages wait in deadline order: each must leave by its own deadline (its
    ``deliver_by``, else ``max_delay`` after it was queued). A batch leaves when it is
    full or when the earliest deadline arrives, and takes the earliest deadlines
    first, so that the messages that can wait fill the room an urgent one leaves."""

    def __init__(self, rules: BatchingRules) -> None:
        self.rules = rules
        self._waiting: list[tuple[float, int, Message]] = []  # a heap: (deadline, order, m)
        self._parked: list[tuple[float, int, tuple[Message, ...]]] = []
        self._tiebreak = itertools.count()
        self._lapsed: list[Message] = []
        self._rounds: dict[str, int] = {}
        self._maybe_taken: set[str] = set()
        self.in_flight = 0
        self.draining = False

    @property
    def parked_count(self) -> int:
        return sum(len(messages) for _, _, messages in self._parked)

    @property
    def waiting(self) -> int:
        """Messages queued, not yet in a batch (parked ones not counted)."""
        return len(self._waiting)

    def add(self, messages: tuple[Message, ...], now: float, wall_now: float | None = None
            ) -> None:
        """Queue messages at ``now``; ``wall_now`` places their ``deliver_by`` on this
        clock (without it, it counts from their acceptance as from ``now``)."""
        for message in messages:
            heapq.heappush(self._waiting, (self._leave_by(message, now, wall_now),
                                           next(self._tiebreak), message))
        self._maybe_taken.update(m.id for m in messages if m.attempts)

    def _leave_by(self, message: Message, now: float, wall_now: float | None) -> float:
        if message.deliver_by is None:
            return now + self.rules.max_delay
        reference = message.ready_at if wall_now is None else wall_now
        # A little early: the batch must be on its way to the provider by the deadline.
        return now + max(0.0, message.deliver_by - reference - DEADLINE_LEAD)

    def was_attempted(self, batch: Batch) -> bool:
        """Whether any of the batch was tried before: then some may have been taken since."""
        return any(m.id in self._rounds or m.attempts for m in batch.messages)

    def next_wakeup(self) -> float:
        """When ``take_batches`` or ``take_due_parked`` may have work next."""
        wake = math.inf
        if self._waiting and self.in_flight < self.rules.max_in_flight:
            wake = -math.inf if self.draining else self._waiting[0][0]
        if self._parked and not self.draining:
            wake = min(wake, self._parked[0][0])
        return wake

    def take_batches(self, now: float, wall_now: float | None = None) -> list[Batch]:
        """Batches to send now: full ones, ones whose earliest deadline has come, or
        anything when draining; each takes the earliest deadlines. A message past its
        ``valid_until`` (on ``wall_now``) is never sent: ``take_lapsed`` hands it out."""
        batches: list[Batch] = []
        size = self.rules.batch_size
        while self._waiting and self.in_flight < self.rules.max_in_flight:
            full = len(self._waiting) >= size
            due = now >= self._waiting[0][0]
            if not (full or due or self.draining):
                break
            messages: list[Message] = []
            while self._waiting and len(messages) < size:
                message = heapq.heappop(self._waiting)[2]
                if wall_now is not None and not _sendable(message, wall_now):
                    self._lapsed.append(message)
                else:
                    messages.append(message)
            if messages:
                batches.append(Batch(new_id(), tuple(messages)))
                self.in_flight += 1
        return batches

    def take_lapsed(self, now: float, wall_now: float) -> list[Expired]:
        """Messages ``take_batches`` found past their validity: those no attempt can
        have reached fail now; the others wait, unsent, for a report until their grace
        is over."""
        lapsed, self._lapsed = tuple(self._lapsed), []
        expired, alive = self._split_expired(lapsed, wall_now)
        self._hold(alive, now, wall_now)
        return expired

    def succeeded(self, batch: Batch) -> None:
        self.in_flight -= 1
        self.forget(batch.messages)

    def forget(self, messages: tuple[Message, ...]) -> None:
        """These left the queue for good (sent, reported on, or failed)."""
        for message in messages:
            self._rounds.pop(message.id, None)
            self._maybe_taken.discard(message.id)

    def exhausted(
        self, batch: Batch, now: float, wall_now: float, maybe_taken: bool = False
    ) -> list[Expired]:
        """A batch used all its attempts: park what may still wait, return what expired.

        ``maybe_taken``: an attempt's outcome was unknown.
        """
        self.in_flight -= 1
        if maybe_taken:
            self._maybe_taken.update(m.id for m in batch.messages)
        expired, alive = self._split_expired(batch.messages, wall_now)
        if alive:
            rounds = max(self._rounds.get(m.id, 0) for m in alive)
            delay = min(self.rules.requeue_max, self.rules.requeue_initial * 2**rounds)
            time_left = min(self._deadline(m) for m in alive) - wall_now
            wake = now + max(0.0, min(delay, time_left))
            heapq.heappush(self._parked, (wake, next(self._tiebreak), alive))
            for message in alive:
                self._rounds[message.id] = rounds + 1
        return expired

    def take_due_parked(self, now: float, wall_now: float) -> list[Expired]:
        """Move parked messages whose wait is over back to the front; return expired ones."""
        expired_all: list[Expired] = []
        while self._parked and self._parked[0][0] <= now:
            _, _, messages = heapq.heappop(self._parked)
            expired, alive = self._split_expired(messages, wall_now)
            expired_all.extend(expired)
            # Overdue: they go first, in the order they were parked.
            for message in alive:
                if _sendable(message, wall_now):
                    heapq.heappush(self._waiting, (-math.inf, next(self._tiebreak), message))
            self._hold(tuple(m for m in alive if not _sendable(m, wall_now)), now, wall_now)
        return expired_all

    def _hold(self, messages: tuple[Message, ...], now: float, wall_now: float) -> None:
        """Keep messages out of batches until they fail (their report may come first)."""
        if messages:
            wake = now + max(0.0, min(self._deadline(m) for m in messages) - wall_now)
            heapq.heappush(self._parked, (wake, next(self._tiebreak), messages))

    def finished(self) -> bool:
        """Draining and nothing left to hand over (parked messages wait for a restart)."""
        return self.draining and not self._waiting and self.in_flight == 0

    def _deadline(self, message: Message) -> float:
        """Wall-clock time at which the message fails, unless it was sent by then: its
        TTL or its validity, whichever ends first (with the grace, when the provider
        may have it)."""
        grace = self.rules.status_grace if message.id in self._maybe_taken else 0.0
        return lapses_at(message, self.rules.message_ttl) + grace

    def _split_expired(
        self, messages: tuple[Message, ...], wall_now: float
    ) -> tuple[list[Expired], tuple[Message, ...]]:
        expired = [(m, m.id in self._maybe_taken) for m in messages
                   if wall_now >= self._deadline(m)]
        alive = tuple(m for m in messages if wall_now < self._deadline(m))
        self.forget(tuple(m for m, _ in expired))
        return expired, alive
