"""The SQLite store: durable by default, one file, WAL mode, every commit fsynced.

``synchronous=FULL`` in WAL mode makes each commit durable against power loss,
not only a crash; group commit in the repository actor is what keeps that fast.
The schema carries its version in ``PRAGMA user_version``.

Every call blocks; the repository actor drives this store from a worker thread,
one transaction at a time, which is why one connection without thread checks is
safe here.

One process per file, however it is named: the store holds an exclusive lock on
``<file>.lock`` beside the file that its path resolves to (symbolic links followed),
and one on the database file itself (which a hard link shares) while it is open; a
second process is refused at start (:class:`StoreLocked`). Two processes would each
recover, and send, the same backlog (and through a hard link, each keep a WAL of its
own).
"""

import fcntl
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TextIO

from smsproxy.callbacks import origin
from smsproxy.errors import DuplicateMessage, StoreError, StoreLocked, StoreUnusable
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
    CallbackOutcome,
    StatusChange,
    event_from_row,
    event_row,
    find_statement,
    first_duplicate,
    listed_messages,
    message_from_row,
    prefixed,
)
from smsproxy.stores.sqlite_queue import QUEUE_MIGRATION, SqliteQueue, chunks

__all__ = ["SCHEMA_VERSION", "WAL_AUTOCHECKPOINT_PAGES", "SqliteStore"]

_MIGRATIONS = {
    # version: the script that brings the schema from version - 1 to version
    1: """
CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    phone_number TEXT NOT NULL,
    content      TEXT NOT NULL,
    created_at   REAL NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX messages_waiting ON messages (created_at) WHERE status = 'ACCEPTED';
""",
    2: """
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    message_ids TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
""",
    # Rows in insertion order, with a unique index on the random UUID: a bulk
    # request's rows share pages, so its status updates touch few of them.
    # (Keyed by the UUID itself, every insert and update hit a random page.)
    3: """
CREATE TABLE messages_by_arrival (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    phone_number TEXT NOT NULL,
    content      TEXT NOT NULL,
    created_at   REAL NOT NULL,
    status       TEXT NOT NULL,
    reason       TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL
);
INSERT INTO messages_by_arrival
    (id, phone_number, content, created_at, status, reason, attempts, updated_at)
    SELECT id, phone_number, content, created_at, status, reason, attempts, updated_at
    FROM messages ORDER BY created_at;
DROP TABLE messages;
ALTER TABLE messages_by_arrival RENAME TO messages;
CREATE INDEX messages_waiting ON messages (created_at) WHERE status = 'ACCEPTED';
""",
    # Every status step, written with the step itself (an outbox); the position is
    # the feed's order, which is commit order with one writer.
    4: """
CREATE TABLE events (
    position        INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    message_id      TEXT NOT NULL,
    sequence        INTEGER NOT NULL,
    status          TEXT NOT NULL,
    previous_status TEXT,
    reason          TEXT,
    at              REAL NOT NULL,
    UNIQUE (message_id, sequence)
);
INSERT INTO events (event_id, message_id, sequence, status, previous_status, reason, at)
    SELECT lower(hex(randomblob(16))), id, 1, 'ACCEPTED', NULL, NULL, created_at
    FROM messages ORDER BY seq;
INSERT INTO events (event_id, message_id, sequence, status, previous_status, reason, at)
    SELECT lower(hex(randomblob(16))), id, 2, status, 'ACCEPTED', reason, updated_at
    FROM messages WHERE status != 'ACCEPTED' ORDER BY seq;
""",
    # Status callbacks: a message's URL, and each event's delivery to it.
    5: """
ALTER TABLE messages ADD COLUMN callback_url TEXT;
ALTER TABLE messages ADD COLUMN callback_origin TEXT;
ALTER TABLE events ADD COLUMN callback_url TEXT;
ALTER TABLE events ADD COLUMN callback_origin TEXT;
ALTER TABLE events ADD COLUMN callback_state TEXT;
ALTER TABLE events ADD COLUMN callback_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN callback_due REAL;
ALTER TABLE events ADD COLUMN callback_error TEXT;
ALTER TABLE events ADD COLUMN claim_until REAL;
CREATE INDEX events_callbacks_due ON events (callback_due) WHERE callback_state = 'pending';
""",
    # Finding messages by status, newest first (GET /sms?status=...).
    6: """
CREATE INDEX messages_by_status ON messages (status, created_at, id);
""",
    # A message's own deadline to leave for the provider (deliver_within, a class).
    7: """
ALTER TABLE messages ADD COLUMN deliver_by REAL;
ALTER TABLE messages ADD COLUMN delivery_class TEXT;
""",
    # A message's validity: after it, it is never sent (valid_for, valid_until).
    8: """
ALTER TABLE messages ADD COLUMN valid_until REAL;
""",
    # Scheduled sending (send_at): held in the table, not in memory, until due.
    9: """
ALTER TABLE messages ADD COLUMN send_at REAL;
ALTER TABLE messages ADD COLUMN scheduled INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_scheduled ON messages (send_at) WHERE scheduled = 1;
""",
    10: QUEUE_MIGRATION,
}

SCHEMA_VERSION = max(_MIGRATIONS)

WAL_AUTOCHECKPOINT_PAGES = 10_000
"""Checkpoint every ~40 MB of WAL rather than every 4 MB (SQLite's default): far
fewer stalls in the committing thread, for a larger WAL file between checkpoints.
Until a new WAL file first reaches this size, every commit also grows the file,
and its fsync costs more (a commit took 374 µs then against 225 µs once the file
is reused, in a micro-benchmark on this project's machine). On a disk with less
room the WAL is held smaller (see ``WAL_SHARE_OF_FREE``)."""

WAL_SHARE_OF_FREE = 4
"""The WAL may take at most a quarter of the room the disk has free: a WAL that
outgrows the disk fails every commit, and the checkpoint that would reset it never
comes (SQLite checkpoints by the WAL's size, not by the disk's)."""

WAL_MIN_PAGES = 64
WAL_RESIZE_EVERY = 1_000
"""Commits between two looks at the disk's free room."""

_ROWS_PER_INSERT = 500
"""Rows per multi-row INSERT: one statement (one step) for many rows."""

_CANDIDATES = 4
"""Due callbacks looked at per one claimed, so that one receiver's cannot fill a claim."""

_PURGEABLE = ", ".join(f"'{status}'" for status in PURGEABLE)

_NO_STATUS = "''"
"""What ``NOT IN`` lists when no status is protected (``NOT IN (NULL)`` is never true)."""

_STATUS = {status.value: status for status in Status}
"""Faster than calling Status(...) for every row."""



class SqliteStore(SqliteQueue):
    blocking = True
    notices: tuple[str, ...] = ()
    concurrent = False

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        """``clock``: wall-clock seconds, for the queue's leases and deadlines (tests
        give one that follows trio's clock)."""
        self._clock = clock
        # ":memory:" is private to its connection: nothing to share, nothing to lock.
        self._lock = None if str(path) == ":memory:" else _hold_lock(Path(path))
        self._file_lock: int | None = None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if self._lock is not None:
                self._file_lock = _lock_the_file_itself(Path(path))
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
                f"BEGIN IMMEDIATE; {_MIGRATIONS[step]} PRAGMA user_version = {step}; COMMIT;"
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

    def insert(self, messages: Sequence[Message]) -> None:
        """All or none, each with its ACCEPTED event: an id that exists already, or
        comes twice, raises DuplicateMessage, and this call's rows that went in before
        it (messages and events) are taken back, by the savepoint around them.
        """
        now = self._clock()
        origin_of = {m.id: origin(m.callback_url) if m.callback_url else None for m in messages}
        rows = [(m.id, m.phone_number, m.content, m.created_at, m.attempts, now, m.callback_url,
                 origin_of[m.id], m.deliver_by, m.delivery_class, m.valid_until, m.send_at,
                 m.ready_at, m.send_at or 0) for m in messages]
        chunks = [rows[start : start + _ROWS_PER_INSERT]
                  for start in range(0, len(rows), _ROWS_PER_INSERT)]
        try:
            with self._savepoint("insert_messages"):
                for chunk in chunks:
                    self._db.execute(
                        "INSERT INTO messages (id, phone_number, content, created_at, status,"
                        " attempts, updated_at, callback_url, callback_origin, deliver_by,"
                        " delivery_class, valid_until, send_at, ready_at, not_before) VALUES "
                        + ",".join(["(?, ?, ?, ?, 'ACCEPTED', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"]
                                   * len(chunk)),
                        [value for row in chunk for value in row],
                    )
                self._insert_events(
                    (*event_row(event), message.callback_url, origin_of[message.id],
                     "pending" if message.callback_url else None, event.at)
                    for event, message in zip(Event.accepted(messages), messages, strict=True))
        except sqlite3.IntegrityError:
            raise DuplicateMessage(
                first_duplicate(messages, self.statuses(m.id for m in messages))) from None

    @contextmanager
    def _savepoint(self, name: str) -> Iterator[None]:
        """Statements that stand or fall together, inside the open transaction."""
        self._db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._db.execute(f"ROLLBACK TO {name}")
            self._db.execute(f"RELEASE {name}")
            raise
        self._db.execute(f"RELEASE {name}")

    def lookup(self, message_id: str) -> StatusRecord | None:
        row = self._db.execute(
            "SELECT status, reason, deliver_by, valid_until, send_at FROM messages"
            " WHERE id = ?", (message_id,)).fetchone()
        return StatusRecord(message_id, _STATUS[row[0]], *row[1:]) if row else None

    def find(self, query: MessageQuery, status: Status) -> list[ListedMessage]:
        statement, values = find_statement(query, status, "messages", "?")
        return listed_messages(self._db.execute(statement, values))

    def statuses(self, message_ids: Iterable[str]) -> dict[str, Status]:
        ids = list(message_ids)
        found: dict[str, Status] = {}
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT id, status FROM messages WHERE id IN ({marks})", chunk)
            found.update((message_id, _STATUS[status]) for message_id, status in rows)
        return found

    def set_statuses_unless(
        self, changes: Sequence[StatusChange], protected: frozenset[Status]
    ) -> set[str]:
        """One UPDATE per (status, reason) and chunk of ids, not one per row."""
        now = self._clock()
        by_outcome: dict[tuple[Status, str | None], list[str]] = {}
        for message_id, status, reason in changes:
            by_outcome.setdefault((status, reason), []).append(message_id)
        changed: set[str] = set()
        for (status, reason), ids in by_outcome.items():
            for chunk in chunks(ids):
                changed.update(self._set_unless(list(chunk), status, reason, now, protected))
        return changed

    def _set_unless(
        self, ids: list[str], status: Status, reason: str | None, now: float,
        protected: frozenset[Status],
    ) -> list[str]:
        """Usually every id changes, and the row count proves it. When it falls short,
        take the statement back and change exactly the ids that may change."""
        self._db.execute("SAVEPOINT set_statuses")
        if self._update(ids, status, reason, now, protected) != len(ids):
            self._db.execute("ROLLBACK TO set_statuses")
            current = self.statuses(ids)
            ids = [i for i in ids if i in current and current[i] not in protected]
            if ids:
                self._update(ids, status, reason, now, protected)
        self._db.execute("RELEASE set_statuses")
        return ids

    def _update(
        self, ids: list[str], status: Status, reason: str | None, now: float,
        protected: frozenset[Status],
    ) -> int:
        keep = sorted(s.value for s in protected)
        cursor = self._db.execute(
            f"UPDATE messages SET status = ?, reason = ?, updated_at = ?"
            f" WHERE id IN ({','.join('?' * len(ids))})"
            f" AND status NOT IN ({','.join('?' * len(keep)) or _NO_STATUS})",
            [status.value, reason, now, *ids, *keep],
        )
        return cursor.rowcount

    def current(self, message_ids: Iterable[str]) -> dict[str, tuple[Status, int]]:
        ids = list(message_ids)
        found: dict[str, tuple[Status, int]] = {}
        for chunk in chunks(ids):
            rows = self._db.execute(
                f"SELECT id, status, (SELECT max(sequence) FROM events WHERE message_id = id)"
                f" FROM messages WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            found.update((i, (_STATUS[status], sequence)) for i, status, sequence in rows)
        return found

    def _insert_events(self, rows: Iterable[tuple[object, ...]]) -> None:
        """Rows of ``EVENT_COLUMNS`` and the callback's URL, origin, state and due time,
        as one statement per few hundred."""
        values = list(rows)
        for start in range(0, len(values), _ROWS_PER_INSERT // 2):
            chunk = values[start : start + _ROWS_PER_INSERT // 2]
            self._db.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}, callback_url, callback_origin,"
                f" callback_state, callback_due) VALUES "
                + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)),
                [value for row in chunk for value in row],
            )

    def append_events(self, events: Sequence[Event]) -> None:
        """Each event is a callback to deliver when its message has a callback URL."""
        rows = [event_row(event) for event in events]
        for start in range(0, len(rows), _ROWS_PER_INSERT // 2):
            chunk = rows[start : start + _ROWS_PER_INSERT // 2]
            self._db.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}, callback_url, callback_origin,"
                f" callback_state, callback_due) SELECT rows.*, m.callback_url,"
                f" m.callback_origin, CASE WHEN m.callback_url IS NOT NULL THEN 'pending' END,"
                f" rows.column7"
                f" FROM (VALUES {','.join(['(?, ?, ?, ?, ?, ?, ?)'] * len(chunk))}) AS rows"
                f" JOIN messages AS m ON m.id = rows.column2",
                [value for row in chunk for value in row],
            )

    def claim_callbacks(
        self, instance: str, now: float, limit: int, lease: float, per_origin: int,
        skip_origins: Sequence[str] = (),
    ) -> list[PendingCallback]:
        skip = ",".join("?" * len(skip_origins))
        rows = self._db.execute(
            # The candidates first (a LIMIT on the due index), then their turns per
            # receiver: a window over every pending event would sort the whole backlog.
            f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY callback_origin"
            f" ORDER BY callback_due) AS turn FROM (SELECT {prefixed('e', EVENT_COLUMNS)},"
            f" e.position, e.callback_url, e.callback_attempts, e.callback_due,"
            f" e.callback_origin FROM events AS e WHERE e.callback_state = 'pending'"
            f" AND e.callback_due <= ? AND (e.claim_until IS NULL OR e.claim_until < ?)"
            f" AND NOT EXISTS (SELECT 1 FROM events AS p WHERE p.message_id = e.message_id"
            f" AND p.sequence < e.sequence AND p.callback_state = 'pending')"
            f" AND e.callback_origin NOT IN ({skip})"
            f" ORDER BY e.callback_due LIMIT ?)) WHERE turn <= ? ORDER BY callback_due LIMIT ?",
            [now, now, *skip_origins, _CANDIDATES * limit, per_origin, limit],
        ).fetchall()
        self._db.executemany(
            "UPDATE events SET claim_until = ? WHERE message_id = ? AND sequence = ?",
            [(now + lease, row[1], row[2]) for row in rows])
        return [PendingCallback(event_from_row(row[:8]), row[8], row[9]) for row in rows]

    def settle_callback(
        self, message_id: str, sequence: int, outcome: CallbackOutcome, attempts: int,
        retry_at: float, error: str | None,
    ) -> None:
        self._db.execute(
            "UPDATE events SET callback_state = ?, callback_attempts = ?, callback_due = ?,"
            " callback_error = ?, claim_until = NULL WHERE message_id = ? AND sequence = ?",
            ("pending" if outcome == "retry" else outcome, attempts, retry_at, error,
             message_id, sequence))

    def callback_backlog(self) -> tuple[int, float | None]:
        count, oldest = self._db.execute(
            "SELECT count(*), min(at) FROM events WHERE callback_state = 'pending'").fetchone()
        return int(count), oldest

    def events_of(self, message_id: str) -> list[Event]:
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS}, position FROM events WHERE message_id = ?"
            f" ORDER BY sequence", (message_id,))
        return [event_from_row(row) for row in rows]

    def feed(self, after: int, limit: int) -> list[Event]:
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS}, position FROM events WHERE position > ?"
            f" ORDER BY position LIMIT ?", (after, limit))
        return [event_from_row(row) for row in rows]

    def accepted(self) -> list[Message]:
        rows = self._db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages"
                                f" WHERE status = 'ACCEPTED' ORDER BY created_at, seq")
        return [message_from_row(row) for row in rows]

    def find_idempotency(self, scope: str, key: str) -> tuple[str, tuple[str, ...]] | None:
        row = self._db.execute(
            "SELECT fingerprint, message_ids FROM idempotency_keys WHERE scope = ? AND key = ?",
            (scope, key),
        ).fetchone()
        return (row[0], tuple(row[1].split(","))) if row else None

    def remember_idempotency(
        self, idempotency: Idempotency, message_ids: Sequence[str], at: float
    ) -> bool:
        cursor = self._db.execute(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, message_ids, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (idempotency.scope, idempotency.key, idempotency.fingerprint,
             ",".join(message_ids), at),
        )
        return cursor.rowcount == 1

    def savepoint(self) -> AbstractContextManager[None]:
        return self._savepoint("repository")

    def forget_idempotency(self, before: float, limit: int) -> int:
        cursor = self._db.execute(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN (SELECT scope, key"
            " FROM idempotency_keys WHERE created_at < ? LIMIT ?)", (before, limit))
        return cursor.rowcount

    def purge(self, before: float, limit: int) -> int:
        ids = [row[0] for row in self._db.execute(
            f"SELECT id FROM messages WHERE status IN ({_PURGEABLE}) AND created_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM events WHERE message_id = messages.id"
            " AND callback_state = 'pending') LIMIT ?", (before, limit))]
        for chunk in chunks(ids):
            marks = ",".join("?" * len(chunk))
            self._db.execute(f"DELETE FROM events WHERE message_id IN ({marks})", chunk)
            self._db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
        return len(ids)

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


def _hold_lock(database: Path) -> TextIO:
    """Hold ``<database>.lock`` for as long as the store is open, or raise StoreLocked.

    A lock on the database file itself would not do: POSIX drops a process's locks
    on a file whenever it closes any descriptor of it, which SQLite does. The
    holder's pid goes into the file, so the refusal can name it.
    """
    resolved = database.resolve()
    path = resolved.with_name(resolved.name + ".lock")
    try:
        lock = path.open("a+")
    except OSError as error:
        raise StoreUnusable(f"cannot open SQLite store {str(database)!r}: cannot create its "
                            f"lock file: {error}") from error
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.seek(0)
        holder = lock.read().strip() or "pid unknown"
        lock.close()
        raise StoreLocked(str(database), holder) from None
    lock.truncate(0)
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    lock.flush()
    return lock


def _lock_the_file_itself(database: Path) -> int:
    """An flock on the database file, which every name of it (a hard link) shares.

    flock is not SQLite's kind of lock (POSIX record locks), so the two do not meet,
    and it holds until this descriptor of ours is closed."""
    descriptor = os.open(database, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise StoreLocked(str(database), _flock_holder(database)) from None
    return descriptor


def _flock_holder(database: Path) -> str:
    """Who holds the file through another name: the pid from ``/proc/locks`` (Linux)."""
    try:
        found = os.stat(database)
        inode = f"{os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino}"
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "FLOCK" in fields and inode in fields:
                return f"pid {fields[fields.index(inode) - 1]}, through another name"
    except (OSError, ValueError, IndexError):
        pass
    return "pid unknown, through another name"
