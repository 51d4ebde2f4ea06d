"""The SQLite store: durable by default, one file, WAL mode, every commit fsynced.

``synchronous=FULL`` in WAL mode makes each commit durable against power loss,
not only a crash; group commit in the repository actor is what keeps that fast.

Every call blocks; the repository actor drives this store from a worker thread,
one transaction at a time, which is why one connection without thread checks is
safe here. By concern: :mod:`.schema` (migrations, the WAL's size, one process per
file), :mod:`.messages`, :mod:`.outbox` (events, feed, callbacks), :mod:`.queue`.
"""

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from smsproxy.errors import StoreError, StoreUnusable
from smsproxy.stores.sqlite.compliance import SqliteCompliance
from smsproxy.stores.sqlite.messages import SqliteMessages
from smsproxy.stores.sqlite.queue import SqliteQueue
from smsproxy.stores.sqlite.routes import SqliteRoutes
from smsproxy.stores.sqlite.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    WAL_AUTOCHECKPOINT_PAGES,
    WAL_MIN_PAGES,
    WAL_RESIZE_EVERY,
    WAL_SHARE_OF_FREE,
    hold_lock,
    lock_the_file_itself,
)

__all__ = ["SCHEMA_VERSION", "WAL_AUTOCHECKPOINT_PAGES", "SqliteStore"]


class SqliteStore(SqliteMessages, SqliteQueue, SqliteRoutes, SqliteCompliance):
    blocking = True

    notices: tuple[str, ...] = ()

    concurrent = False

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        """``clock``: wall-clock seconds, for the queue's leases and deadlines (tests
        give one that follows trio's clock)."""
        self._clock = clock
        # ":memory:" is private to its connection: nothing to share, nothing to lock.
        self._lock = None if str(path) == ":memory:" else hold_lock(Path(path))
        self._file_lock: int | None = None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if self._lock is not None:
                self._file_lock = lock_the_file_itself(Path(path))
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._page_size: int = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._folder = Path(path).resolve().parent if self._lock else None
            self._commits_to_resize = 0
            self._size_wal()
            self._db.execute("PRAGMA cache_size = -16384")  # 16 MiB of page cache
            self._migrate()
            # One process per file (the lock above): a claim found now is a dead one's.
            self._db.execute("UPDATE events SET claim_until = NULL"
                             " WHERE callback_state = 'pending' AND claim_until IS NOT NULL")
            self._db.execute("UPDATE inbound SET claim_until = NULL"
                             " WHERE callback_state = 'pending' AND claim_until IS NOT NULL")
            self.void_claims()
        except (sqlite3.Error, StoreError, OSError) as error:
            self._release_lock()
            if isinstance(error, StoreError):
                raise
            raise StoreUnusable(f"cannot open SQLite store {str(path)!r}: {error}") from error

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreUnusable(
                f"schema version {version} is newer than this smsproxy knows ({SCHEMA_VERSION})"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            self._db.executescript(
                f"BEGIN IMMEDIATE; {MIGRATIONS[step]} PRAGMA user_version = {step}; COMMIT;"
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.rollback()
                raise
            self._db.commit()
        except sqlite3.Error as error:
            self._make_room()
            raise StoreError(f"SQLite: {error}") from error
        self._commits_to_resize -= 1
        if self._commits_to_resize <= 0:
            self._size_wal()

    def _size_wal(self) -> None:
        """Checkpoint (and truncate the WAL back) once it holds a share of the disk's
        free room, or ``WAL_AUTOCHECKPOINT_PAGES``, whichever is less."""
        pages = WAL_AUTOCHECKPOINT_PAGES
        if self._folder is not None:
            with suppress(OSError):
                disk = os.statvfs(self._folder)
                free_pages = disk.f_bavail * disk.f_frsize // self._page_size
                pages = max(WAL_MIN_PAGES, min(pages, free_pages // WAL_SHARE_OF_FREE))
        self._db.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        self._db.execute(f"PRAGMA journal_size_limit = {pages * self._page_size}")
        self._commits_to_resize = WAL_RESIZE_EVERY

    def _make_room(self) -> None:
        """After a failed transaction (a full disk, most often): move the WAL into the
        database and truncate it, and hold it smaller from now on. Best effort: with
        no room at all this fails too, and the next failure tries again."""
        with suppress(sqlite3.Error):
            if self._db.in_transaction:  # a COMMIT that failed leaves it open
                self._db.rollback()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._size_wal()

    def savepoint(self) -> AbstractContextManager[None]:
        return self._savepoint("repository")

    def check(self) -> None:
        self._db.execute("SELECT 1 FROM messages LIMIT 1").fetchall()

    def close(self) -> None:
        self._db.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._file_lock is not None:
            os.close(self._file_lock)
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the lock
