"""The SQLite store's outbox: each message's events (its history), the feed in commit
order, and the callbacks each event owes the shop."""

import sqlite3
from collections.abc import Iterable, Sequence

from smsproxy.models import CallbackState, Event, PendingCallback
from smsproxy.stores.protocol import CallbackOutcome
from smsproxy.stores.rows import event_from_row, event_row
from smsproxy.stores.sqlite._sql import ROWS_PER_INSERT, chunks

__all__ = ["OUTBOX_MIGRATION", "SqliteOutbox"]

OUTBOX_MIGRATION = """
CREATE TABLE events_by_message_seq (
    position          INTEGER PRIMARY KEY,
    message_seq       INTEGER NOT NULL,
    sequence          INTEGER NOT NULL,
    status            TEXT NOT NULL,
    previous_status   TEXT,
    reason            TEXT,
    at                REAL NOT NULL,
    event_id          TEXT,
    callback_url      TEXT,
    callback_origin   TEXT,
    callback_state    TEXT,
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_due      REAL,
    callback_error    TEXT,
    claim_until       REAL,
    UNIQUE (message_seq, sequence)
);
INSERT INTO events_by_message_seq
    SELECT e.position, m.seq, e.sequence, e.status, e.previous_status, e.reason, e.at,
        e.event_id, e.callback_url, e.callback_origin, e.callback_state,
        e.callback_attempts, e.callback_due, e.callback_error, e.claim_until
    FROM events AS e JOIN messages AS m ON m.id = e.message_id ORDER BY e.position;
DROP TABLE events;
ALTER TABLE events_by_message_seq RENAME TO events;
CREATE INDEX events_callbacks_due ON events (callback_due) WHERE callback_state = 'pending';
"""
"""Schema version 11: an event names its message by the message's integer key, not its
text id, and its own id is derived from (message id, sequence), not stored (an event
recorded before keeps the id it was given). Measured for issue 28: the text UUID and
the text key made an event row cost 2.3 times what it costs now."""

_EVENT = ("m.id, e.sequence, e.status, e.previous_status, e.reason, e.at, e.position,"
          " e.event_id")
"""An event read back, as ``event_from_row`` takes it, from ``events AS e`` joined to
its message ``m``."""
_JOINED = "events AS e JOIN messages AS m ON m.seq = e.message_seq"

_CANDIDATES = 4
"""Due callbacks looked at per one claimed, so that one receiver's cannot fill a claim."""


class SqliteOutbox:
    _db: sqlite3.Connection

    def _insert_events(self, rows: Iterable[tuple[object, ...]]) -> None:
        """Rows of (message seq, sequence, status, at, callback URL, origin, state, due),
        as one statement per few hundred: the ACCEPTED events of new messages."""
        values = list(rows)
        for chunk in chunks(values, ROWS_PER_INSERT // 2):
            self._db.execute(
                "INSERT INTO events (message_seq, sequence, status, at, callback_url,"
                " callback_origin, callback_state, callback_due) VALUES "
                + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )

    def append_events(self, events: Sequence[Event]) -> None:
        """Each event is a callback to deliver when its message has a callback URL."""
        rows = [event_row(event) for event in events]
        for chunk in chunks(rows, ROWS_PER_INSERT // 2):
            self._db.execute(
                "INSERT INTO events (message_seq, sequence, status, previous_status, reason,"
                " at, callback_url, callback_origin, callback_state, callback_due)"
                " SELECT m.seq, rows.column2, rows.column3, rows.column4, rows.column5,"
                " rows.column6, m.callback_url, m.callback_origin,"
                " CASE WHEN m.callback_url IS NOT NULL THEN 'pending' END, rows.column6"
                f" FROM (VALUES {','.join(['(?, ?, ?, ?, ?, ?)'] * len(chunk))}) AS rows"
                " JOIN messages AS m ON m.id = rows.column1",
                [value for row in chunk for value in row],
            )

    def events_of(self, message_id: str) -> list[Event]:
        rows = self._db.execute(
            f"SELECT {_EVENT} FROM {_JOINED} WHERE m.id = ? ORDER BY e.sequence", (message_id,))
        return [event_from_row(row) for row in rows]

    def feed(self, after: int, limit: int, tenant: str | None = None) -> list[Event]:
        mine = "" if tenant is None else " AND m.tenant = ?"
        rows = self._db.execute(
            f"SELECT {_EVENT} FROM {_JOINED} WHERE e.position > ?{mine}"
            f" ORDER BY e.position LIMIT ?",
            (after, limit) if tenant is None else (after, tenant, limit))
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
            f" ORDER BY callback_due) AS turn FROM (SELECT {_EVENT},"
            f" e.callback_url, e.callback_attempts, e.message_seq, e.callback_due,"
            f" e.callback_origin FROM {_JOINED} WHERE e.callback_state = 'pending'"
            f" AND e.callback_due <= ? AND (e.claim_until IS NULL OR e.claim_until < ?)"
            f" AND NOT EXISTS (SELECT 1 FROM events AS p WHERE p.message_seq = e.message_seq"
            f" AND p.sequence < e.sequence AND p.callback_state = 'pending')"
            f" AND e.callback_origin NOT IN ({skip})"
            f" ORDER BY e.callback_due LIMIT ?)) WHERE turn <= ? ORDER BY callback_due LIMIT ?",
            [now, now, *skip_origins, _CANDIDATES * limit, per_origin, limit],
        ).fetchall()
        self._db.executemany(
            "UPDATE events SET claim_until = ? WHERE message_seq = ? AND sequence = ?",
            [(now + lease, row[10], row[1]) for row in rows])
        return [PendingCallback(event_from_row(row[:8]), row[8], row[9]) for row in rows]

    def settle_callback(
        self, message_id: str, sequence: int, outcome: CallbackOutcome, attempts: int,
        retry_at: float, error: str | None,
    ) -> None:
        self._db.execute(
            "UPDATE events SET callback_state = ?, callback_attempts = ?, callback_due = ?,"
            " callback_error = ?, claim_until = NULL"
            " WHERE message_seq = (SELECT seq FROM messages WHERE id = ?) AND sequence = ?",
            ("pending" if outcome == "retry" else outcome, attempts, retry_at, error,
             message_id, sequence))

    def callbacks_of(self, message_id: str) -> list[CallbackState]:
        return [CallbackState(*row) for row in self._db.execute(
            f"SELECT e.sequence, e.callback_url, e.callback_state, e.callback_attempts,"
            f" e.callback_error FROM {_JOINED} WHERE m.id = ? AND e.callback_state IS NOT NULL"
            f" ORDER BY e.sequence", (message_id,))]

    def callback_backlog(self) -> tuple[int, float | None]:
        count, oldest = self._db.execute(
            "SELECT count(*), min(at) FROM events WHERE callback_state = 'pending'").fetchone()
        return int(count), oldest
