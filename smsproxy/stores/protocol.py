"""What every store backend offers: where messages and their statuses are kept.

A store is deliberately dumb: it reads and writes rows and knows no rules. The
rules live once, in :class:`smsproxy.repository.Repository`, for every backend.
Stores are synchronous; a backend that blocks (``blocking = True``) is driven
from a worker thread by the repository actor, one transaction at a time.
"""

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

from smsproxy.models import (
    Event,
    Idempotency,
    ListedMessage,
    Message,
    MessageQuery,
    PendingCallback,
    StatusRecord,
)
from smsproxy.statuses import Status
from smsproxy.stores.queue import Backlog, Claimed, ClaimRules, Lapsed, Queue, Renewal

__all__ = [
    "EVENT_COLUMNS",
    "MESSAGE_COLUMNS",
    "PURGEABLE",
    "Backlog",
    "CallbackOutcome",
    "ClaimRules",
    "Claimed",
    "Lapsed",
    "MessageStore",
    "Queue",
    "Renewal",
    "StatusChange",
    "event_from_row",
    "event_row",
    "find_statement",
    "first_duplicate",
    "listed_messages",
    "message_from_row",
    "prefixed",
]

StatusChange = tuple[str, Status, str | None]
"""(message id, new status, reason)"""

CallbackOutcome = Literal["delivered", "abandoned", "retry"]

PURGEABLE = ("CONFIRMED", "DELIVERED", "FAILED")
"""Statuses of messages that retention deletes: the provider took them, or they failed.
(A CONFIRMED message older than the retention window will hear no more news.)"""

MESSAGE_COLUMNS = ("id, phone_number, content, created_at, attempts, deliver_by,"
                   " delivery_class, valid_until, send_at")
"""A message's columns in the SQL stores, for ``message_from_row`` (its callback URL
lives with its events)."""


def message_from_row(row: Sequence[Any]) -> Message:
    """A message from its ``MESSAGE_COLUMNS``."""
    i, number, content, at, attempts, deliver_by, kind, valid_until, send_at = row
    return Message(i, number, content, at, attempts, None, deliver_by, kind, valid_until,
                   send_at)


EVENT_COLUMNS = "event_id, message_id, sequence, status, previous_status, reason, at"
"""An event's columns in the SQL stores, in :class:`Event`'s order."""


def event_from_row(row: Sequence[Any]) -> Event:
    """An event from its ``EVENT_COLUMNS``, then its position."""
    event_id, message_id, sequence, status, previous, reason, at, position = row
    return Event(event_id, message_id, sequence, Status(status),
                 Status(previous) if previous else None, reason, at, position)


def find_statement(
    query: MessageQuery, status: Status, table: str, placeholder: str
) -> tuple[str, list[Any]]:
    """``MessageStore.find`` in SQL for either engine: the statement and its values."""
    conditions = ""
    values: list[Any] = [status.value]
    if query.since is not None:
        conditions += f" AND created_at >= {placeholder}"
        values.append(query.since)
    if query.until is not None:
        conditions += f" AND created_at < {placeholder}"
        values.append(query.until)
    if query.before is not None:
        conditions += (f" AND (created_at < {placeholder} OR (created_at = {placeholder}"
                       f" AND id < {placeholder}))")
        values += [query.before[0], query.before[0], query.before[1]]
    statement = (f"SELECT id, status, reason, created_at, updated_at FROM {table}"
                 f" WHERE status = {placeholder}{conditions}"
                 f" ORDER BY created_at DESC, id DESC LIMIT {placeholder}")
    return statement, [*values, query.limit]


def listed_messages(rows: Iterable[Sequence[Any]]) -> list[ListedMessage]:
    """The rows of ``find_statement`` as messages."""
    return [ListedMessage(i, Status(status), reason, at, updated)
            for i, status, reason, at, updated in rows]


def prefixed(table: str, columns: str) -> str:
    """``a, b`` as ``t.a, t.b``: columns of one table in a join."""
    return ", ".join(f"{table}.{column.strip()}" for column in columns.split(","))


def event_row(event: Event) -> tuple[Any, ...]:
    """An event's ``EVENT_COLUMNS``."""
    return (event.event_id, event.message_id, event.sequence, event.status.value,
            event.previous_status.value if event.previous_status else None,
            event.reason, event.at)


class MessageStore(Queue, Protocol):
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

    def insert(self, messages: Sequence[Message]) -> None:
        """All or none, each with its ACCEPTED event: an id that exists, or comes
        twice, raises DuplicateMessage and stores nothing."""
        ...

    def lookup(self, message_id: str) -> StatusRecord | None: ...

    def find(self, query: MessageQuery, status: Status) -> list[ListedMessage]:
        """Messages of ``status`` that match the rest of ``query`` (its status is
        the caller's), newest first, from an index on (status, accepted time)."""
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

    def append_events(self, events: Sequence[Event]) -> None:
        """Record status steps (their statuses are written by set_statuses_unless)."""
        ...

    def events_of(self, message_id: str) -> list[Event]:
        """A message's events, oldest first; the ACCEPTED one is written by insert."""
        ...

    def feed(self, after: int, limit: int) -> list[Event]:
        """Every message's events in the order they committed: up to ``limit`` of them
        past ``position`` ``after``. A position, once seen, is never filled later."""
        ...

    def claim_callbacks(
        self, instance: str, now: float, limit: int, lease: float, per_origin: int,
        skip_origins: Sequence[str] = (),
    ) -> list[PendingCallback]:
        """Up to ``limit`` callbacks due at ``now``, oldest due first, each its message's
        earliest undelivered event (so a message's events go out in order), claimed
        by ``instance`` until ``now + lease``: at most ``per_origin`` for one receiver
        (``origin()``), and none for those in ``skip_origins``, which have enough on
        their way."""
        ...

    def settle_callback(
        self, message_id: str, sequence: int, outcome: CallbackOutcome, attempts: int,
        retry_at: float, error: str | None,
    ) -> None:
        """Record an attempt: the event is delivered, abandoned, or due again at
        ``retry_at``; its claim ends either way."""
        ...

    def callback_backlog(self) -> tuple[int, float | None]:
        """(callbacks not yet delivered or abandoned, the time of the oldest one's event)."""
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

    def check(self) -> None:
        """Touch the store, so that a broken one raises :class:`StoreError`."""
        ...

    def close(self) -> None: ...


def first_duplicate(messages: Sequence[Message], stored: Iterable[str]) -> str:
    """The first of the messages' ids that is ``stored`` already or repeats an earlier one."""
    taken = set(stored)
    for message in messages:
        if message.id in taken:
            return message.id
        taken.add(message.id)
    return messages[0].id
