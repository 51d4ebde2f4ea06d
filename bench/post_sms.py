"""POST /sms throughput of smsproxy against a bare quart-trio endpoint, in one run.

The bare endpoint (bare_app.py) parses the same request model and answers alike,
with nothing behind it. All three servers run side by side and are warmed up,
the SQLite one until its WAL file has filled once (the steady state of a server
that has run for a while: before that, every commit also grows the file);
each round then measures bare, memory store, SQLite store, one after the other
(after a proxy, waiting until it has delivered everything), starting with a
different one each round, and the figure is the median over rounds of candidate /
that round's bare. Measured at several connection counts: group
commit needs requests in flight to group.

    python bench/post_sms.py [--rounds 15] [--seconds 1] [--connections 32,64,128] [--cold-wal]
"""

import argparse
import platform
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from _harness import BENCH, bare_server, smsproxy_server, stats, wrk

from smsproxy.stores.sqlite import WAL_AUTOCHECKPOINT_PAGES

STORES = {"memory": "memory://", "sqlite": "sqlite:///{folder}/smsproxy.db"}
TARGETS = {"memory": 0.95, "sqlite": 0.90}
WAL_FRAME_BYTES = 24 + 4096
"""A WAL frame: its header and one page of SQLite's default size."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=1)
    parser.add_argument("--connections", default="32,64,128",
                        help="comma-separated connection counts, each measured in turn")
    parser.add_argument("--cold-wal", action="store_true",
                        help="measure SQLite from a new WAL file, as in a server's first minutes")
    args = parser.parse_args()
    levels = [int(level) for level in args.connections.split(",")]
    print(f"# POST /sms, {date.today()}, Python {platform.python_version()}, "
          f"{args.rounds} rounds x {args.seconds:g} s each at {levels} connections")
    table: list[str] = []
    with ExitStack() as servers:
        folder = Path(servers.enter_context(tempfile.TemporaryDirectory()))
        urls = {"bare": servers.enter_context(bare_server())}
        for name, store in STORES.items():
            urls[name] = servers.enter_context(
                smsproxy_server("--store", store.format(folder=folder))
            )
        if not args.cold_wal:
            _fill_wal(urls["sqlite"], folder / "smsproxy.db-wal")
        for connections in levels:
            for name, url in urls.items():
                _measure(name, url, 2, connections)  # warm-up
            rounds: list[dict[str, float]] = []
            names = list(urls)
            for number in range(1, args.rounds + 1):
                # Each round starts with a different server, so that the machine's
                # slow moments do not always fall on the same one.
                start = number % len(names)
                rates = {name: _measure(name, urls[name], args.seconds, connections)
                         for name in names[start:] + names[:start]}
                rounds.append(rates)
                print(f"{connections} connections, round {number}: "
                      + ", ".join(f"{n} {rates[n]:.0f} req/s" for n in names))
            table += _rows(connections, rounds)
    print()
    print("| store | connections | bare req/s (median) | smsproxy req/s (median) "
          "| ratio (median of rounds) | target |")
    print("|---|---|---|---|---|---|")
    print("\n".join(table))
    return 0


def _measure(name: str, url: str, seconds: float, connections: int) -> float:
    """POST /sms req/s; then, for a proxy, wait until its work is done.

    A proxy goes on working after the load stops: it flushes the last batch after
    up to --max-delay, and applies the provider's status reports. Left running,
    that work would take CPU from the next server's round.
    """
    rate = wrk(f"{url}/sms", seconds=seconds, connections=connections,
               script=BENCH / "post_sms.lua")
    if name in STORES:
        _settle(url)
    return rate


def _settle(url: str) -> dict[str, int]:
    """Wait until every message the proxy accepted is delivered; its counters then."""
    deadline = time.monotonic() + 60
    while (counts := stats(url))["messages_delivered"] < counts["messages_accepted"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not deliver everything within 60 s: {counts}")
        time.sleep(0.05)
    return counts


def _fill_wal(url: str, wal: Path) -> None:
    """Bulk posts until the WAL file has reached its checkpoint size."""
    started = time.monotonic()
    # Nearly: a checkpoint truncates the file to the journal size limit, a little under.
    full = 0.95 * WAL_AUTOCHECKPOINT_PAGES * WAL_FRAME_BYTES
    while not wal.exists() or wal.stat().st_size < full:
        if time.monotonic() - started > 300:
            raise RuntimeError(f"{wal} did not fill in 5 minutes")
        wrk(f"{url}/sms/bulk", seconds=2, connections=8, script=BENCH / "bulk_100.lua")
        # Bulk is accepted faster than it is delivered: let the backlog drain before the
        # next load, or it reaches --max-queue and the POSTs are answered 503.
        _settle(url)
    counts = _settle(url)
    print(f"SQLite WAL filled once ({wal.stat().st_size / 1e6:.0f} MB, "
          f"{counts['messages_accepted']} messages) in {time.monotonic() - started:.0f} s")


def _rows(connections: int, rounds: list[dict[str, float]]) -> list[str]:
    bare = statistics.median(r["bare"] for r in rounds)
    rows = []
    for name in STORES:
        proxy = statistics.median(r[name] for r in rounds)
        ratio = statistics.median(r[name] / r["bare"] for r in rounds)
        rows.append(f"| {name} | {connections} | {bare:.0f} | {proxy:.0f} | {ratio:.3f} "
                    f"| >= {TARGETS[name]} |")
    return rows


if __name__ == "__main__":
    sys.exit(main())
