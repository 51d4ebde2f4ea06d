"""The PostgreSQL store's outbox: each message's events (its history), the feed in
commit order (positions given under a lock, so that a position once read is never
filled later), and the callbacks each event owes the shop."""

from collections.abc import Sequence

from smsproxy.models import CallbackState, Event, PendingCallback
from smsproxy.stores.postgres._sql import Connected
from smsproxy.stores.postgres.schema import FEED_LOCK
from smsproxy.stores.protocol import CallbackOutcome
from smsproxy.stores.rows import (
    EVENT_COLUMNS,
    READ_EVENT_COLUMNS,
    event_from_row,
    event_row,
    prefixed,
)

__all__ = ["CLAIM_CALLBACKS", "PostgresOutbox"]

_CANDIDATES = 4
"""Due callbacks looked at per one claimed, so that one receiver's cannot fill a claim."""
PLACE_AT_ONCE = 10_000
"""Events given feed positions per feed() call, at most."""


CLAIM_CALLBACKS = f"""
WITH candidates AS (
    SELECT e.id, e.callback_origin, e.callback_due FROM smsproxy_events AS e
    WHERE e.callback_state = 'pending' AND e.callback_due <= %(now)s
    AND (e.claim_until IS NULL OR e.claim_until < %(now)s)
    -- Its message's earliest pending event: a subquery run per candidate on the
    -- (message id, sequence) index, whatever the statistics. Without any, the planner
    -- made NOT EXISTS a join against every pending event, and took the pending
    -- callbacks' index for a subquery that names their state as is: coalesce() keeps
    -- that index out of it.
    AND e.sequence = (SELECT min(p.sequence) FROM smsproxy_events AS p
        WHERE p.message_id = e.message_id AND coalesce(p.callback_state, '') = 'pending')
    AND NOT (e.callback_origin = ANY(%(skip)s))
    ORDER BY e.callback_due LIMIT %(candidates)s FOR UPDATE OF e SKIP LOCKED
), due AS (
    SELECT id FROM (SELECT id, callback_due, row_number() OVER (PARTITION BY callback_origin
        ORDER BY callback_due) AS turn FROM candidates) AS ranked
    WHERE turn <= %(per_origin)s ORDER BY callback_due LIMIT %(limit)s
)
UPDATE smsproxy_events AS e SET claimed_by = %(me)s, claim_until = %(now)s + %(lease)s
FROM due WHERE e.id = due.id
RETURNING {prefixed('e', READ_EVENT_COLUMNS)}, e.callback_url, e.callback_attempts
"""
"""Due callbacks, oldest due first, each its message's earliest pending event, at most
``per_origin`` per receiver, claimed."""


class PostgresOutbox(Connected):
    def append_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        columns = list(zip(*(event_row(event) for event in events), strict=True))
        self._conn.execute(
            f"INSERT INTO smsproxy_events ({EVENT_COLUMNS}, callback_url, callback_origin,"
            f" callback_state, callback_due) SELECT rows.*, m.callback_url,"
            f" m.callback_origin, CASE WHEN m.callback_url IS NOT NULL THEN 'pending' END,"
            f" rows.at FROM unnest(%s::text[],"
            f" %s::int[], %s::text[], %s::text[], %s::text[], %s::float8[])"
            f" AS rows ({EVENT_COLUMNS}) JOIN smsproxy_messages AS m ON m.id = rows.message_id",
            [list(column) for column in columns])

    def events_of(self, message_id: str) -> list[Event]:
        rows = self._conn.execute(
            f"SELECT {READ_EVENT_COLUMNS} FROM smsproxy_events WHERE message_id = %s"
            f" ORDER BY sequence", (message_id,))
        return [event_from_row(row) for row in rows]

    def feed(self, after: int, limit: int, tenant: str | None = None) -> list[Event]:
        """Positions go to committed events only, by one instance at a time (a
        transaction-level lock), in id order: an event that commits later gets a later
        position, so a reader past position P never misses one placed before P."""
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (FEED_LOCK,)).fetchall()
        self._conn.execute(
            "WITH unplaced AS (SELECT id, row_number() OVER (ORDER BY id) AS n"
            " FROM (SELECT id FROM smsproxy_events WHERE position IS NULL ORDER BY id"
            " LIMIT %s) AS oldest),"
            " placed AS (SELECT coalesce(max(position), 0) AS last FROM smsproxy_events)"
            " UPDATE smsproxy_events AS e SET position = placed.last + unplaced.n"
            " FROM unplaced, placed WHERE e.id = unplaced.id", (PLACE_AT_ONCE,))
        if tenant is None:
            rows = self._conn.execute(
                f"SELECT {READ_EVENT_COLUMNS} FROM smsproxy_events WHERE position > %s"
                f" ORDER BY position LIMIT %s", (after, limit))
        else:
            rows = self._conn.execute(
                f"SELECT {prefixed('e', READ_EVENT_COLUMNS)} FROM smsproxy_events AS e"
                f" JOIN smsproxy_messages AS m ON m.id = e.message_id WHERE e.position > %s"
                f" AND m.tenant = %s ORDER BY e.position LIMIT %s", (after, tenant, limit))
        return [event_from_row(row) for row in rows]

    def claim_callbacks(
        self, instance: str, now: float, limit: int, lease: float, per_origin: int,
        skip_origins: Sequence[str] = (),
    ) -> list[PendingCallback]:
        rows = self._conn.execute(
            CLAIM_CALLBACKS,
            {"now": now, "limit": limit, "me": instance, "lease": lease,
             "skip": list(skip_origins), "candidates": _CANDIDATES * limit,
             "per_origin": per_origin},
        ).fetchall()
        return [PendingCallback(event_from_row(row[:8]), row[8], row[9]) for row in rows]

    def settle_callback(
        self, message_id: str, sequence: int, outcome: CallbackOutcome, attempts: int,
        retry_at: float, error: str | None,
    ) -> None:
        self._conn.execute(
            "UPDATE smsproxy_events SET callback_state = %s, callback_attempts = %s,"
            " callback_due = %s, callback_error = %s, claimed_by = NULL, claim_until = NULL"
            " WHERE message_id = %s AND sequence = %s",
            ("pending" if outcome == "retry" else outcome, attempts, retry_at, error,
             message_id, sequence))

    def callbacks_of(self, message_id: str) -> list[CallbackState]:
        return [CallbackState(*row) for row in self._conn.execute(
            "SELECT sequence, callback_url, callback_state, callback_attempts, callback_error"
            " FROM smsproxy_events WHERE message_id = %s AND callback_state IS NOT NULL"
            " ORDER BY sequence", (message_id,))]

    def callback_backlog(self) -> tuple[int, float | None]:
        row = self._conn.execute(
            "SELECT count(*), min(at) FROM smsproxy_events WHERE callback_state = 'pending'"
        ).fetchone()
        assert row is not None
        return int(row[0]), row[1]
