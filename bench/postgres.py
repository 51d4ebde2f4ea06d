"""smsproxy on PostgreSQL, in one run: POST /sms against the bare endpoint, bulk submit
against SQLite, and batch fill with three instances sharing one database.

Each round makes a fresh database on the server at ``SMSPROXY_BENCH_POSTGRES``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``) and drops it after.

    python bench/postgres.py [--rounds 5] [--seconds 3]
"""

import argparse
import os
import statistics
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import date

import psycopg
from _harness import BENCH, bare_server, smsproxy_server, stats, wrk
from psycopg.conninfo import conninfo_to_dict

ADMIN_URL = os.environ.get("SMSPROXY_BENCH_POSTGRES",
                           "postgresql://postgres@127.0.0.1:5432/postgres")
BULK = BENCH / "bulk_100.lua"
POST = BENCH / "post_sms.lua"


@contextmanager
def database() -> Iterator[str]:
    name = f"smsproxy_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = conninfo_to_dict(ADMIN_URL)
        login = parts.get("user", "postgres")
        if parts.get("password"):
            login = f"{login}:{parts['password']}"
        host, port = parts.get("host", "127.0.0.1"), parts.get("port", 5432)
        yield f"postgresql://{login}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def post_round(seconds: float) -> tuple[float, float]:
    """(bare req/s, PostgreSQL proxy req/s), one after the other, 32 connections."""
    with bare_server() as url:
        bare = wrk(f"{url}/sms", seconds=seconds, connections=32, script=POST)
    with database() as store, smsproxy_server("--store", store) as url:
        proxy = wrk(f"{url}/sms", seconds=seconds, connections=32, script=POST)
    return bare, proxy


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
    posts, bulks, fills = [], [], []
    for n in range(1, args.rounds + 1):
        bare, proxy = post_round(args.seconds)
        sqlite, postgres = bulk_round(args.seconds)
        fill = fill_round(args.seconds)
        print(f"round {n}: POST bare {bare:.0f} req/s, PostgreSQL {proxy:.0f} req/s; bulk "
              f"SQLite {sqlite:.0f} msg/s, PostgreSQL {postgres:.0f} msg/s; fill {fill:.3f}")
        posts.append(proxy / bare)
        bulks.append(postgres / sqlite)
        fills.append(fill)
    print()
    print("| figure | median of rounds (range) | target |")
    print("|---|---|---|")
    for name, values, target in (
        ("POST /sms, PostgreSQL / bare endpoint, 32 connections", posts, ">= 0.90"),
        ("bulk submit msg/s, PostgreSQL / SQLite", bulks, ">= 0.8"),
        ("batch fill, three instances under full load", fills, ">= 0.98"),
    ):
        print(f"| {name} | {statistics.median(values):.2f} ({min(values):.2f} to "
              f"{max(values):.2f}) | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
