"""The PostgreSQL store: the same rows and rules as SQLite, in a server's database.

psycopg 3 in its synchronous form, driven from the repository actor's worker thread
one transaction at a time, as SQLite is: one connection is all it needs. Commits
are durable (``synchronous_commit = on``: a 202 means the commit is in
PostgreSQL's WAL on disk).

Migrations run at open, inside a transaction that first takes a transaction-level
advisory lock, so that several instances starting at once apply each step once;
the version lives in ``smsproxy_schema``. A session-level lock is avoided on
purpose: it outlives nothing when the backend dies, and breaks behind
transaction-mode poolers.

The server may go away at any time. Every psycopg error becomes a
:class:`StoreError` (a unique violation on insert, :class:`DuplicateMessage`);
a broken connection is dropped, and the next transaction connects again, so the
service resumes by itself once the database is back. A database unreachable at
open is not fatal either: the store opens disconnected, and ``check`` (readiness)
says so until it answers.
"""

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

from smsproxy.callbacks import origin
from smsproxy.errors import DuplicateMessage, StoreError, StoreUnusable
from smsproxy.models import (
    Event,
    Idempotency,
    ListedMessage,
    Message,
    MessageQuery,
    PendingCallback,
    StatusRecord,
)
from smsproxy.statuses import Status
from smsproxy.stores.protocol import (
    EVENT_COLUMNS,
    MESSAGE_COLUMNS,
    PURGEABLE,
    Backlog,
    CallbackOutcome,
    Claimed,
    ClaimRules,
    Lapsed,
    Renewal,
    StatusChange,
    event_from_row,
    event_row,
    find_statement,
    first_duplicate,
    listed_messages,
    message_from_row,
    prefixed,
)

__all__ = ["SCHEMA_VERSION", "PostgresStore"]

_MIGRATIONS = {
    # version: the statements that bring the schema from version - 1 to version
    1: """
CREATE TABLE smsproxy_messages (
    id           text PRIMARY KEY,
    phone_number text NOT NULL,
    content      text NOT NULL,
    created_at   double precision NOT NULL,
    status       text NOT NULL,
    reason       text,
    attempts     integer NOT NULL DEFAULT 0,
    updated_at   double precision NOT NULL
);
CREATE INDEX smsproxy_messages_waiting ON smsproxy_messages (created_at)
    WHERE status = 'ACCEPTED';
CREATE TABLE smsproxy_idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    message_ids text NOT NULL,
    created_at  double precision NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX smsproxy_idempotency_keys_age ON smsproxy_idempotency_keys (created_at);
""",
    # Shared dispatch: the table is the queue, and an instance claims rows for a
    # while (a lease) before it sends them.
    2: """
ALTER TABLE smsproxy_messages
    ADD COLUMN claimed_by  text,
    ADD COLUMN claim_until double precision,
    ADD COLUMN not_before  double precision NOT NULL DEFAULT 0,
    ADD COLUMN rounds      integer NOT NULL DEFAULT 0,
    ADD COLUMN maybe_taken boolean NOT NULL DEFAULT false,
    ADD COLUMN last_error  text,
    ADD COLUMN sent_at     double precision;
DROP INDEX smsproxy_messages_waiting;
CREATE INDEX smsproxy_messages_unsent ON smsproxy_messages (created_at)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL;
""",
    # A queue table: every message leaves the unsent index within seconds, and each
    # leaves a dead entry behind until a vacuum. Vacuum (and analyze) by rows
    # changed, not by a fifth of a table that only grows, so claims stay cheap.
    3: """
ALTER TABLE smsproxy_messages SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000
);
""",
    # Every status step, written with the step itself (an outbox). Ids come from a
    # sequence in the order transactions insert, not the order they commit, so the
    # feed's positions are handed out later, to committed rows only (see feed()).
    4: """
CREATE TABLE smsproxy_events (
    id              bigserial PRIMARY KEY,
    position        bigint UNIQUE,
    event_id        text NOT NULL,
    message_id      text NOT NULL,
    sequence        integer NOT NULL,
    status          text NOT NULL,
    previous_status text,
    reason          text,
    at              double precision NOT NULL,
    UNIQUE (message_id, sequence)
);
CREATE INDEX smsproxy_events_unplaced ON smsproxy_events (id) WHERE position IS NULL;
INSERT INTO smsproxy_events (event_id, message_id, sequence, status, at)
    SELECT gen_random_uuid()::text, id, 1, 'ACCEPTED', created_at
    FROM smsproxy_messages ORDER BY created_at;
INSERT INTO smsproxy_events (event_id, message_id, sequence, status, previous_status,
                             reason, at)
    SELECT gen_random_uuid()::text, id, 2, status, 'ACCEPTED', reason, updated_at
    FROM smsproxy_messages WHERE status != 'ACCEPTED' ORDER BY updated_at;
""",
    # Status callbacks: a message's URL, and each event's delivery to it, claimed by
    # one instance at a time (a lease, as for batches).
    5: """
ALTER TABLE smsproxy_messages ADD COLUMN callback_url text, ADD COLUMN callback_origin text;
ALTER TABLE smsproxy_events
    ADD COLUMN callback_url      text,
    ADD COLUMN callback_origin   text,
    ADD COLUMN callback_state    text,
    ADD COLUMN callback_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN callback_due      double precision,
    ADD COLUMN callback_error    text,
    ADD COLUMN claimed_by        text,
    ADD COLUMN claim_until       double precision;
CREATE INDEX smsproxy_events_callbacks_due ON smsproxy_events (callback_due)
    WHERE callback_state = 'pending';
""",
    # Finding messages by status, newest first (GET /sms?status=...).
    6: """
CREATE INDEX smsproxy_messages_by_status ON smsproxy_messages (status, created_at, id);
""",
    # A message's own deadline to leave for the provider (deliver_within, a class), and
    # the unsent ones that have one, by it: claims take the earliest deadlines first.
    7: """
ALTER TABLE smsproxy_messages ADD COLUMN deliver_by double precision,
    ADD COLUMN delivery_class text;
CREATE INDEX smsproxy_messages_unsent_by_deadline ON smsproxy_messages (deliver_by)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL AND deliver_by IS NOT NULL;
""",
    # A message's validity: after it, it is never sent (valid_for, valid_until).
    8: """
ALTER TABLE smsproxy_messages ADD COLUMN valid_until double precision;
""",
    # Scheduled sending (send_at): the row's not-before time holds it back until due.
    9: """
ALTER TABLE smsproxy_messages ADD COLUMN send_at double precision;
""",
    # One engine: a message's deadline counts from when it is ready (accepted, or
    # due by its send_at), as on every store; claims and expiry read it from indexes.
    10: """
ALTER TABLE smsproxy_messages ADD COLUMN ready_at double precision;
UPDATE smsproxy_messages SET ready_at = coalesce(send_at, created_at);
DROP INDEX smsproxy_messages_unsent;
CREATE INDEX smsproxy_messages_unsent ON smsproxy_messages (ready_at)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL;
CREATE INDEX smsproxy_messages_unsent_by_validity ON smsproxy_messages (valid_until)
    WHERE status = 'ACCEPTED' AND sent_at IS NULL AND valid_until IS NOT NULL;
""",
}

SCHEMA_VERSION = max(_MIGRATIONS)

MIGRATION_LOCK = 0x736D7370  # "smsp": any fixed number all instances agree on
CLAIM_LOCK = MIGRATION_LOCK + 1
FEED_LOCK = MIGRATION_LOCK + 2
_CANDIDATES = 4
"""Due callbacks looked at per one claimed, so that one receiver's cannot fill a claim."""
PLACE_AT_ONCE = 10_000
"""Events given feed positions per feed() call, at most."""
CLAIM_RETRY = 0.05
"""Seconds before looking again when another instance is claiming right now."""

CONNECT_TIMEOUT = 5
"""Seconds to wait for the server when connecting; a transaction never waits longer."""

_STATUS = {status.value: status for status in Status}


_NOW = "coalesce(%(now)s::float8, extract(epoch FROM statement_timestamp()))"
"""Now, by the database server's clock (so that instances on machines whose clocks
differ agree on every lease), unless a test's clock gives it as ``now``."""


_UNSENT = "status = 'ACCEPTED' AND sent_at IS NULL"


def _unclaimed_due(now: str) -> str:
    """Messages any instance may claim at ``now`` (an SQL expression)."""
    return (f"{_UNSENT} AND not_before <= {now}"
            f" AND (claim_until IS NULL OR claim_until < {now})"
            f" AND (valid_until IS NULL OR valid_until > {now})")


_CLAIM = f"""
WITH lock AS (
    SELECT pg_try_advisory_xact_lock(%(lock)s) AS locked, {_NOW} AS now
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


AUTOVACUUM_OFF = (
    "autovacuum is off on this PostgreSQL server: sent messages leave dead rows in the "
    "queue's index, and claims slow down as they pile up; turn it on, or run "
    "VACUUM ANALYZE smsproxy_messages every few minutes"
)


class PostgresStore:
    blocking = True
    concurrent = True

    def __init__(self, url: str, clock: Callable[[], float] | None = None) -> None:
        """``clock``: for tests; by default every time is the database server's, so
        that instances on machines whose clocks differ agree on every lease."""
        self._url = url
        self._clock = clock
        self._db: psycopg.Connection[TupleRow] | None = None
        self.notices: tuple[str, ...] = ()
        try:
            self._connect()
        except StoreUnusable:
            raise
        except StoreError:
            pass  # unreachable for now: the first transaction tries again

    def _connect(self) -> psycopg.Connection[TupleRow]:
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        self._drop()
        try:
            db = psycopg.connect(self._url, autocommit=False, connect_timeout=CONNECT_TIMEOUT,
                                 application_name="smsproxy")
        except psycopg.Error as error:
            raise StoreError(f"PostgreSQL: cannot connect: {_describe(error)}") from error
        try:
            db.execute("SET synchronous_commit = on")
            # Bitmap scans never mark the queue index's dead entries; plain index scans
            # do, so that later claims step over them (the planner picks bitmaps while
            # the table has no statistics yet). Every query here is an index lookup.
            db.execute("SET enable_bitmapscan = off")
            autovacuum = db.execute("SHOW autovacuum").fetchone()
            self.notices = (AUTOVACUUM_OFF,) if autovacuum == ("off",) else ()
            db.commit()
            self._migrate(db)
        except StoreUnusable:
            db.close()
            raise
        except psycopg.Error as error:
            db.close()
            raise StoreError(f"PostgreSQL: {_describe(error)}") from error
        self._db = db
        return db

    def _migrate(self, db: psycopg.Connection[TupleRow]) -> None:
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS smsproxy_schema (version integer NOT NULL)")
            row = db.execute("SELECT max(version) FROM smsproxy_schema").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise StoreUnusable(f"schema version {version} is newer than this smsproxy "
                                    f"knows ({SCHEMA_VERSION})")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                db.execute(_MIGRATIONS[step])
                db.execute("INSERT INTO smsproxy_schema (version) VALUES (%s)", (step,))

    def _drop(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    @property
    def _conn(self) -> psycopg.Connection[TupleRow]:
        assert self._db is not None, "used outside a transaction"
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        db = self._connect()
        try:
            # Pipelined: BEGIN travels with the first statement, one round trip less
            # per transaction (on a busy machine each one waits for a CPU, twice).
            with db.pipeline(), db.transaction():
                yield
        except psycopg.Error as error:
            if db.broken or db.closed:
                self._drop()  # the server went away: the next transaction reconnects
            raise StoreError(f"PostgreSQL: {_describe(error)}") from error

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
                              m.deliver_by, m.delivery_class, m.valid_until, m.send_at)
                             for m in messages), strict=True))
        inserted = self._conn.execute(
            "WITH inserted AS (INSERT INTO smsproxy_messages (id, phone_number, content,"
            " created_at, status, attempts, updated_at, callback_url, callback_origin,"
            " deliver_by, delivery_class, valid_until, send_at, not_before, ready_at)"
            " SELECT id, phone_number, content, created_at, 'ACCEPTED', attempts, %s,"
            " callback_url, callback_origin, deliver_by, delivery_class, valid_until,"
            " send_at, coalesce(send_at, 0), coalesce(send_at, created_at)"
            " FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::int[],"
            " %s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[], %s::float8[])"
            " AS rows (id, phone_number, content, created_at, attempts, callback_url,"
            " callback_origin, deliver_by, delivery_class, valid_until, send_at)"
            " ON CONFLICT (id) DO NOTHING RETURNING id, created_at, callback_url,"
            " callback_origin),"
            " accepted AS (INSERT INTO smsproxy_events (event_id, message_id, sequence,"
            " status, at, callback_url, callback_origin, callback_state, callback_due)"
            " SELECT gen_random_uuid()::text, id, 1, 'ACCEPTED', created_at, callback_url,"
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
            "SELECT status, reason, deliver_by, valid_until, send_at FROM smsproxy_messages"
            " WHERE id = %s", (message_id,)).fetchone()
        return StatusRecord(message_id, _STATUS[row[0]], *row[1:]) if row else None

    def find(self, query: MessageQuery, status: Status) -> list[ListedMessage]:
        statement, values = find_statement(query, status, "smsproxy_messages", "%s")
        return listed_messages(self._conn.execute(statement, values))

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        rows = self._conn.execute(
            "SELECT id, status FROM smsproxy_messages WHERE id = ANY(%s)", (list(message_ids),)
        )
        return {message_id: _STATUS[status] for message_id, status in rows}

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
        return {i: (_STATUS[status], sequence) for i, status, sequence in rows}

    def append_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        columns = list(zip(*(event_row(event) for event in events), strict=True))
        self._conn.execute(
            f"INSERT INTO smsproxy_events ({EVENT_COLUMNS}, callback_url, callback_origin,"
            f" callback_state, callback_due) SELECT rows.*, m.callback_url,"
            f" m.callback_origin, CASE WHEN m.callback_url IS NOT NULL THEN 'pending' END,"
            f" rows.at FROM unnest(%s::text[], %s::text[],"
            f" %s::int[], %s::text[], %s::text[], %s::text[], %s::float8[])"
            f" AS rows ({EVENT_COLUMNS}) JOIN smsproxy_messages AS m ON m.id = rows.message_id",
            [list(column) for column in columns])

    def claim_callbacks(
        self, instance: str, now: float, limit: int, lease: float, per_origin: int,
        skip_origins: Sequence[str] = (),
    ) -> list[PendingCallback]:
        rows = self._conn.execute(
            f"WITH candidates AS (SELECT e.id, e.callback_origin, e.callback_due"
            f" FROM smsproxy_events AS e"
            f" WHERE e.callback_state = 'pending' AND e.callback_due <= %(now)s"
            f" AND (e.claim_until IS NULL OR e.claim_until < %(now)s)"
            f" AND NOT EXISTS (SELECT 1 FROM smsproxy_events AS p"
            f" WHERE p.message_id = e.message_id AND p.sequence < e.sequence"
            f" AND p.callback_state = 'pending')"
            f" AND NOT (e.callback_origin = ANY(%(skip)s))"
            f" ORDER BY e.callback_due LIMIT %(candidates)s FOR UPDATE OF e SKIP LOCKED),"
            f" due AS (SELECT id FROM (SELECT id, callback_due, row_number() OVER (PARTITION"
            f" BY callback_origin ORDER BY callback_due) AS turn FROM candidates) AS ranked"
            f" WHERE turn <= %(per_origin)s ORDER BY callback_due LIMIT %(limit)s)"
            f" UPDATE smsproxy_events AS e SET claimed_by = %(me)s,"
            f" claim_until = %(now)s + %(lease)s FROM due WHERE e.id = due.id"
            f" RETURNING {prefixed('e', EVENT_COLUMNS)},"
            f" e.position, e.callback_url, e.callback_attempts",
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

    def callback_backlog(self) -> tuple[int, float | None]:
        row = self._conn.execute(
            "SELECT count(*), min(at) FROM smsproxy_events WHERE callback_state = 'pending'"
        ).fetchone()
        assert row is not None
        return int(row[0]), row[1]

    def events_of(self, message_id: str) -> list[Event]:
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS}, position FROM smsproxy_events WHERE message_id = %s"
            f" ORDER BY sequence", (message_id,))
        return [event_from_row(row) for row in rows]

    def feed(self, after: int, limit: int) -> list[Event]:
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
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS}, position FROM smsproxy_events WHERE position > %s"
            f" ORDER BY position LIMIT %s", (after, limit))
        return [event_from_row(row) for row in rows]

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

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._conn.transaction():  # nested in the open one: a savepoint
            yield

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

    def check(self) -> None:
        self._conn.execute("SELECT 1 FROM smsproxy_messages LIMIT 1").fetchall()

    # --- the queue (smsproxy.stores.queue.Queue) ---------------------------------------

    def _at(self, **parameters: object) -> dict[str, object]:
        """Parameters with ``now``: the test clock's time, or None for the server's
        (``_NOW`` in the statement), so that no statement waits for a clock query."""
        return {"now": self._clock() if self._clock is not None else None, **parameters}

    def claim(self, instance: str, rules: ClaimRules) -> Claimed:
        """One instance claims at a time (a transaction-level advisory lock): two
        claiming at the due moment would split one batch in two, since rows saved
        after the first one's snapshot are not locked by it."""
        rows = self._conn.execute(_CLAIM, self._at(
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
            f"WITH asked AS (SELECT id, claimed_by = %(me)s AND claim_until >= {_NOW} AS mine"
            f" FROM smsproxy_messages WHERE id = ANY(%(ids)s) AND status = 'ACCEPTED'"
            f" AND sent_at IS NULL FOR UPDATE),"
            f" renewed AS (UPDATE smsproxy_messages AS m SET claim_until = {_NOW} + %(lease)s"
            f" FROM asked WHERE m.id = asked.id AND asked.mine RETURNING m.id)"
            f" SELECT id, mine FROM asked",
            self._at(lease=lease, ids=list(message_ids), me=instance),
        ).fetchall()
        return Renewal(frozenset(i for i, mine in rows if mine),
                       frozenset(i for i, mine in rows if not mine))

    def mark_sent(self, instance: str, message_ids: Sequence[str], attempts: int) -> None:
        self._conn.execute(
            f"UPDATE smsproxy_messages SET sent_at = {_NOW}, claimed_by = NULL,"
            f" claim_until = NULL, attempts = attempts + %(attempts)s"
            f" WHERE id = ANY(%(ids)s) AND claimed_by = %(me)s",
            self._at(ids=list(message_ids), me=instance, attempts=attempts),
        )

    def park(
        self, instance: str, message_ids: Sequence[str], attempts: int, error: str,
        maybe_taken: bool, requeue_initial: float, requeue_max: float,
    ) -> None:
        self._conn.execute(
            f"UPDATE smsproxy_messages SET claimed_by = NULL, claim_until = NULL,"
            f" not_before = {_NOW} + least(%(max)s, %(initial)s * power(2, least(rounds, 30))),"
            f" rounds = rounds + 1, attempts = attempts + %(attempts)s,"
            f" maybe_taken = maybe_taken OR %(maybe)s, last_error = %(error)s"
            f" WHERE id = ANY(%(ids)s) AND claimed_by = %(me)s",
            self._at(max=requeue_max, initial=requeue_initial, attempts=attempts,
                     maybe=maybe_taken, error=error, ids=list(message_ids), me=instance),
        )

    def lapsed(self, ttl: float, grace: float, limit: int) -> list[Lapsed]:
        rows = self._conn.execute(
            f"WITH late AS (SELECT id FROM smsproxy_messages WHERE {_UNSENT}"
            f" AND ready_at <= {_NOW} - %(ttl)s UNION SELECT id FROM smsproxy_messages"
            f" WHERE {_UNSENT} AND valid_until IS NOT NULL AND valid_until <= {_NOW})"
            f" SELECT m.id, m.maybe_taken, coalesce(m.valid_until <= m.ready_at + %(ttl)s,"
            f" false), m.last_error FROM smsproxy_messages AS m JOIN late USING (id)"
            f" WHERE {_UNSENT} AND (m.claim_until IS NULL OR m.claim_until < {_NOW})"
            f" AND least(m.ready_at + %(ttl)s, coalesce(m.valid_until, 'infinity'))"
            f" + CASE WHEN m.maybe_taken THEN %(grace)s ELSE 0 END <= {_NOW}"
            f" ORDER BY m.created_at LIMIT %(limit)s FOR UPDATE OF m SKIP LOCKED",
            self._at(ttl=ttl, grace=grace, limit=limit),
        )
        return [Lapsed(i, maybe, by_validity, error) for i, maybe, by_validity, error in rows]

    def backlog(self) -> Backlog:
        row = self._conn.execute(
            f"SELECT count(*), count(*) FILTER (WHERE {_unclaimed_due(_NOW)})"
            f" FROM smsproxy_messages WHERE {_UNSENT}"
            f" AND (send_at IS NULL OR send_at <= {_NOW})",
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

    def close(self) -> None:
        self._drop()


def _describe(error: psycopg.Error) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
