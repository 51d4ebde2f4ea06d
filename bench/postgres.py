"""smsproxy on PostgreSQL, in one run: POST /sms against the bare endpoint, bulk submit
against SQLite, and batch fill with three instances sharing one database
(``--workers`` is bench/scaling.py's).

Each round makes a fresh database on the server at ``SMSPROXY_BENCH_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``) and drops it after.

    python bench/postgres.py [--rounds 5] [--seconds 3]
"""

import argparse
import statistics
import sys
from contextlib import ExitStack
from datetime import date

from _harness import (
    BENCH,
    bare_server,
    database,
    smsproxy_server,
    stats,
    wrk,
)

BULK = BENCH / "bulk_100.lua"
POST = BENCH / "post_sms.lua"


def post_ratios(rounds: int, seconds: float) -> list[float]:
    """PostgreSQL proxy req/s / bare req/s at 32 connections, per round: both servers
    run side by side for the whole measurement, and each round starts with the other
    one (on a noisy machine, pairs measured close together compare best)."""
    ratios = []
    with bare_server() as bare_url, database() as store, \
            smsproxy_server("--store", store) as proxy_url:
        for n in range(rounds):
            order = [bare_url, proxy_url] if n % 2 == 0 else [proxy_url, bare_url]
            rates = {url: wrk(f"{url}/sms", seconds=seconds, connections=32, script=POST)
                     for url in order}
            ratios.append(rates[proxy_url] / rates[bare_url])
            print(f"  POST round {n + 1}: bare {rates[bare_url]:.0f} req/s, PostgreSQL "
                  f"{rates[proxy_url]:.0f} req/s")
    return ratios


def bulk_round(seconds: float) -> tuple[float, float]:
    """(SQLite, PostgreSQL) messages accepted a second through POST /sms/bulk."""
    with smsproxy_server("--store", "sqlite:///smsproxy.db") as url:
        sqlite = wrk(f"{url}/sms/bulk", seconds=seconds, connections=8, script=BULK) * 100
    with database() as store, smsproxy_server("--store", store) as url:
        postgres = wrk(f"{url}/sms/bulk", seconds=seconds, connections=8, script=BULK) * 100
    return sqlite, postgres


def fill_round(seconds: float, batch_size: int = 100) -> float:
    """Three instances under full load: messages per provider call / batch size."""
    with database() as store, ExitStack() as servers:
        urls = [servers.enter_context(smsproxy_server(
            "--store", store, "--instance-name", name, "--batch-size", str(batch_size)))
            for name in "abc"]
        for url in urls:
            wrk(f"{url}/sms", seconds=seconds, connections=32, script=POST)
        totals = [stats(url) for url in urls]
    messages = sum(s["messages_sent"] for s in totals)
    calls = sum(s["batches_sent"] for s in totals)
    return messages / calls / batch_size if calls else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args()
    print(f"# PostgreSQL, {date.today()}, {args.rounds} rounds x {args.seconds:g} s")
    posts = post_ratios(3 * args.rounds, 1.0)
    bulks, fills = [], []
    for n in range(1, args.rounds + 1):
        sqlite, postgres = bulk_round(args.seconds)
        fill = fill_round(args.seconds)
        print(f"round {n}: bulk SQLite {sqlite:.0f} msg/s, PostgreSQL {postgres:.0f} msg/s; "
              f"fill {fill:.3f}")
        bulks.append(postgres / sqlite)
        fills.append(fill)
    print()
    print("| figure | median of rounds (range) | target |")
    print("|---|---|---|")
    for name, values, target in (
        ("POST /sms, PostgreSQL / bare endpoint, 32 connections, rounds of 1 s",
         posts, ">= 0.90"),
        ("bulk submit msg/s, PostgreSQL / SQLite", bulks, ">= 0.8"),
        ("batch fill, three instances under full load", fills, ">= 0.98"),
    ):
        print(f"| {name} | {statistics.median(values):.2f} ({min(values):.2f} to "
              f"{max(values):.2f}) | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
