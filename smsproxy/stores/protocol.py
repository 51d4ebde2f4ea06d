"""What every store backend offers: where messages and their statuses are kept.

A store is deliberately dumb: it reads and writes rows and knows no rules. The
rules live once, in :class:`smsproxy.repository.Repository`, for every backend.
Stores are synchronous; a backend that blocks (``blocking = True``) is driven
from a worker thread by the repository actor, one transaction at a time.
"""

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from smsproxy.models import Idempotency, Message, StatusRecord
from smsproxy.statuses import Status

__all__ = ["Backlog", "Claimed", "MessageStore", "SharedQueue", "StatusChange", "first_duplicate"]

StatusChange = tuple[str, Status, str | None]
"""(message id, new status, reason)"""


class MessageStore(Protocol):
    blocking: bool
    """True when calls block on I/O and so must run in a worker thread."""
    notices: tuple[str, ...]
    """What the operator should know about the backend, found when it was opened."""
    concurrent: bool
    """True when two instances of it may run transactions at once (PostgreSQL)."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together, or not at all."""
        ...

    def insert(self, messages: Sequence[Message]) -> None:
        """All or none: an id that exists, or comes twice, raises DuplicateMessage
        and stores nothing."""
        ...

    def lookup(self, message_id: str) -> StatusRecord | None: ...

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        """The current status of each id that exists; unknown ids are left out."""
        ...

    def set_statuses_unless(
        self, changes: Sequence[StatusChange], protected: frozenset[Status]
    ) -> set[str]:
        """Apply each change unless the message's current status is ``protected``.

        A compare-and-set: returns the ids that were changed. Unknown ids and
        protected messages are left alone (and left out of the answer).
        """
        ...

    def add_attempts(self, message_ids: Sequence[str], attempts: int) -> None: ...

    def accepted(self) -> list[Message]:
        """Every message still ACCEPTED, oldest first: the work a restart must redo."""
        ...

    def find_idempotency(self, scope: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        """(fingerprint, message ids) remembered for the key, if any."""
        ...

    def remember_idempotency(
        self, idempotency: Idempotency, message_ids: Sequence[str], at: float
    ) -> None: ...

    def forget_idempotency(self, before: float) -> int:
        """Drop keys remembered before ``before``; how many were dropped."""
        ...

    def check(self) -> None:
        """Touch the store, so that a broken one raises :class:`StoreError`."""
        ...

    def close(self) -> None: ...



@dataclass(frozen=True, slots=True)
class Claimed:
    """What one claim took: messages to send now, or when to look again."""

    messages: tuple[Message, ...]
    taken_over: int = 0
    """Of them, how many an instance had claimed before and let run out (it died)."""
    next_due: float | None = None
    """With nothing taken: when the oldest waiting message falls due (None: none waits)."""
    waiting: int = 0
    """With nothing taken: how many unclaimed messages wait (fewer than a batch)."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """The cluster's unsent messages: all of them, and those any instance may claim
    now (no live claim holds them, no not-before time holds them back)."""

    unsent: int
    claimable: int


class SharedQueue(Protocol):
    """A store whose message table is the queue of several instances (PostgreSQL).

    Instances claim unsent messages for a lease, renew the lease before each
    attempt, and give back what they could not send; a claim whose lease ran out
    (its instance died) may be taken by any instance. Times are the store's clock.
    """

    def claim(
        self, instance: str, batch_size: int, max_delay: float, lease: float
    ) -> Claimed:
        """Claim up to ``batch_size`` due messages, oldest first, but only when they
        fill a batch or the oldest has waited ``max_delay``: batches stay full
        across instances."""
        ...

    def renew(self, instance: str, message_ids: Sequence[str], lease: float) -> set[str]:
        """Extend the lease; the ids this instance still holds and that still wait."""
        ...

    def mark_sent(self, instance: str, message_ids: Sequence[str]) -> None: ...

    def park(
        self, instance: str, message_ids: Sequence[str], attempts: int, error: str,
        maybe_taken: bool, requeue_initial: float, requeue_max: float,
    ) -> None:
        """Give the claim back, not to be claimed again before a growing delay."""
        ...

    def expire(self, ttl: float, grace: float, reasons: tuple[str, str]) -> list[str]:
        """Fail unsent, unclaimed messages past their deadline (``grace`` more when an
        attempt may have reached the provider); the ids failed. ``reasons``: the
        reason for messages no attempt reached, and for those one may have, each
        followed by the last error."""
        ...

    def backlog(self) -> Backlog:
        """Messages accepted and not yet taken by the provider, in the whole cluster."""
        ...

    def release(self, instance: str) -> int:
        """Give back every claim of this instance (at shutdown); how many."""
        ...


def first_duplicate(messages: Sequence[Message], stored: Iterable[str]) -> str:
    """The first of the messages' ids that is ``stored`` already or repeats an earlier one."""
    taken = set(stored)
    for message in messages:
        if message.id in taken:
            return message.id
        taken.add(message.id)
    return messages[0].id
