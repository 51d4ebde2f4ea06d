"""What every store backend offers: where messages and their statuses are kept.

A store is deliberately dumb: it reads and writes rows and knows no rules. The
rules live once, in :class:`smsproxy.repository.Repository`, for every backend.
Stores are synchronous; a backend that blocks (``blocking = True``) is driven
from a worker thread by the repository actor, one transaction at a time.

A store is its messages (:mod:`.messages`), its outbox (:mod:`.outbox`: events,
feed, callbacks), its queue (:mod:`.queue`), the providers' shared health
(:mod:`.routes`) and what compliance asks for (:mod:`.compliance`); the SQL stores share their rows'
shapes (:mod:`.rows`).
"""

from contextlib import AbstractContextManager
from typing import Protocol

from smsproxy.stores.compliance import Compliance
from smsproxy.stores.messages import Messages, StatusChange
from smsproxy.stores.outbox import CallbackOutcome, Outbox
from smsproxy.stores.queue import Backlog, Claimed, ClaimRules, Lapsed, Queue, Renewal
from smsproxy.stores.routes import Routes

__all__ = [
    "Backlog",
    "CallbackOutcome",
    "ClaimRules",
    "Claimed",
    "Compliance",
    "Lapsed",
    "MessageStore",
    "Messages",
    "Outbox",
    "Queue",
    "Renewal",
    "Routes",
    "StatusChange",
]


class MessageStore(Messages, Outbox, Queue, Routes, Compliance, Protocol):
    blocking: bool
    """True when calls block on I/O and so must run in a worker thread."""
    notices: tuple[str, ...]
    """What the operator should know about the backend, found when it was opened."""
    concurrent: bool
    """True when two instances of it may run transactions at once (PostgreSQL)."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together, or not at all."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside a transaction: what is done inside is taken back, and the rest of the
        transaction goes on, when an exception leaves it."""
        ...

    def check(self) -> None:
        """Touch the store, so that a broken one raises :class:`StoreError`."""
        ...

    def close(self) -> None: ...
