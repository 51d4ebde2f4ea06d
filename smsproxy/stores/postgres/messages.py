"""The PostgreSQL store's messages: saving them (all or none, each with its
ACCEPTED event), reading them, their status changes, idempotency keys and retention."""

import time
from collections.abc import Iterable, Sequence

from smsproxy.callbacks import origin
from smsproxy.errors import DuplicateMessage
from smsproxy.models import Idempotency, ListedMessage, Message, MessageQuery, StatusRecord
from smsproxy.statuses import Status
from smsproxy.stores.postgres._sql import STATUS
from smsproxy.stores.postgres.outbox import PostgresOutbox
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

__all__ = ["PostgresMessages"]


class PostgresMessages(PostgresOutbox):
    def insert(self, messages: Sequence[Message]) -> None:
        """All or none, as one statement (rows passed as arrays: one round trip for a
        bulk request). A failed statement would abort the group's whole transaction,
        so conflicts are skipped instead, and when any was, this insert's other rows
        are taken back and DuplicateMessage raised: the rest of the group goes on.
        (Ids are made here, so that path is for tests and bugs, not for traffic.)"""
        if not messages:
            return
        columns = list(zip(*((m.id, m.phone_number, m.content, m.created_at, m.attempts,
                              m.callback_url, origin(m.callback_url) if m.callback_url else None,
                              m.deliver_by, m.delivery_class, m.valid_until, m.send_at,
                              m.sender, m.tenant)
                             for m in messages), strict=True))
        inserted = self._conn.execute(
            "WITH inserted AS (INSERT INTO smsproxy_messages (id, phone_number, content,"
            " created_at, status, attempts, updated_at, callback_url, callback_origin,"
            " deliver_by, delivery_class, valid_until, send_at, not_before, ready_at, sender,"
            " tenant)"
            " SELECT id, phone_number, content, created_at, 'ACCEPTED', attempts, %s,"
            " callback_url, callback_origin, deliver_by, delivery_class, valid_until,"
            " send_at, coalesce(send_at, 0), coalesce(send_at, created_at), sender, tenant"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::int[],"
            " %s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[], %s::float8[],"
            " %s::text[], %s::text[])"
            " AS rows (id, phone_number, content, created_at, attempts, callback_url,"
            " callback_origin, deliver_by, delivery_class, valid_until, send_at, sender,"
            " tenant)"
            " ON CONFLICT (id) DO NOTHING RETURNING id, created_at, callback_url,"
            " callback_origin),"
            " accepted AS (INSERT INTO smsproxy_events (message_id, sequence,"
            " status, at, callback_url, callback_origin, callback_state, callback_due)"
            " SELECT id, 1, 'ACCEPTED', created_at, callback_url,"
            " callback_origin, CASE WHEN callback_url IS NOT NULL THEN 'pending' END,"
            " created_at"
            " FROM inserted)"
            " SELECT id FROM inserted",
            (time.time(), *(list(column) for column in columns)),
        ).fetchall()
        if len(inserted) < len(messages):
            taken_back = [row[0] for row in inserted]
            self._conn.execute("DELETE FROM smsproxy_events WHERE message_id = ANY(%s)",
                               (taken_back,))
            self._conn.execute("DELETE FROM smsproxy_messages WHERE id = ANY(%s)",
                               (taken_back,))
            raise DuplicateMessage(
                first_duplicate(messages, self.statuses(m.id for m in messages)))

    def lookup(self, message_id: str) -> StatusRecord | None:
        row = self._conn.execute(
            f"SELECT {LOOKUP_COLUMNS} FROM smsproxy_messages WHERE id = %s",
            (message_id,)).fetchone()
        return StatusRecord(message_id, STATUS[row[0]], *row[1:]) if row else None

    def owners(self, message_ids: Iterable[str]) -> dict[str, str]:
        return dict(self._conn.execute(
            "SELECT id, provider FROM smsproxy_messages WHERE id = ANY(%s)"
            " AND provider IS NOT NULL", (list(message_ids),)).fetchall())

    def by_refs(self, provider: str, refs: Iterable[str]) -> dict[str, str]:
        return dict(self._conn.execute(
            "SELECT provider_ref, id FROM smsproxy_messages WHERE provider_ref = ANY(%s)"
            " AND provider = %s", (list(refs), provider)).fetchall())

    def find(self, query: MessageQuery, status: Status) -> list[ListedMessage]:
        statement, values = find_statement(query, status, "smsproxy_messages", "%s")
        return listed_messages(self._conn.execute(statement, values))

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        rows = self._conn.execute(
            "SELECT id, status FROM smsproxy_messages WHERE id = ANY(%s)", (list(message_ids),)
        )
        return {message_id: STATUS[status] for message_id, status in rows}

    def set_statuses_unless(
        self, changes: Sequence[StatusChange], protected: frozenset[Status]
    ) -> set[str]:
        """One UPDATE per (status, reason); the ids it changed come back from RETURNING."""
        now = time.time()
        keep = sorted(s.value for s in protected)
        by_outcome: dict[tuple[Status, str | None], list[str]] = {}
        for message_id, status, reason in changes:
            by_outcome.setdefault((status, reason), []).append(message_id)
        changed: set[str] = set()
        for (status, reason), ids in by_outcome.items():
            rows = self._conn.execute(
                "UPDATE smsproxy_messages SET status = %s, reason = %s, updated_at = %s"
                " WHERE id = ANY(%s) AND NOT (status = ANY(%s)) RETURNING id",
                (status.value, reason, now, ids, keep),
            )
            changed.update(row[0] for row in rows)
        return changed

    def current(self, message_ids: Iterable[str]) -> dict[str, tuple[Status, int]]:
        """Two statements: the first waits for the rows' locks; the second, with a
        snapshot taken after that wait, sees the events their last holder wrote."""
        ids = list(message_ids)
        self._conn.execute(
            "SELECT 1 FROM smsproxy_messages WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (ids,)).fetchall()
        rows = self._conn.execute(
            "SELECT m.id, m.status, (SELECT max(sequence) FROM smsproxy_events"
            " WHERE message_id = m.id) FROM smsproxy_messages AS m WHERE m.id = ANY(%s)",
            (ids,))
        return {i: (STATUS[status], sequence) for i, status, sequence in rows}

    def accepted(self) -> list[Message]:
        rows = self._conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM smsproxy_messages"
                                  f" WHERE status = 'ACCEPTED' ORDER BY created_at, id")
        return [message_from_row(row) for row in rows]

    def find_idempotency(self, scope: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        row = self._conn.execute(
            "SELECT fingerprint, message_ids FROM smsproxy_idempotency_keys"
            " WHERE scope = %s AND key = %s", (scope, key),
        ).fetchone()
        return (row[0], tuple(row[1].split(","))) if row else None

    def remember_idempotency(
        self, idempotency: Idempotency, message_ids: Sequence[str], at: float
    ) -> bool:
        # Another instance saving the same key now: this waits for its commit, then
        # remembers nothing (a plain insert would fail, and abort the whole group).
        remembered = self._conn.execute(
            "INSERT INTO smsproxy_idempotency_keys (scope, key, fingerprint, message_ids,"
            " created_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (idempotency.scope, idempotency.key, idempotency.fingerprint,
             ",".join(message_ids), at),
        ).fetchone()
        return remembered is not None

    def forget_idempotency(self, before: float, limit: int) -> int:
        row = self._conn.execute(
            "WITH old AS (SELECT scope, key FROM smsproxy_idempotency_keys"
            " WHERE created_at < %s LIMIT %s FOR UPDATE SKIP LOCKED),"
            " forgotten AS (DELETE FROM smsproxy_idempotency_keys k USING old"
            " WHERE k.scope = old.scope AND k.key = old.key RETURNING 1)"
            " SELECT count(*) FROM forgotten", (before, limit),
        ).fetchone()
        return int(row[0]) if row else 0

    def purge(self, before: float, limit: int) -> int:
        row = self._conn.execute(
            "WITH doomed AS (SELECT id FROM smsproxy_messages m WHERE status = ANY(%s)"
            " AND created_at < %s AND NOT EXISTS (SELECT 1 FROM smsproxy_events e"
            " WHERE e.message_id = m.id AND e.callback_state = 'pending')"
            " LIMIT %s FOR UPDATE SKIP LOCKED),"
            " history AS (DELETE FROM smsproxy_events e USING doomed"
            " WHERE e.message_id = doomed.id),"
            " purged AS (DELETE FROM smsproxy_messages m USING doomed"
            " WHERE m.id = doomed.id RETURNING 1)"
            " SELECT count(*) FROM purged", (list(PURGEABLE), before, limit),
        ).fetchone()
        return int(row[0]) if row else 0
