"""SQLite's side of compliance (:class:`smsproxy.stores.compliance.Compliance`): the
suppression list, replies, and each key's daily count."""

import json
import sqlite3
from collections.abc import Iterable

from smsproxy.compliance import Inbound, InboundQuery, PendingReply, Suppression
from smsproxy.models import new_id
from smsproxy.stores.outbox import CallbackOutcome
from smsproxy.stores.rows import INBOUND_COLUMNS, inbound_from_row

__all__ = ["COMPLIANCE_MIGRATION", "SqliteCompliance"]

COMPLIANCE_MIGRATION = """
ALTER TABLE messages ADD COLUMN tenant TEXT;
CREATE TABLE suppressions (
    number TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    at     REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE inbound (
    position    INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    provider    TEXT NOT NULL,
    from_number TEXT NOT NULL,
    to_number   TEXT NOT NULL,
    content     TEXT NOT NULL,
    received_at REAL NOT NULL,
    keyword     TEXT,
    stored_at   REAL NOT NULL,
    callback_url      TEXT,
    callback_state    TEXT,
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_due      REAL,
    callback_error    TEXT,
    claim_until       REAL
);
CREATE INDEX inbound_callbacks_due ON inbound (callback_due) WHERE callback_state = 'pending';
CREATE TABLE quota_use (
    tenant TEXT NOT NULL,
    day    INTEGER NOT NULL,
    used   INTEGER NOT NULL,
    PRIMARY KEY (tenant, day)
) WITHOUT ROWID;
"""


class SqliteCompliance:
    _db: sqlite3.Connection

    def suppressed(self, numbers: Iterable[str]) -> set[str]:
        # One statement for a bulk request's numbers, however many: no variable limit.
        return {number for (number,) in self._db.execute(
            "SELECT number FROM suppressions WHERE number IN (SELECT value FROM json_each(?))",
            (json.dumps(list(numbers)),))}

    def suppress(self, entry: Suppression) -> bool:
        new = self.suppression(entry.number) is None
        self._db.execute(
            "INSERT INTO suppressions (number, reason, source, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (number) DO UPDATE SET reason = excluded.reason,"
            " source = excluded.source, at = excluded.at",
            (entry.number, entry.reason, entry.source, entry.at))
        return new

    def unsuppress(self, number: str) -> bool:
        return self._db.execute("DELETE FROM suppressions WHERE number = ?",
                                (number,)).rowcount == 1

    def suppression(self, number: str) -> Suppression | None:
        row = self._db.execute("SELECT number, reason, source, at FROM suppressions"
                               " WHERE number = ?", (number,)).fetchone()
        return Suppression(*row) if row else None

    def suppressions(self, after: str, limit: int) -> list[Suppression]:
        return [Suppression(*row) for row in self._db.execute(
            "SELECT number, reason, source, at FROM suppressions WHERE number > ?"
            " ORDER BY number LIMIT ?", (after, limit))]

    def unsent_to(self, number: str) -> list[str]:
        return [message_id for (message_id,) in self._db.execute(
            "SELECT id FROM messages WHERE status = 'ACCEPTED' AND sent_at IS NULL"
            " AND phone_number = ?", (number,))]

    def take_quota(self, tenant: str, day: int, count: int, limit: int) -> int | None:
        if count > limit:
            return None
        row = self._db.execute(
            "INSERT INTO quota_use (tenant, day, used) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant, day) DO UPDATE SET used = used + excluded.used"
            " WHERE used + excluded.used <= ? RETURNING used",
            (tenant, day, count, limit)).fetchone()
        return None if row is None else int(row[0])

    def quota_used(self, tenant: str, day: int) -> int:
        row = self._db.execute("SELECT used FROM quota_use WHERE tenant = ? AND day = ?",
                               (tenant, day)).fetchone()
        return int(row[0]) if row else 0

    def store_inbound(self, inbound: Inbound, callback_url: str | None = None,
                      at: float = 0.0) -> Inbound:
        message_id = new_id()
        keyword = inbound.keyword.value if inbound.keyword else None
        (position,) = self._db.execute(
            "INSERT INTO inbound (id, provider, from_number, to_number, content, received_at,"
            " keyword, callback_url, callback_state, callback_due, stored_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING position",
            (message_id, inbound.provider, inbound.from_number, inbound.to_number,
             inbound.content, inbound.received_at, keyword, callback_url,
             "pending" if callback_url else None, at, at)).fetchone()
        return Inbound(inbound.provider, inbound.from_number, inbound.to_number,
                       inbound.content, inbound.received_at, message_id, position,
                       inbound.keyword)

    def claim_reply_callbacks(self, instance: str, now: float, limit: int,
                              lease: float) -> list[PendingReply]:
        rows = self._db.execute(
            f"UPDATE inbound SET claim_until = ? WHERE position IN (SELECT position"
            f" FROM inbound WHERE callback_state = 'pending' AND callback_due <= ?"
            f" AND (claim_until IS NULL OR claim_until < ?) ORDER BY position LIMIT ?)"
            f" RETURNING {INBOUND_COLUMNS}, callback_url, callback_attempts, stored_at",
            (now + lease, now, now, limit)).fetchall()
        return sorted((PendingReply(inbound_from_row(row[:-3]), *row[-3:]) for row in rows),
                      key=lambda pending: pending.inbound.position)

    def settle_reply_callback(self, inbound_id: str, outcome: CallbackOutcome, attempts: int,
                              retry_at: float, error: str | None) -> None:
        self._db.execute(
            "UPDATE inbound SET callback_state = ?, callback_attempts = ?, callback_due = ?,"
            " callback_error = ?, claim_until = NULL WHERE id = ?",
            ("pending" if outcome == "retry" else outcome, attempts, retry_at, error,
             inbound_id))

    def inbound(self, query: InboundQuery) -> list[Inbound]:
        since = "" if query.since is None else " AND received_at >= ?"
        values = [query.after] + ([] if query.since is None else [query.since])
        return [inbound_from_row(row) for row in self._db.execute(
            f"SELECT {INBOUND_COLUMNS} FROM inbound WHERE position > ?{since}"
            f" ORDER BY position LIMIT ?", [*values, query.limit])]
