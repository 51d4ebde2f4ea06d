"""POST latency while retention deletes a large backlog of old messages.

A SQLite store is filled with old FAILED messages (accepted two days ago). Each round
serves a copy of it twice under the same POST load: once with ``--retention`` of a
day, so that housekeeping deletes them all while the load runs, and once with the
default 30 days, so that it deletes none. Reports POST p99 with the purge against
without it (target <= 1.2), and how many messages the purge deleted meanwhile.

Then the store's size over a longer run under steady load with a short retention
(``--retention 5``): the database file grows while the window fills, then stays flat
(SQLite reuses the pages the purge frees).

    python bench/retention.py [--rounds 5] [--seconds 8] [--messages 200000] [--growth 40]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _harness import BENCH, smsproxy_server, stats, wrk_run

sys.path.insert(0, str(BENCH.parent))

from smsproxy.models import Message, new_ids
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores.sqlite import SqliteStore

DAY = 86_400


def fill(path: Path, count: int) -> None:
    """``count`` FAILED messages accepted two days ago."""
    store = SqliteStore(path)
    repository = Repository(store)
    accepted_at = time.time() - 2 * DAY
    for start in range(0, count, 5000):
        batch = [Message(i, "+4912345678", "old", accepted_at)
                 for i in new_ids(min(5000, count - start))]
        with store.transaction():
            repository.save(batch)
            repository.update_many({m.id: Status.FAILED for m in batch}, "old")
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--growth", type=float, default=40, help="seconds of the size run")
    args = parser.parse_args()
    script = BENCH / "post_sms.lua"
    with tempfile.TemporaryDirectory() as workdir:
        template = Path(workdir) / "old.db"
        fill(template, args.messages)
        ratios = []
        for round_number in range(1, args.rounds + 1):
            p99, purged = {}, 0
            for name, retention in (("no purge", str(30 * DAY)), ("purging", str(DAY))):
                database = Path(workdir) / f"{name}.db"
                shutil.copy(template, database)
                with smsproxy_server("--store", f"sqlite:///{database}",
                                     "--retention", retention) as url:
                    result = wrk_run(f"{url}/sms", seconds=args.seconds,
                                     connections=args.connections, script=script)
                    p99[name] = result.p99_ms
                    if name == "purging":
                        purged = stats(url)["messages_purged"]
                database.unlink()
            ratios.append(p99["purging"] / p99["no purge"])
            print(f"round {round_number}: POST p99 {p99['no purge']:.1f} ms without a purge, "
                  f"{p99['purging']:.1f} ms while {purged} old messages were deleted "
                  f"({purged / args.seconds:.0f}/s), ratio {ratios[-1]:.2f}")
    print(f"POST p99 while purging / without: {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f} to {max(ratios):.2f}; target <= 1.2)")
    sizes = growth(args.growth, args.connections, script)
    print("database file under steady POST load, --retention 5: "
          + ", ".join(f"{at:.0f} s {size / 1e6:.1f} MB" for at, size in sizes))
    return 0


def growth(seconds: float, connections: int, script: Path) -> list[tuple[float, int]]:
    """(seconds into the run, bytes of the database file) every few seconds."""
    sizes = []
    with tempfile.TemporaryDirectory() as workdir:
        database = Path(workdir) / "growth.db"
        with smsproxy_server("--store", f"sqlite:///{database}", "--retention", "5") as url:
            step = seconds / 10
            for n in range(1, 11):
                wrk_run(f"{url}/sms", seconds=step, connections=connections, script=script)
                sizes.append((n * step, database.stat().st_size))
    return sizes


if __name__ == "__main__":
    sys.exit(main())
