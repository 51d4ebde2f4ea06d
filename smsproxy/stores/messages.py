"""What a store offers for messages: saving them, reading them, their statuses,
idempotency keys and retention. (The rules that decide a status change live in
:class:`smsproxy.repository.Repository`; the store reads and writes rows.)"""

from collections.abc import Iterable, Sequence
from typing import Protocol

from smsproxy.models import Idempotency, ListedMessage, Message, MessageQuery, StatusRecord
from smsproxy.statuses import Status

__all__ = ["Messages", "StatusChange"]

StatusChange = tuple[str, Status, str | None]
"""(message id, new status, reason)"""


class Messages(Protocol):
    def insert(self, messages: Sequence[Message]) -> None:
        """All or none, each with its ACCEPTED event: an id that exists, or comes
        twice, raises DuplicateMessage and stores nothing."""
        ...

    def lookup(self, message_id: str) -> StatusRecord | None: ...

    def find(self, query: MessageQuery, status: Status) -> list[ListedMessage]:
        """Messages of ``status`` that match the rest of ``query`` (its status is
        the caller's), newest first, from an index on (status, accepted time)."""
        ...

    def owners(self, message_ids: Iterable[str]) -> dict[str, str]:
        """The provider that took each of these messages (or may have it: an unknown
        outcome), for those a provider did; the rest are left out."""
        ...

    def by_refs(self, provider: str, refs: Iterable[str]) -> dict[str, str]:
        """Our message id for each of the provider's own ids that it took (as
        ``mark_sent`` recorded them); unknown refs are left out."""
        ...

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

    def current(self, message_ids: Iterable[str]) -> dict[str, tuple[Status, int]]:
        """Status and last event sequence of those that exist, held against other
        writers until the transaction ends (several instances report at once)."""
        ...

    def accepted(self) -> list[Message]:
        """Every message still ACCEPTED (sent or not), oldest first: what waits."""
        ...

    def find_idempotency(self, scope: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        """(fingerprint, message ids) remembered for the key, if any."""
        ...

    def remember_idempotency(
        self, idempotency: Idempotency, message_ids: Sequence[str], at: float
    ) -> bool:
        """Remember the key for these ids; False, remembering nothing, when another
        writer remembered it first (on PostgreSQL, after waiting for it to commit)."""
        ...

    def forget_idempotency(self, before: float, limit: int) -> int:
        """Drop up to ``limit`` keys remembered before ``before``; how many were dropped."""
        ...

    def purge(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` messages accepted before ``before`` that the provider
        has taken (``PURGEABLE``) and whose callbacks are settled, with their events;
        how many. ``lookup`` answers None for them from then on."""
        ...
