"""What the SQL stores share: their rows' columns, and how rows become the domain's
values (messages, events, listings) and back."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from smsproxy.compliance import Inbound, Keyword
from smsproxy.models import Event, ListedMessage, Message, MessageQuery
from smsproxy.statuses import Status

__all__ = [
    "EVENT_COLUMNS",
    "INBOUND_COLUMNS",
    "LOOKUP_COLUMNS",
    "MESSAGE_COLUMNS",
    "PURGEABLE",
    "READ_EVENT_COLUMNS",
    "by_provider",
    "event_from_row",
    "event_row",
    "find_statement",
    "first_duplicate",
    "inbound_from_row",
    "listed_messages",
    "message_from_row",
    "prefixed",
]

PURGEABLE = ("CONFIRMED", "DELIVERED", "FAILED")
"""Statuses of messages that retention deletes: the provider took them, or they failed.
(A CONFIRMED message older than the retention window will hear no more news.)"""

MESSAGE_COLUMNS = ("id, phone_number, content, created_at, attempts, deliver_by,"
                   " delivery_class, valid_until, send_at, sender, provider, tenant")
"""A message's columns in the SQL stores, for ``message_from_row`` (its callback URL
lives with its events)."""


def message_from_row(row: Sequence[Any]) -> Message:
    """A message from its ``MESSAGE_COLUMNS``."""
    (i, number, content, at, attempts, deliver_by, kind, valid_until, send_at, sender, by,
     tenant) = row
    return Message(i, number, content, at, attempts, None, deliver_by, kind, valid_until,
                   send_at, sender, by, tenant)


LOOKUP_COLUMNS = ("status, reason, deliver_by, valid_until, send_at, sender,"
                  " CASE WHEN sent_at IS NOT NULL THEN provider END, phone_number, tenant")
"""What ``lookup`` reads, in :class:`StatusRecord`'s order after the id: the provider
once it took the message (before, a provider kept in the row may only have it)."""

EVENT_COLUMNS = "message_id, sequence, status, previous_status, reason, at"
"""An event's columns in the SQL stores, in :class:`Event`'s order."""

READ_EVENT_COLUMNS = f"{EVENT_COLUMNS}, position, event_id"
"""What a read of an event takes: its place in the feed, and the id it was given if it
was recorded before ids were derived (NULL for later events)."""


def event_from_row(row: Sequence[Any]) -> Event:
    """An event from its ``READ_EVENT_COLUMNS``."""
    message_id, sequence, status, previous, reason, at, position, stored_id = row
    return Event(message_id, sequence, Status(status),
                 Status(previous) if previous else None, reason, at, position, stored_id)


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
    if query.tenant is not None:
        conditions += f" AND tenant = {placeholder}"
        values.append(query.tenant)
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
    return (event.message_id, event.sequence, event.status.value,
            event.previous_status.value if event.previous_status else None,
            event.reason, event.at)


def first_duplicate(messages: Sequence[Message], stored: Iterable[str]) -> str:
    """The first of the messages' ids that is ``stored`` already or repeats an earlier one."""
    taken = set(stored)
    for message in messages:
        if message.id in taken:
            return message.id
        taken.add(message.id)
    return messages[0].id


def by_provider(
    message_ids: Sequence[str], providers: Mapping[str, str]
) -> dict[str | None, list[str]]:
    """The ids grouped by their provider (None for those ``providers`` does not name),
    so that a store writes each provider's in one statement per chunk."""
    groups: dict[str | None, list[str]] = {}
    for message_id in message_ids:
        groups.setdefault(providers.get(message_id), []).append(message_id)
    return groups


INBOUND_COLUMNS = "provider, from_number, to_number, content, received_at, id, position, keyword"
"""A reply's columns in the SQL stores, in :class:`Inbound`'s order."""


def inbound_from_row(row: Sequence[Any]) -> Inbound:
    """A reply from its ``INBOUND_COLUMNS``."""
    provider, sender, recipient, content, received_at, inbound_id, position, keyword = row
    return Inbound(provider, sender, recipient, content, received_at, inbound_id, position,
                   Keyword(keyword) if keyword else None)
