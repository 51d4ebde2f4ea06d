"""The queue every store is: its message table, claimed in batches with leases.

Instances (one on SQLite and memory, several on PostgreSQL) claim unsent messages
for a lease, renew the lease before and while they send, mark what the provider
took, and park what it did not with a growing delay. A claim whose lease ran out
(its instance died) may be taken again; a store opened by a new process voids
the claims a dead one left (SQLite, memory: one process per file). Parking, the
rounds, the last provider error and whether an attempt may have reached the
provider live in the row, so they survive a restart. Times are the store's clock.

The store reports facts; :mod:`smsproxy.dispatching` says what they mean (when a
batch leaves, the reason an expired message is given), and
:class:`smsproxy.repository.Repository` applies expiry as a status update.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from smsproxy.models import Message

__all__ = ["Backlog", "ClaimRules", "Claimed", "Lapsed", "Queue", "Renewal"]


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What one claim takes: up to ``batch_size`` messages, earliest deadline first,
    but only when they fill a batch or the earliest deadline has come. A message's
    deadline is its own ``deliver_by`` less ``lead``, or ``max_delay`` after it was
    ready (accepted, or due by its ``send_at``). Past its ``ttl`` (or its validity)
    a message is never claimed: it waits to be failed, or for its report.

    With ``batches`` above 1, one claim takes up to that many batches, in deadline
    order: every full one, and the partial last one only when its own earliest
    deadline has come (so that claiming several at once fills them as well); with
    ``partial`` false, never a partial one (a claim while no sender is free: the
    batch would wait for a sender while it could still be filled)."""

    batch_size: int
    max_delay: float
    lease: float
    ttl: float
    lead: float = 0.0
    batches: int = 1
    partial: bool = True

    @property
    def limit(self) -> int:
        """Messages one claim takes, at most."""
        return self.batch_size * max(1, self.batches)

    def taken(self, leave_by: Sequence[float], now: float) -> int:
        """Of the candidates (their deadlines, earliest first), how many a claim takes."""
        full = len(leave_by) // self.batch_size * self.batch_size
        if self.partial and full < len(leave_by) and now >= leave_by[full]:
            return len(leave_by)
        return full

    def flushing(self) -> "ClaimRules":
        """The same, with every waiting message due now (at shutdown)."""
        return replace(self, max_delay=-_FOREVER, lead=_FOREVER)


_FOREVER = 1e12
"""Seconds: further than any deadline."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """What one claim took: messages to send now (in deadline order, so that each
    ``batch_size`` of them in turn is one batch), or when to look again."""

    messages: tuple[Message, ...]
    taken_over: int = 0
    """Of them, how many an instance had claimed before and let run out (it died)."""
    next_due: float | None = None
    """With nothing taken: when the earliest waiting message falls due (None: none waits)."""
    waiting: int = 0
    """With nothing taken: how many claimable messages wait (fewer than a batch)."""


@dataclass(frozen=True, slots=True)
class Renewal:
    """A renewed lease: the ids still held, and those lost while they still wait
    (another instance holds them, or the lease ran out). The rest were taken by the
    provider meanwhile, or failed."""

    held: frozenset[str]
    lost: frozenset[str]


@dataclass(frozen=True, slots=True)
class Lapsed:
    """A message that was not sent within its TTL (or validity), and its grace when an
    attempt may have reached the provider: the facts its FAILED reason is made of."""

    message_id: str
    maybe_taken: bool
    by_validity: bool
    """Its validity ended before its TTL would have."""
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Backlog:
    """The cluster's unsent messages: all of them, and those any instance may claim
    now (no live claim holds them, no not-before time holds them back)."""

    unsent: int
    claimable: int


class Queue(Protocol):
    def claim(self, instance: str, rules: ClaimRules) -> Claimed:
        """Claim a batch for ``instance`` until now + ``rules.lease`` (see ClaimRules)."""
        ...

    def renew(self, instance: str, message_ids: Sequence[str], lease: float) -> Renewal:
        """Extend the lease of those this instance still holds and that still wait."""
        ...

    def mark_sent(
        self, instance: str, message_ids: Sequence[str], attempts: int,
        providers: Mapping[str, str], refs: Mapping[str, str],
    ) -> None:
        """The provider took them: never claimed again; they wait for their reports.
        ``providers`` names the provider that took each, ``refs`` the provider's own id
        for those its reports name by it (:meth:`Messages.owners` reads them)."""
        ...

    def park(
        self, instance: str, message_ids: Sequence[str], attempts: int, error: str,
        maybe_taken: bool, requeue_initial: float, requeue_max: float,
        pinned: Mapping[str, str],
    ) -> None:
        """Give the claim back, not to be claimed again before a growing delay
        (``requeue_initial`` doubled per round, at most ``requeue_max``). ``pinned``:
        the provider that may have each message (an unknown outcome), which a claim
        returns as its ``provider`` from then on."""
        ...

    def lapsed(self, ttl: float, grace: float, limit: int) -> list[Lapsed]:
        """Up to ``limit`` unsent, unclaimed messages past their TTL or validity
        (``grace`` more when an attempt may have reached the provider), held against
        other writers until the transaction ends."""
        ...

    def backlog(self) -> Backlog:
        """Messages accepted and not yet taken by the provider, in the whole cluster
        (scheduled ones not yet due left out)."""
        ...

    def release(self, instance: str) -> int:
        """Give back every claim of this instance (at shutdown); how many."""
        ...
