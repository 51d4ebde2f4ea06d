"""What a store offers for compliance: the suppression list, replies (inbound
messages), and each key's use of its daily quota, kept in the store so that every
instance on one database sees the same list and counts against the same quota.
(The rules, when a number is suppressed and what a quota refuses, live in
:class:`smsproxy.repository.Repository`.)"""

from collections.abc import Iterable
from typing import Protocol

from smsproxy.compliance import Inbound, InboundQuery, PendingReply, Suppression
from smsproxy.stores.outbox import CallbackOutcome

__all__ = ["Compliance"]


class Compliance(Protocol):
    def suppressed(self, numbers: Iterable[str]) -> set[str]:
        """Those of ``numbers`` that are on the suppression list."""
        ...

    def suppress(self, entry: Suppression) -> bool:
        """Put the number on the list (or replace its entry); True when it was not there."""
        ...

    def unsuppress(self, number: str) -> bool:
        """Take the number off the list; False when it was not there."""
        ...

    def suppression(self, number: str) -> Suppression | None: ...

    def suppressions(self, after: str, limit: int) -> list[Suppression]:
        """The list in order of number, those after ``after`` ("" for the first page)."""
        ...

    def unsent_to(self, number: str) -> list[str]:
        """Ids of the messages to ``number`` that wait, unsent, for the provider."""
        ...

    def take_quota(self, tenant: str, day: int, count: int, limit: int) -> int | None:
        """Count ``count`` more messages of ``tenant`` on ``day``, unless that takes it
        past ``limit``: the day's count after, or None (and nothing counted). Held
        against other writers until the transaction ends."""
        ...

    def quota_used(self, tenant: str, day: int) -> int: ...

    def store_inbound(self, inbound: Inbound, callback_url: str | None = None,
                      at: float = 0.0) -> Inbound:
        """Store a reply at ``at`` (wall clock); it comes back with its id and position.
        With a callback URL, its callback is pending, due at once."""
        ...

    def claim_reply_callbacks(self, instance: str, now: float, limit: int,
                              lease: float) -> list[PendingReply]:
        """Reply callbacks due by ``now``, oldest first, claimed for ``lease`` seconds."""
        ...

    def settle_reply_callback(self, inbound_id: str, outcome: CallbackOutcome, attempts: int,
                              retry_at: float, error: str | None) -> None:
        """Record an attempt, as ``settle_callback`` does for a status event."""
        ...

    def inbound(self, query: InboundQuery) -> list[Inbound]:
        """Replies in the order they were stored."""
        ...
