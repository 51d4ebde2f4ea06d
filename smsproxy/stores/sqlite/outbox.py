"""The SQLite store's outbox: each message's events (its history), the feed in commit
order, and the callbacks each event owes the shop."""

import sqlite3
from collections.abc import Iterable, Sequence

from smsproxy.models import Event, PendingCallback
from smsproxy.stores.protocol import CallbackOutcome
from smsproxy.stores.rows import EVENT_COLUMNS, event_from_row, event_row, prefixed
from smsproxy.stores.sqlite._sql import ROWS_PER_INSERT, chunks

__all__ = ["SqliteOutbox"]

_CANDIDATES = 4
"""Due callbacks looked at per one claimed, so that one receiver's cannot fill a claim."""


class SqliteOutbox:
    _db: sqlite3.Connection

    def _insert_events(self, rows: Iterable[tuple[object, ...]]) -> None:
        """Rows of ``EVENT_COLUMNS`` and the callback's URL, origin, state and due time,
        as one statement per few hundred."""
        values = list(rows)
        for chunk in chunks(values, ROWS_PER_INSERT // 2):
            self._db.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}, callback_url, callback_origin,"
                f" callback_state, callback_due) VALUES "
                + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )

    def append_events(self, events: Sequence[Event]) -> None:
        """Each event is a callback to deliver when its message has a callback URL."""
        rows = [event_row(event) for event in events]
        for chunk in chunks(rows, ROWS_PER_INSERT // 2):
            self._db.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}, callback_url, callback_origin,"
                f" callback_state, callback_due) SELECT rows.*, m.callback_url,"
                f" m.callback_origin, CASE WHEN m.callback_url IS NOT NULL THEN 'pending' END,"
                f" rows.column7"
                f" FROM (VALUES {','.join(['(?, ?, ?, ?, ?, ?, ?)'] * len(chunk))}) AS rows"
                f" JOIN messages AS m ON m.id = rows.column2",
                [value for row in chunk for value in row],
            )

    def events_of(self, message_id: str) -> list[Event]:
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS}, position FROM events WHERE message_id = ?"
            f" ORDER BY sequence", (message_id,))
        return [event_from_row(row) for row in rows]

    def feed(self, after: int, limit: int) -> list[Event]:
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS}, position FROM events WHERE position > ?"
            f" ORDER BY position LIMIT ?", (after, limit))
        return [event_from_row(row) for row in rows]

    def claim_callbacks(
        self, instance: str, now: float, limit: int, lease: float, per_origin: int,
        skip_origins: Sequence[str] = (),
    ) -> list[PendingCallback]:
        skip = ",".join("?" * len(skip_origins))
        rows = self._db.execute(
            # The candidates first (a LIMIT on the due index), then their turns per
            # receiver: a window over every pending event would sort the whole backlog.
            f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY callback_origin"
            f" ORDER BY callback_due) AS turn FROM (SELECT {prefixed('e', EVENT_COLUMNS)},"
            f" e.position, e.callback_url, e.callback_attempts, e.callback_due,"
            f" e.callback_origin FROM events AS e WHERE e.callback_state = 'pending'"
            f" AND e.callback_due <= ? AND (e.claim_until IS NULL OR e.claim_until < ?)"
            f" AND NOT EXISTS (SELECT 1 FROM events AS p WHERE p.message_id = e.message_id"
            f" AND p.sequence < e.sequence AND p.callback_state = 'pending')"
            f" AND e.callback_origin NOT IN ({skip})"
            f" ORDER BY e.callback_due LIMIT ?)) WHERE turn <= ? ORDER BY callback_due LIMIT ?",
            [now, now, *skip_origins, _CANDIDATES * limit, per_origin, limit],
        ).fetchall()
        self._db.executemany(
            "UPDATE events SET claim_until = ? WHERE message_id = ? AND sequence = ?",
            [(now + lease, row[1], row[2]) for row in rows])
        return [PendingCallback(event_from_row(row[:8]), row[8], row[9]) for row in rows]

    def settle_callback(
        self, message_id: str, sequence: int, outcome: CallbackOutcome, attempts: int,
        retry_at: float, error: str | None,
    ) -> None:
        self._db.execute(
            "UPDATE events SET callback_state = ?, callback_attempts = ?, callback_due = ?,"
            " callback_error = ?, claim_until = NULL WHERE message_id = ? AND sequence = ?",
            ("pending" if outcome == "retry" else outcome, attempts, retry_at, error,
             message_id, sequence))

    def callback_backlog(self) -> tuple[int, float | None]:
        count, oldest = self._db.execute(
            "SELECT count(*), min(at) FROM events WHERE callback_state = 'pending'").fetchone()
        return int(count), oldest
