"""The SQLite store's schema and its file: the migrations (the version is kept in
``PRAGMA user_version``), the WAL's size, and the lock that keeps one process per file.

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
from pathlib import Path
from typing import TextIO

from smsproxy.errors import StoreLocked, StoreUnusable
from smsproxy.stores.sqlite.compliance import COMPLIANCE_MIGRATION
from smsproxy.stores.sqlite.outbox import OUTBOX_MIGRATION
from smsproxy.stores.sqlite.queue import PROVIDERS_MIGRATION, QUEUE_MIGRATION
from smsproxy.stores.sqlite.routes import ROUTES_MIGRATION

__all__ = [
    "MIGRATIONS", "SCHEMA_VERSION", "WAL_AUTOCHECKPOINT_PAGES", "WAL_MIN_PAGES",
    "WAL_RESIZE_EVERY", "WAL_SHARE_OF_FREE", "hold_lock", "lock_the_file_itself",
]

MIGRATIONS = {
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
    # Events by the message's integer key, their ids derived (see OUTBOX_MIGRATION); and
    # the status index, rewritten at every status step, without the text id (each entry
    # carries the integer key anyway; a tie in time is put in id order by a sort of the
    # tie alone).
    11: OUTBOX_MIGRATION + """
DROP INDEX messages_by_status;
CREATE INDEX messages_by_status ON messages (status, created_at);
""",
    12: PROVIDERS_MIGRATION + ROUTES_MIGRATION,
    # The key (tenant) that sent a message; the suppression list, replies, and each
    # key's count against its daily quota.
    13: COMPLIANCE_MIGRATION,
}

SCHEMA_VERSION = max(MIGRATIONS)

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


def hold_lock(database: Path) -> TextIO:
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


def lock_the_file_itself(database: Path) -> int:
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
