"""PostgreSQL's side of the queue (:class:`smsproxy.stores.queue.Queue`), in its
dialect: several instances claim from one table, so a claim takes an advisory lock
(one instance claims at a time) and locks its rows; every time is the server's
clock (``NOW``), unless a test gives its own."""

from collections.abc import Mapping, Sequence

from smsproxy.stores.postgres._sql import NOW, Connected
from smsproxy.stores.postgres.schema import CLAIM_LOCK
from smsproxy.stores.queue import Backlog, Claimed, ClaimRules, Lapsed, Renewal
from smsproxy.stores.rows import MESSAGE_COLUMNS, by_provider, message_from_row

__all__ = ["CLAIM", "PostgresQueue"]

CLAIM_RETRY = 0.05
"""Seconds before looking again when another instance is claiming right now."""

_UNSENT = "status = 'ACCEPTED' AND sent_at IS NULL"


def _unclaimed_due(now: str) -> str:
    """Messages any instance may claim at ``now`` (an SQL expression)."""
    return (f"{_UNSENT} AND not_before <= {now}"
            f" AND (claim_until IS NULL OR claim_until < {now})"
            f" AND (valid_until IS NULL OR valid_until > {now})")


CLAIM = f"""
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(%(lock)s) AS locked, {NOW} AS now
), plain AS (
    -- The earliest deadlines: of those without one of their own (--max-delay after
    -- they were ready, so oldest first) and of those with one, each from its index.
    SELECT m.id, m.claimed_by, m.ready_at + %(max_delay)s AS leave_by
    FROM smsproxy_messages AS m, lock
    WHERE lock.locked AND {_unclaimed_due("lock.now")} AND m.deliver_by IS NULL
    AND m.ready_at > lock.now - %(ttl)s
    ORDER BY m.ready_at LIMIT %(limit)s FOR UPDATE OF m SKIP LOCKED
), urgent AS (
    SELECT m.id, m.claimed_by, m.deliver_by - %(lead)s AS leave_by
    FROM smsproxy_messages AS m, lock
    WHERE lock.locked AND {_unclaimed_due("lock.now")} AND m.deliver_by IS NOT NULL
    AND m.ready_at > lock.now - %(ttl)s
    ORDER BY m.deliver_by LIMIT %(limit)s FOR UPDATE OF m SKIP LOCKED
), due AS (
    SELECT * FROM plain UNION ALL SELECT * FROM urgent ORDER BY leave_by, id LIMIT %(limit)s
)
SELECT lock.locked, lock.now, due.id, due.claimed_by, due.leave_by
FROM lock LEFT JOIN due ON true ORDER BY due.leave_by, due.id
"""
"""The claim's candidates, earliest deadline first, locked: one row each, or one
row of nulls after the lock's figures when none waits (or another instance is
claiming). :meth:`ClaimRules.taken` says how many of them the claim takes."""

_TAKE = f"""
UPDATE smsproxy_messages SET claimed_by = %(me)s, claim_until = %(now)s + %(lease)s
WHERE id = ANY(%(ids)s) RETURNING {MESSAGE_COLUMNS}
"""


class PostgresQueue(Connected):
    def claim(self, instance: str, rules: ClaimRules) -> Claimed:
        """One instance claims at a time (a transaction-level advisory lock): two
        claiming at the due moment would split one batch in two, since rows saved
        after the first one's snapshot are not locked by it."""
        rows = self._conn.execute(CLAIM, self._at(
            lock=CLAIM_LOCK, limit=rules.limit, max_delay=rules.max_delay, ttl=rules.ttl,
            lead=rules.lead,
        )).fetchall()
        locked, now = rows[0][:2]
        if not locked:
            return Claimed((), next_due=now + CLAIM_RETRY)
        due = [row[2:] for row in rows if row[2] is not None]
        if not due:
            return Claimed(())
        taken = rules.taken([leave_by for _, _, leave_by in due], now)
        if not taken:
            return Claimed((), next_due=due[0][2], waiting=len(due))
        order = {message_id: i for i, (message_id, _, _) in enumerate(due[:taken])}
        messages = sorted(
            (message_from_row(row) for row in self._conn.execute(_TAKE, {
                "me": instance, "now": now, "lease": rules.lease, "ids": list(order)})),
            key=lambda message: order[message.id])
        taken_over = sum(1 for _, previous, _ in due[:taken] if previous not in (None, instance))
        return Claimed(tuple(messages), taken_over=taken_over)

    def renew(self, instance: str, message_ids: Sequence[str], lease: float) -> Renewal:
        rows = self._conn.execute(
            f"WITH asked AS (SELECT id, claimed_by = %(me)s AND claim_until >= {NOW} AS mine"
            f" FROM smsproxy_messages WHERE id = ANY(%(ids)s) AND status = 'ACCEPTED'"
            f" AND sent_at IS NULL FOR UPDATE),"
            f" renewed AS (UPDATE smsproxy_messages AS m SET claim_until = {NOW} + %(lease)s"
            f" FROM asked WHERE m.id = asked.id AND asked.mine RETURNING m.id)"
            f" SELECT id, mine FROM asked",
            self._at(lease=lease, ids=list(message_ids), me=instance),
        ).fetchall()
        return Renewal(frozenset(i for i, mine in rows if mine),
                       frozenset(i for i, mine in rows if not mine))

    def mark_sent(
        self, instance: str, message_ids: Sequence[str], attempts: int,
        providers: Mapping[str, str], refs: Mapping[str, str],
    ) -> None:
        for provider, ids in by_provider(message_ids, providers).items():
            self._conn.execute(
                f"UPDATE smsproxy_messages SET sent_at = {NOW}, claimed_by = NULL,"
                f" claim_until = NULL, attempts = attempts + %(attempts)s,"
                f" provider = %(provider)s WHERE id = ANY(%(ids)s) AND claimed_by = %(me)s",
                self._at(ids=ids, me=instance, attempts=attempts, provider=provider),
            )
        if refs:  # Sinch's: a join only where a provider's reports name its own ids
            self._conn.execute(
                "UPDATE smsproxy_messages AS m SET provider_ref = r.ref"
                " FROM unnest(%s::text[], %s::text[]) AS r (id, ref) WHERE m.id = r.id",
                (list(refs), list(refs.values())))

    def park(
        self, instance: str, message_ids: Sequence[str], attempts: int, error: str,
        maybe_taken: bool, requeue_initial: float, requeue_max: float,
        pinned: Mapping[str, str],
    ) -> None:
        for provider, ids in by_provider(message_ids, pinned).items():
            self._conn.execute(
                f"UPDATE smsproxy_messages SET claimed_by = NULL, claim_until = NULL,"
                f" not_before = {NOW} + least(%(max)s, %(initial)s"
                f" * power(2, least(rounds, 30))), rounds = rounds + 1,"
                f" attempts = attempts + %(attempts)s, maybe_taken = maybe_taken OR %(maybe)s,"
                f" last_error = %(error)s, provider = coalesce(%(provider)s, provider)"
                f" WHERE id = ANY(%(ids)s) AND claimed_by = %(me)s",
                self._at(max=requeue_max, initial=requeue_initial, attempts=attempts,
                         maybe=maybe_taken, error=error, ids=ids, me=instance,
                         provider=provider),
            )

    def lapsed(self, ttl: float, grace: float, limit: int) -> list[Lapsed]:
        rows = self._conn.execute(
            f"WITH late AS (SELECT id FROM smsproxy_messages WHERE {_UNSENT}"
            f" AND ready_at <= {NOW} - %(ttl)s UNION SELECT id FROM smsproxy_messages"
            f" WHERE {_UNSENT} AND valid_until IS NOT NULL AND valid_until <= {NOW})"
            f" SELECT m.id, m.maybe_taken, coalesce(m.valid_until <= m.ready_at + %(ttl)s,"
            f" false), m.last_error FROM smsproxy_messages AS m JOIN late USING (id)"
            f" WHERE {_UNSENT} AND (m.claim_until IS NULL OR m.claim_until < {NOW})"
            f" AND least(m.ready_at + %(ttl)s, coalesce(m.valid_until, 'infinity'))"
            f" + CASE WHEN m.maybe_taken THEN %(grace)s ELSE 0 END <= {NOW}"
            f" ORDER BY m.created_at LIMIT %(limit)s FOR UPDATE OF m SKIP LOCKED",
            self._at(ttl=ttl, grace=grace, limit=limit),
        )
        return [Lapsed(i, maybe, by_validity, error) for i, maybe, by_validity, error in rows]

    def backlog(self) -> Backlog:
        row = self._conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {_unclaimed_due(NOW)})"
            f" FROM smsproxy_messages WHERE {_UNSENT}"
            f" AND (send_at IS NULL OR send_at <= {NOW})",
            self._at(),
        ).fetchone()
        assert row is not None
        return Backlog(int(row[0]), int(row[1]))

    def release(self, instance: str) -> int:
        row = self._conn.execute(
            "WITH released AS (UPDATE smsproxy_messages SET claimed_by = NULL,"
            " claim_until = NULL, maybe_taken = true WHERE claimed_by = %s RETURNING 1)"
            " SELECT count(*) FROM released", (instance,),
        ).fetchone()
        return int(row[0]) if row else 0
