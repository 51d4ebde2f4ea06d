"""The SQLite store's messages: saving them (all or none, each with its ACCEPTED
event), reading them, their status changes, idempotency keys and retention."""

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import count

from smsproxy.callbacks import origin
from smsproxy.errors import DuplicateMessage
from smsproxy.models import Idempotency, ListedMessage, Message, MessageQuery, StatusRecord
from smsproxy.statuses import Status
from smsproxy.stores.protocol import StatusChange
from smsproxy.stores.rows import (
    LOOKUP_COLUMNS,
    MESSAGE_COLUMNS,
    PURGEABLE,
    find_statement,
    first_duplicate,
    listed_messages,
    message_from_row,
)
from smsproxy.stores.sqlite._sql import NO_STATUS, ROWS_PER_INSERT, STATUS, chunks
from smsproxy.stores.sqlite.outbox import SqliteOutbox

__all__ = ["SqliteMessages"]

_ROW = "(?, ?, ?, ?, ?, 'ACCEPTED', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
"""A message's values in the insert: all but its status."""
_PURGEABLE = ", ".join(f"'{status}'" for status in PURGEABLE)


class SqliteMessages(SqliteOutbox):
    _clock: Callable[[], float]

    def insert(self, messages: Sequence[Message]) -> None:
        """All or none, each with its ACCEPTED event: an id that exists already, or
        comes twice, raises DuplicateMessage, and this call's rows that went in before
        it (messages and events) are taken back, by the savepoint around them.
        """
        now = self._clock()
        # The messages' integer keys, given here so that their events can name them: the
        # store is the file's one writer, inside a write transaction.
        first = self._db.execute("SELECT coalesce(max(seq), 0) + 1 FROM messages").fetchone()[0]
        origins = [origin(m.callback_url) if m.callback_url else None for m in messages]
        rows = [(seq, m.id, m.phone_number, m.content, m.created_at, m.attempts, now,
                 m.callback_url, callback_origin, m.deliver_by, m.delivery_class,
                 m.valid_until, m.send_at, m.ready_at, m.send_at or 0, m.sender, m.tenant)
                for seq, m, callback_origin in zip(count(first), messages, origins)]
        try:
            with self._savepoint("insert_messages"):
                for chunk in chunks(rows, ROWS_PER_INSERT):
                    self._db.execute(
                        "INSERT INTO messages (seq, id, phone_number, content, created_at,"
                        " status, attempts, updated_at, callback_url, callback_origin,"
                        " deliver_by, delivery_class, valid_until, send_at, ready_at,"
                        " not_before, sender, tenant) VALUES "
                        + ",".join([_ROW] * len(chunk)),
                        [value for row in chunk for value in row],
                    )
                self._insert_events(
                    (seq, 1, "ACCEPTED", m.created_at, m.callback_url, callback_origin,
                     "pending" if m.callback_url else None, m.created_at)
                    for seq, m, callback_origin in zip(count(first), messages, origins))
        except sqlite3.IntegrityError:
            raise DuplicateMessage(
                first_duplicate(messages, self.statuses(m.id for m in messages))) from None

    @contextmanager
    def _savepoint(self, name: str) -> Iterator[None]:
        """Statements that stand or fall together, inside the open transaction."""
        self._db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            raise
        self._db.execute(f"RELEASE {name}")

    def lookup(self, message_id: str) -> StatusRecord | None:
        row = self._db.execute(
            f"SELECT {LOOKUP_COLUMNS} FROM messages WHERE id = ?", (message_id,)).fetchone()
        return StatusRecord(message_id, STATUS[row[0]], *row[1:]) if row else None

    def owners(self, message_ids: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(list(message_ids)):
            found.update(self._db.execute(
                f"SELECT id, provider FROM messages WHERE id IN ({','.join('?' * len(chunk))})"
                " AND provider IS NOT NULL", chunk).fetchall())
        return found

    def by_refs(self, provider: str, refs: Iterable[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(list(refs)):
            found.update(self._db.execute(
                f"SELECT provider_ref, id FROM messages WHERE provider_ref"
                f" IN ({','.join('?' * len(chunk))}) AND provider = ?",
                [*chunk, provider]).fetchall())
        return found

    def find(self, query: MessageQuery, status: Status) -> list[ListedMessage]:
        statement, values = find_statement(query, status, "messages", "?")
        return listed_messages(self._db.execute(statement, values))

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        ids = list(message_ids)
        found: dict[str, Status] = {}
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT id, status FROM messages WHERE id IN ({marks})", chunk)
            found.update((message_id, STATUS[status]) for message_id, status in rows)
        return found

    def set_statuses_unless(
        self, changes: Sequence[StatusChange], protected: frozenset[Status]
    ) -> set[str]:
        """One UPDATE per (status, reason) and chunk of ids, not one per row."""
        now = self._clock()
        by_outcome: dict[tuple[Status, str | None], list[str]] = {}
        for message_id, status, reason in changes:
            by_outcome.setdefault((status, reason), []).append(message_id)
        changed: set[str] = set()
        for (status, reason), ids in by_outcome.items():
            for chunk in chunks(ids):
                changed.update(self._set_unless(list(chunk), status, reason, now, protected))
        return changed

    def _set_unless(
        self, ids: list[str], status: Status, reason: str | None, now: float,
        protected: frozenset[Status],
    ) -> list[str]:
        """Usually every id changes, and the row count proves it. When it falls short,
        take the statement back and change exactly the ids that may change."""
        self._db.execute("SAVEPOINT set_statuses")
        if self._update(ids, status, reason, now, protected) != len(ids):
            self._db.execute("ROLLBACK TO set_statuses")
            current = self.statuses(ids)
            ids = [i for i in ids if i in current and current[i] not in protected]
            if ids:
                self._update(ids, status, reason, now, protected)
        self._db.execute("RELEASE set_statuses")
        return ids

    def _update(
        self, ids: list[str], status: Status, reason: str | None, now: float,
        protected: frozenset[Status],
    ) -> int:
        keep = sorted(s.value for s in protected)
        cursor = self._db.execute(
            f"UPDATE messages SET status = ?, reason = ?, updated_at = ?"
            f" WHERE id IN ({','.join('?' * len(ids))})"
            f" AND status NOT IN ({','.join('?' * len(keep)) or NO_STATUS})",
            [status.value, reason, now, *ids, *keep],
        )
        return cursor.rowcount

    def current(self, message_ids: Iterable[str]) -> dict[str, tuple[Status, int]]:
        ids = list(message_ids)
        found: dict[str, tuple[Status, int]] = {}
        for chunk in chunks(ids):
            rows = self._db.execute(
                f"SELECT id, status, (SELECT max(sequence) FROM events WHERE message_seq = seq)"
                f" FROM messages WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            found.update((i, (STATUS[status], sequence)) for i, status, sequence in rows)
        return found

    def accepted(self) -> list[Message]:
        rows = self._db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages"
                                f" WHERE status = 'ACCEPTED' ORDER BY created_at, seq")
        return [message_from_row(row) for row in rows]

    def find_idempotency(self, scope: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        row = self._db.execute(
            "SELECT fingerprint, message_ids FROM idempotency_keys WHERE scope = ? AND key = ?",
            (scope, key),
        ).fetchone()
        return (row[0], tuple(row[1].split(","))) if row else None

    def remember_idempotency(
        self, idempotency: Idempotency, message_ids: Sequence[str], at: float
    ) -> bool:
        cursor = self._db.execute(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, message_ids, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (idempotency.scope, idempotency.key, idempotency.fingerprint,
             ",".join(message_ids), at),
        )
        return cursor.rowcount == 1

    def forget_idempotency(self, before: float, limit: int) -> int:
        cursor = self._db.execute(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key"
            " FROM idempotency_keys WHERE created_at < ? LIMIT ?)", (before, limit))
        return cursor.rowcount

    def purge(self, before: float, limit: int) -> int:
        seqs = [row[0] for row in self._db.execute(
            f"SELECT seq FROM messages WHERE status IN ({_PURGEABLE}) AND created_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM events WHERE message_seq = messages.seq"
            " AND callback_state = 'pending') LIMIT ?", (before, limit))]
        for chunk in chunks(seqs):
            marks = ",".join("?" * len(chunk))
            self._db.execute(f"DELETE FROM events WHERE message_seq IN ({marks})", chunk)
            self._db.execute(f"DELETE FROM messages WHERE seq IN ({marks})", chunk)
        return len(seqs)
