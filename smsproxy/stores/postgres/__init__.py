"""The PostgreSQL store: the same rows and rules as SQLite, in a server's database.

psycopg 3 in its synchronous form, driven from the repository actor's worker thread
one transaction at a time, as SQLite is: one connection is all it needs. Commits
are durable (``synchronous_commit = on``: a 202 means the commit is in
PostgreSQL's WAL on disk).

By concern: :mod:`.schema` (migrations, locks), :mod:`.messages`, :mod:`.outbox`
(events, feed, callbacks), :mod:`.queue`.

The server may go away at any time. Every psycopg error becomes a
:class:`StoreError` (a unique violation on insert, :class:`DuplicateMessage`);
a broken connection is dropped, and the next transaction connects again, so the
service resumes by itself once the database is back. A database unreachable at
open is not fatal either: the store opens disconnected, and ``check`` (readiness)
says so until it answers.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import TupleRow

from smsproxy.errors import StoreError, StoreUnusable
from smsproxy.stores.postgres._sql import describe
from smsproxy.stores.postgres.compliance import PostgresCompliance
from smsproxy.stores.postgres.messages import PostgresMessages
from smsproxy.stores.postgres.queue import CLAIM, PostgresQueue
from smsproxy.stores.postgres.routes import PostgresRoutes
from smsproxy.stores.postgres.schema import (
    AUTOVACUUM_OFF,
    CONNECT_TIMEOUT,
    MIGRATION_LOCK,
    MIGRATIONS,
    SCHEMA_VERSION,
)

__all__ = ["AUTOVACUUM_OFF", "CLAIM", "SCHEMA_VERSION", "PostgresStore"]


class PostgresStore(PostgresMessages, PostgresQueue, PostgresRoutes, PostgresCompliance):
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
            raise StoreError(f"PostgreSQL: cannot connect: {describe(error)}") from error
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
            raise StoreError(f"PostgreSQL: {describe(error)}") from error
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
                db.execute(MIGRATIONS[step])
                db.execute("INSERT INTO smsproxy_schema (version) VALUES (%s)", (step,))

    def _drop(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

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
            raise StoreError(f"PostgreSQL: {describe(error)}") from error

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._conn.transaction():  # nested in the open one: a savepoint
            yield

    def check(self) -> None:
        self._conn.execute("SELECT 1 FROM smsproxy_messages LIMIT 1").fetchall()

    def close(self) -> None:
        self._drop()
