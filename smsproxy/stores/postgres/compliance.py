"""PostgreSQL's side of compliance (:class:`smsproxy.stores.compliance.Compliance`):
one suppression list and one count per key and day for every instance on the
database; a quota's row is locked by the statement that counts against it, so two
instances never both take its last message, and a number put on the list waits for
the saves under way (see ``suppress``)."""

from collections.abc import Iterable

from smsproxy.compliance import Inbound, InboundQuery, PendingReply, Suppression
from smsproxy.models import new_id
from smsproxy.stores.outbox import CallbackOutcome
from smsproxy.stores.postgres._sql import Connected
from smsproxy.stores.postgres.schema import INBOUND_LOCK
from smsproxy.stores.rows import INBOUND_COLUMNS, inbound_from_row

__all__ = ["PostgresCompliance"]

_SUPPRESSION = "number, reason, source, at"


class PostgresCompliance(Connected):
    def suppressed(self, numbers: Iterable[str]) -> set[str]:
        return {number for (number,) in self._conn.execute(
            "SELECT number FROM smsproxy_suppressions WHERE number = ANY(%s)",
            (list(numbers),))}

    def suppress(self, entry: Suppression) -> bool:
        # Every save reads the list (and so holds a share lock on it until it commits):
        # this waits for the saves under way, so that their messages are among those
        # the STOP then fails, and a save that comes later waits and sees the number.
        self._conn.execute("LOCK TABLE smsproxy_suppressions IN ACCESS EXCLUSIVE MODE")
        row = self._conn.execute(
            f"INSERT INTO smsproxy_suppressions ({_SUPPRESSION}) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (number) DO UPDATE SET reason = excluded.reason,"
            " source = excluded.source, at = excluded.at RETURNING (xmax = 0)",
            (entry.number, entry.reason, entry.source, entry.at)).fetchone()
        return bool(row and row[0])

    def unsuppress(self, number: str) -> bool:
        return self._conn.execute("DELETE FROM smsproxy_suppressions WHERE number = %s"
                                  " RETURNING number", (number,)).fetchone() is not None

    def suppression(self, number: str) -> Suppression | None:
        row = self._conn.execute(f"SELECT {_SUPPRESSION} FROM smsproxy_suppressions"
                                 " WHERE number = %s", (number,)).fetchone()
        return Suppression(*row) if row else None

    def suppressions(self, after: str, limit: int) -> list[Suppression]:
        return [Suppression(*row) for row in self._conn.execute(
            f"SELECT {_SUPPRESSION} FROM smsproxy_suppressions"
            ' WHERE number COLLATE "C" > %s ORDER BY number COLLATE "C" LIMIT %s',
            (after, limit))]

    def unsent_to(self, number: str) -> list[str]:
        return [message_id for (message_id,) in self._conn.execute(
            "SELECT id FROM smsproxy_messages WHERE status = 'ACCEPTED' AND sent_at IS NULL"
            " AND phone_number = %s", (number,))]

    def take_quota(self, tenant: str, day: int, count: int, limit: int) -> int | None:
        if count > limit:
            return None
        row = self._conn.execute(
            "INSERT INTO smsproxy_quota_use (tenant, day, used) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant, day) DO UPDATE"
            " SET used = smsproxy_quota_use.used + excluded.used"
            " WHERE smsproxy_quota_use.used + excluded.used <= %s RETURNING used",
            (tenant, day, count, limit)).fetchone()
        return None if row is None else int(row[0])

    def quota_used(self, tenant: str, day: int) -> int:
        row = self._conn.execute("SELECT used FROM smsproxy_quota_use WHERE tenant = %s"
                                 " AND day = %s", (tenant, day)).fetchone()
        return int(row[0]) if row else 0

    def store_inbound(self, inbound: Inbound, callback_url: str | None = None,
                      at: float = 0.0) -> Inbound:
        message_id = new_id()
        # Positions in commit order, so that a reader past P never misses one placed
        # before P: one instance at a time inserts until it commits (replies are few).
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (INBOUND_LOCK,)).fetchall()
        row = self._conn.execute(
            "INSERT INTO smsproxy_inbound (id, provider, from_number, to_number, content,"
            " received_at, keyword, callback_url, callback_state, callback_due, stored_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING position",
            (message_id, inbound.provider, inbound.from_number, inbound.to_number,
             inbound.content, inbound.received_at,
             inbound.keyword.value if inbound.keyword else None, callback_url,
             "pending" if callback_url else None, at, at)).fetchone()
        assert row is not None
        return Inbound(inbound.provider, inbound.from_number, inbound.to_number,
                       inbound.content, inbound.received_at, message_id, int(row[0]),
                       inbound.keyword)

    def claim_reply_callbacks(self, instance: str, now: float, limit: int,
                              lease: float) -> list[PendingReply]:
        rows = self._conn.execute(
            f"UPDATE smsproxy_inbound SET claimed_by = %s, claim_until = %s"
            f" WHERE position IN (SELECT position FROM smsproxy_inbound"
            f" WHERE callback_state = 'pending' AND callback_due <= %s"
            f" AND (claim_until IS NULL OR claim_until < %s) ORDER BY position LIMIT %s"
            f" FOR UPDATE SKIP LOCKED)"
            f" RETURNING {INBOUND_COLUMNS}, callback_url, callback_attempts, stored_at",
            (instance, now + lease, now, now, limit)).fetchall()
        return sorted((PendingReply(inbound_from_row(row[:-3]), *row[-3:]) for row in rows),
                      key=lambda pending: pending.inbound.position)

    def settle_reply_callback(self, inbound_id: str, outcome: CallbackOutcome, attempts: int,
                              retry_at: float, error: str | None) -> None:
        self._conn.execute(
            "UPDATE smsproxy_inbound SET callback_state = %s, callback_attempts = %s,"
            " callback_due = %s, callback_error = %s, claimed_by = NULL, claim_until = NULL"
            " WHERE id = %s",
            ("pending" if outcome == "retry" else outcome, attempts, retry_at, error,
             inbound_id))

    def inbound(self, query: InboundQuery) -> list[Inbound]:
        return [inbound_from_row(row) for row in self._conn.execute(
            f"SELECT {INBOUND_COLUMNS} FROM smsproxy_inbound WHERE position > %s"
            " AND (%s::float8 IS NULL OR received_at >= %s) ORDER BY position LIMIT %s",
            (query.after, query.since, query.since, query.limit))]
