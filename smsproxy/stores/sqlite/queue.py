"""SQLite's side of the queue (:class:`smsproxy.stores.queue.Queue`), in its dialect.

One process holds the file (see :mod:`.schema`) and every transaction takes the
write lock at its start (``BEGIN IMMEDIATE``), so a claim needs no lock of its own:
nobody else can claim the same rows meanwhile. The claims a dead process left are
voided when the file is opened again.
"""

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from smsproxy.stores.queue import Backlog, Claimed, ClaimRules, Lapsed, Renewal
from smsproxy.stores.rows import MESSAGE_COLUMNS, by_provider, message_from_row
from smsproxy.stores.sqlite._sql import chunks

__all__ = ["PROVIDERS_MIGRATION", "QUEUE_MIGRATION", "SqliteQueue"]

QUEUE_MIGRATION = """
ALTER TABLE messages ADD COLUMN ready_at REAL;
ALTER TABLE messages ADD COLUMN not_before REAL NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN claimed_by TEXT;
ALTER TABLE messages ADD COLUMN claim_until REAL;
ALTER TABLE messages ADD COLUMN rounds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN maybe_taken INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN last_error TEXT;
ALTER TABLE messages ADD COLUMN sent_at REAL;
UPDATE messages SET ready_at = coalesce(send_at, created_at), not_before = coalesce(send_at, 0),
    maybe_taken = attempts > 0;
DROP INDEX messages_scheduled;
ALTER TABLE messages DROP COLUMN scheduled;
DROP INDEX messages_waiting;
CREATE INDEX messages_unsent ON messages (ready_at) WHERE status = 'ACCEPTED' AND sent_at IS NULL;
CREATE INDEX messages_unsent_by_deadline ON messages (deliver_by)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL AND deliver_by IS NOT NULL;
CREATE INDEX messages_unsent_by_validity ON messages (valid_until)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL AND valid_until IS NOT NULL;
"""
"""Schema version 10: the table is the queue (before it, a batcher kept it in memory).
A message an older release had tried counts as one an attempt may have reached."""

PROVIDERS_MIGRATION = """
ALTER TABLE messages ADD COLUMN sender TEXT;
ALTER TABLE messages ADD COLUMN provider TEXT;
ALTER TABLE messages ADD COLUMN provider_ref TEXT;
CREATE INDEX messages_by_ref ON messages (provider_ref) WHERE provider_ref IS NOT NULL;
"""
"""Schema version 12: a message's sender, the provider that took it (or may have it,
after an unknown outcome) and that provider's own id for it (its reports name it so)."""

_UNSENT = "status = 'ACCEPTED' AND sent_at IS NULL"
_CLAIMABLE = (f"{_UNSENT} AND not_before <= :now AND (claim_until IS NULL OR claim_until < :now)"
              " AND (valid_until IS NULL OR valid_until > :now)")

_CLAIM = f"""
SELECT * FROM (
    SELECT seq, id, claimed_by, ready_at + :max_delay AS leave_by
    FROM messages INDEXED BY messages_unsent
    WHERE {_CLAIMABLE} AND deliver_by IS NULL AND ready_at > :now - :ttl
    ORDER BY ready_at LIMIT :limit)
UNION ALL SELECT * FROM (
    SELECT seq, id, claimed_by, deliver_by - :lead AS leave_by
    FROM messages INDEXED BY messages_unsent_by_deadline
    WHERE {_CLAIMABLE} AND deliver_by IS NOT NULL AND ready_at > :now - :ttl
    ORDER BY deliver_by LIMIT :limit)
ORDER BY leave_by, id LIMIT :limit
"""
"""The earliest deadlines: of the messages without one of their own (``max_delay``
after they were ready, so oldest first) and of those with one, each read in its own
index's order, the index named (without statistics the planner took the status index
and sorted the whole backlog at every claim; a tie-break in the inner ORDER BY would
too); the few candidates then by deadline and id, as on PostgreSQL."""

_LAPSED = f"""
SELECT id, maybe_taken, valid_until IS NOT NULL AND valid_until <= ready_at + :ttl, last_error
FROM messages WHERE seq IN (
    SELECT seq FROM messages INDEXED BY messages_unsent
    WHERE {_UNSENT} AND ready_at <= :now - :ttl
    UNION SELECT seq FROM messages INDEXED BY messages_unsent_by_validity
    WHERE {_UNSENT} AND valid_until IS NOT NULL AND valid_until <= :now)
AND (claim_until IS NULL OR claim_until < :now)
AND min(ready_at + :ttl, coalesce(valid_until, ready_at + :ttl))
    + CASE WHEN maybe_taken THEN :grace ELSE 0 END <= :now
ORDER BY seq LIMIT :limit
"""


class SqliteQueue:
    _db: sqlite3.Connection
    _clock: Callable[[], float]

    def void_claims(self) -> None:
        """At open: a claim left in the file is a dead process's, and its batch may
        have been on its way to the provider."""
        self._db.execute("UPDATE messages SET claimed_by = NULL, claim_until = NULL,"
                         " maybe_taken = 1 WHERE claimed_by IS NOT NULL")

    def claim(self, instance: str, rules: ClaimRules) -> Claimed:
        now = self._clock()
        due = self._db.execute(_CLAIM, {
            "now": now, "max_delay": rules.max_delay, "ttl": rules.ttl, "lead": rules.lead,
            "limit": rules.limit}).fetchall()
        if not due:
            return Claimed(())
        taken = rules.taken([leave_by for _, _, _, leave_by in due], now)
        if not taken:
            return Claimed((), next_due=due[0][3], waiting=len(due))
        due = due[:taken]
        order = {seq: i for i, (seq, _, _, _) in enumerate(due)}
        rows: list[tuple[Any, ...]] = []
        for chunk in chunks(list(order)):
            rows += self._db.execute(
                f"UPDATE messages SET claimed_by = ?, claim_until = ?"
                f" WHERE seq IN ({','.join('?' * len(chunk))}) RETURNING seq, {MESSAGE_COLUMNS}",
                [instance, now + rules.lease, *chunk]).fetchall()
        rows.sort(key=lambda row: order[row[0]])
        taken_over = sum(1 for _, _, previous, _ in due if previous not in (None, instance))
        return Claimed(tuple(message_from_row(row[1:]) for row in rows), taken_over=taken_over)

    def renew(self, instance: str, message_ids: Sequence[str], lease: float) -> Renewal:
        now = self._clock()
        held: set[str] = set()
        lost: set[str] = set()
        for chunk in chunks(message_ids):
            marks = ",".join("?" * len(chunk))
            held.update(row[0] for row in self._db.execute(
                f"UPDATE messages SET claim_until = ? WHERE id IN ({marks})"
                f" AND claimed_by = ? AND claim_until >= ? AND {_UNSENT} RETURNING id",
                [now + lease, *chunk, instance, now]))
            lost.update(row[0] for row in self._db.execute(
                f"SELECT id FROM messages WHERE id IN ({marks}) AND {_UNSENT}"
                f" AND NOT (claimed_by IS ? AND claim_until >= ?)", [*chunk, instance, now]))
        return Renewal(frozenset(held), frozenset(lost - held))

    def mark_sent(
        self, instance: str, message_ids: Sequence[str], attempts: int,
        providers: Mapping[str, str], refs: Mapping[str, str],
    ) -> None:
        now = self._clock()
        for provider, ids in by_provider(message_ids, providers).items():
            for chunk in chunks(ids):
                self._db.execute(
                    f"UPDATE messages SET sent_at = ?, claimed_by = NULL, claim_until = NULL,"
                    f" attempts = attempts + ?, provider = ?"
                    f" WHERE id IN ({','.join('?' * len(chunk))}) AND claimed_by = ?",
                    [now, attempts, provider, *chunk, instance])
        self._db.executemany("UPDATE messages SET provider_ref = ? WHERE id = ?",
                             [(ref, message_id) for message_id, ref in refs.items()])

    def park(
        self, instance: str, message_ids: Sequence[str], attempts: int, error: str,
        maybe_taken: bool, requeue_initial: float, requeue_max: float,
        pinned: Mapping[str, str],
    ) -> None:
        now = self._clock()
        for provider, ids in by_provider(message_ids, pinned).items():
            for chunk in chunks(ids):
                self._db.execute(
                    f"UPDATE messages SET claimed_by = NULL, claim_until = NULL,"
                    f" not_before = ? + min(?, ? * (1 << min(rounds, 30))), rounds = rounds + 1,"
                    f" attempts = attempts + ?, maybe_taken = maybe_taken OR ?, last_error = ?,"
                    f" provider = coalesce(?, provider)"
                    f" WHERE id IN ({','.join('?' * len(chunk))}) AND claimed_by = ?",
                    [now, requeue_max, requeue_initial, attempts, maybe_taken, error, provider,
                     *chunk, instance])

    def lapsed(self, ttl: float, grace: float, limit: int) -> list[Lapsed]:
        rows = self._db.execute(_LAPSED, {"now": self._clock(), "ttl": ttl, "grace": grace,
                                          "limit": limit})
        return [Lapsed(i, bool(maybe), bool(by_validity), error)
                for i, maybe, by_validity, error in rows]

    def backlog(self) -> Backlog:
        now = self._clock()
        unsent, claimable = self._db.execute(
            f"SELECT count(*), coalesce(sum(not_before <= :now AND (claim_until IS NULL"
            f" OR claim_until < :now) AND (valid_until IS NULL OR valid_until > :now)), 0)"
            f" FROM messages INDEXED BY messages_unsent"
            f" WHERE {_UNSENT} AND (send_at IS NULL OR send_at <= :now)",
            {"now": now}).fetchone()
        return Backlog(int(unsent), int(claimable))

    def release(self, instance: str) -> int:
        cursor = self._db.execute(
            "UPDATE messages SET claimed_by = NULL, claim_until = NULL, maybe_taken = 1"
            " WHERE claimed_by = ?", (instance,))
        return cursor.rowcount
