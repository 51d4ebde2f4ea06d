"""The cost model's other half: each stage of a bulk-submitted message alone, its
ceiling, and the floor under it on this machine.

Each stage runs alone in this process, on the same code the service runs, for a
group of 100 messages at a time (the bulk request's size), and is timed in
microseconds per message (wall clock: a commit's fsync is waiting, not CPU, and it holds the
store's one thread all the same); its ceiling is the rate one core would reach if that
stage were all it did. Where a stage is the store's, its SQL statements and its
commits are timed apart: what SQLite itself spends on these rows and indexes (the
floor of that stage for this schema; the rest is smsproxy's Python around it), beside
the fsync of a one-row commit on this disk (the floor under any commit).
`bench/cost_model.py` gives the same stages as the service spends them under load
(py-spy); the two together are the model in `bench/README.md`.

    python bench/stages.py [--groups 300]
"""

import argparse
import collections
import itertools
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.common import parse_json_object
from api.schemas import BulkRequest
from smsproxy.models import Outgoing, new_messages
from smsproxy.repository import Repository
from smsproxy.segments import count_segments
from smsproxy.statuses import Status
from smsproxy.stores.queue import ClaimRules
from smsproxy.stores.sqlite import SqliteStore
from smsproxy.stores.sqlite.schema import WAL_AUTOCHECKPOINT_PAGES

GROUP = 100
BODY = json.dumps({"messages": [
    {"phone_number": f"+4915000000{n:02d}", "content": f"Your order {n} has shipped"}
    for n in range(GROUP)]}).encode()


class TimedConnection:
    """A sqlite3 connection whose statements and commits are timed, by kind."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection
        self.seconds: collections.Counter[str] = collections.Counter()

    def execute(self, sql: str, *values: object) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return self._connection.execute(sql, *values)
        finally:
            kind = "commit" if sql.lstrip().upper().startswith("COMMIT") else "sql"
            self.seconds[kind] += time.perf_counter() - started

    def commit(self) -> None:
        started = time.perf_counter()
        try:
            self._connection.commit()
        finally:
            self.seconds["commit"] += time.perf_counter() - started

    def executemany(self, sql: str, rows: object) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return self._connection.executemany(sql, rows)  # type: ignore[arg-type]
        finally:
            self.seconds["sql"] += time.perf_counter() - started

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)


def per_message(seconds: float, groups: int) -> float:
    return seconds / (groups * GROUP) * 1e6


def timed(work: Callable[[], object], groups: int) -> float:
    """µs of CPU a message for ``work`` on one group, run ``groups`` times."""
    started = time.perf_counter()
    for _ in range(groups):
        work()
    return per_message(time.perf_counter() - started, groups)


@contextmanager
def store_in(folder: str) -> Iterator[tuple[SqliteStore, TimedConnection]]:
    store = SqliteStore(str(Path(folder) / "stages.db"))
    connection = TimedConnection(store._db)
    store._db = connection  # type: ignore[assignment]
    try:
        yield store, connection
    finally:
        store._db = connection._connection
        store.close()


def store_stages(groups: int) -> dict[str, tuple[float, float, float]]:
    """Per stage: (all, its SQL, its commits) in µs a message, as the service commits
    them: a transaction for the save, one for the claim, one for the mark-sent and one
    for the status reports (CONFIRMED and DELIVERED held together, as the updater's
    linger holds them); timed once the WAL file has grown to its checkpoint size."""
    items = [Outgoing(f"+4915000000{n:02d}", "Your order has shipped") for n in range(GROUP)]
    found: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
    with tempfile.TemporaryDirectory() as folder, store_in(folder) as (store, connection):
        repository = Repository(store)
        rules = ClaimRules(GROUP, max_delay=0.0, lease=30.0, ttl=3600.0)

        def stage(name: str, work: Callable[[], object]) -> object:
            before = connection.seconds.copy()
            started = time.perf_counter()
            with store.transaction():
                result = work()
            spent = found[name]
            spent[0] += time.perf_counter() - started
            spent[1] += connection.seconds["sql"] - before["sql"]
            spent[2] += connection.seconds["commit"] - before["commit"]
            return result

        wal = Path(folder) / "stages.db-wal"
        full = WAL_AUTOCHECKPOINT_PAGES * 4096 * 0.95
        warming = True
        for n in itertools.count():
            if warming and wal.stat().st_size >= full:
                # A server's steady state: until the WAL file first reaches its checkpoint
                # size, every commit also grows it, and its fsync costs more.
                warming = False
                found.clear()
                first = n
            if not warming and n - first == groups:
                break
            group = new_messages(items, time.time())
            stage("save: message rows, ACCEPTED events",
                  partial(repository.save_all, [(group, None, 0.0)]))
            claimed = stage("claim", partial(store.claim, "bench", rules))
            ids = [m.id for m in claimed.messages]  # type: ignore[attr-defined]
            stage("mark sent", partial(store.mark_sent, "bench", ids, 1,
                                       dict.fromkeys(ids, "provider"), {}))
            stage("status reports: CONFIRMED, DELIVERED", partial(
                repository.apply_in_order,
                [(i, status) for status in (Status.CONFIRMED, Status.DELIVERED) for i in ids]))
    return {name: (per_message(a, groups), per_message(s, groups), per_message(c, groups))
            for name, (a, s, c) in found.items()}


def fsync_floor(commits: int = 500) -> float:
    """µs of one small commit at ``synchronous=FULL`` on a WAL file already grown."""
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(Path(folder) / "floor.db", isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("CREATE TABLE t (v)")
        for _ in range(2):  # the first pass grows the WAL file; the second is timed
            started = time.perf_counter()
            for _ in range(commits):
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO t VALUES (?)", ("x" * 200,))
                db.execute("COMMIT")
            seconds = time.perf_counter() - started
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        db.close()
    return seconds / commits * 1e6


def front_stages(groups: int) -> dict[str, float]:
    """The request's own work: its body parsed and validated, the messages made (ids,
    segments), the answer's JSON."""
    parsed = BulkRequest.model_validate(parse_json_object(BODY))
    items = [Outgoing(sms.phone_number, sms.content) for sms in parsed.messages]
    group = new_messages(items, time.time())

    def answer() -> str:
        return json.dumps({"messages": [
            {"id": m.id, "status": "ACCEPTED", "segments": count_segments(m.content).count}
            for m in group]})

    return {
        "bulk body: JSON and validation": timed(
            lambda: BulkRequest.model_validate(parse_json_object(BODY)), groups),
        "message objects, ids": timed(lambda: new_messages(items, time.time()), groups),
        "answer JSON, segments": timed(answer, groups),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=300)
    args = parser.parse_args()
    front = front_stages(args.groups)
    store = store_stages(args.groups)
    floor = fsync_floor()
    print(f"# stages alone, {args.groups} groups of {GROUP}; a small commit's fsync: "
          f"{floor:.0f} µs ({floor / GROUP:.1f} µs a message at one commit a group)")
    print("| stage | µs a message | its SQL | its commits | ceiling (msg/s, one core) |")
    print("|---|---|---|---|---|")
    total = 0.0
    for name, spent in front.items():
        total += spent
        print(f"| {name} | {spent:.1f} | | | {1e6 / spent:,.0f} |")
    for name, (spent, sql, commit) in store.items():
        total += spent
        print(f"| {name} | {spent:.1f} | {sql:.1f} | {commit:.1f} | {1e6 / spent:,.0f} |")
    print(f"| **sum** | {total:.1f} | | | {1e6 / total:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
