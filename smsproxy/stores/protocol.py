"""What every store backend offers: where messages and their statuses are kept.

A store is deliberately dumb: it reads and writes rows and knows no rules. The
rules live once, in :class:`smsproxy.repository.Repository`, for every backend.
Stores are synchronous; a backend that blocks (``blocking = True``) is driven
from a worker thread by the repository actor, one transaction at a time.
"""

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from smsproxy.models import Idempotency, Message, StatusRecord
from smsproxy.statuses import Status

__all__ = ["MessageStore", "StatusChange"]

StatusChange = tuple[str, Status, str | None]
"""(message id, new status, reason)"""


class MessageStore(Protocol):
    blocking: bool
    """True when calls block on I/O and so must run in a worker thread."""

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

