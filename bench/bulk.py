"""Bulk submit: messages per second accepted and delivered, durably, in one run.

`smsproxy serve` with the SQLite store (default fsync durability, the event history
on, as it ships) and the in-process simulator, which confirms and delivers
everything. wrk posts bulk requests of 100 messages; accepted/s comes from wrk,
delivered/s from /stats (the time until every accepted message is DELIVERED). Each
round also measures the bare quart-trio endpoint's POST requests/s (32
connections), the baseline of the targets, and its bulk route (the same body parsed,
validated and answered, nothing behind it: the front door's own ceiling), and
smsproxy's single POST /sms; and
the store alone, in this process with no HTTP and no actors: groups of 100
messages saved in one transaction, then confirmed and delivered in another, which is
the most any server on that store can reach.

    python bench/bulk.py [--seconds 10] [--connections 8] [--rounds 3]
"""

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _harness import BENCH, bare_server, ratios, smsproxy_server, stats, wrk

from smsproxy.models import Outgoing, new_messages
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores.sqlite import SqliteStore

PER_REQUEST = 100


def bulk_round(seconds: float, connections: int, options: list[str]) -> tuple[float, float]:
    with smsproxy_server("--store", "sqlite:///smsproxy.db", *options) as url:
        started = time.monotonic()
        requests = wrk(f"{url}/sms/bulk", seconds=seconds, connections=connections,
                       script=BENCH / "bulk_100.lua")
        load_seconds = time.monotonic() - started
        accepted = stats(url)["messages_accepted"]
        while (delivered := stats(url)["messages_delivered"]) < accepted:
            if time.monotonic() - started > seconds * 20:
                raise RuntimeError(f"only {delivered} of {accepted} delivered")
            time.sleep(0.05)
        all_delivered = time.monotonic() - started
    print(f"  bulk: {requests:.0f} req/s x {PER_REQUEST} = {requests * PER_REQUEST:.0f} msg/s "
          f"accepted; {accepted} delivered in {all_delivered:.1f} s "
          f"({accepted / all_delivered:.0f} msg/s; load ran {load_seconds:.1f} s)")
    return requests * PER_REQUEST, accepted / all_delivered


def single_round(seconds: float, connections: int, options: list[str]) -> float:
    with smsproxy_server("--store", "sqlite:///smsproxy.db", *options) as url:
        rate = wrk(f"{url}/sms", seconds=seconds, connections=connections,
                   script=BENCH / "post_sms.lua")
    print(f"  single POST /sms: {rate:.0f} req/s")
    return rate


def bare_round(seconds: float, connections: int) -> tuple[float, float]:
    """The bare endpoint's POST /sms req/s, and its bulk route's msg/s: the front door
    with nothing behind it (no store, no history), the ceiling of bulk in one process."""
    with bare_server() as url:
        rate = wrk(f"{url}/sms", seconds=seconds, connections=32, script=BENCH / "post_sms.lua")
        bulk = PER_REQUEST * wrk(f"{url}/sms/bulk", seconds=seconds, connections=connections,
                                 script=BENCH / "bulk_100.lua")
    print(f"  bare endpoint POST /sms: {rate:.0f} req/s; POST /sms/bulk: {bulk:.0f} msg/s")
    return rate, bulk


def store_round(messages: int = 100_000) -> float:
    """Messages a second through the SQLite store alone: saved, confirmed, delivered."""
    items = [Outgoing("+4912345678", "Your order has shipped")] * PER_REQUEST
    with tempfile.TemporaryDirectory() as folder:
        store = SqliteStore(str(Path(folder) / "store.db"))
        repository = Repository(store)
        started = time.perf_counter()
        for _ in range(messages // PER_REQUEST):
            group = new_messages(items, time.time())
            with store.transaction():
                repository.save_all([(group, None, 0.0, None)])
            with store.transaction():
                repository.apply_in_order([(m.id, status) for status in
                                           (Status.CONFIRMED, Status.DELIVERED) for m in group])
        rate = messages / (time.perf_counter() - started)
        store.close()
    print(f"  the store alone: {rate:.0f} msg/s saved, confirmed and delivered")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--option", action="append", default=[],
                        help="extra `smsproxy serve` option, e.g. --option=--batch-size=500")
    args = parser.parse_args()
    print(f"# bulk submit, {date.today()}, Python {platform.python_version()}, "
          f"{args.rounds} rounds x {args.seconds:g} s, {args.connections} connections, "
          f"options {args.option or 'none'}")
    accepted, delivered, single, bare, bare_bulk, store = [], [], [], [], [], []
    for round_number in range(1, args.rounds + 1):
        print(f"round {round_number}")
        rate, bulk = bare_round(args.seconds, args.connections)
        bare.append(rate)
        bare_bulk.append(bulk)
        store.append(store_round())
        a, d = bulk_round(args.seconds, args.connections, args.option)
        accepted.append(a)
        delivered.append(d)
        single.append(single_round(args.seconds, 32, args.option))
    print()
    print("| figure | median of rounds (range) |")
    print("|---|---|")
    for name, values, digits in (
        ("bulk (100/request), accepted msg/s", accepted, 0),
        ("bulk (100/request), delivered msg/s", delivered, 0),
        ("single POST /sms, req/s", single, 0),
        ("bare endpoint POST /sms, req/s", bare, 0),
        ("bare endpoint POST /sms/bulk, msg/s (nothing behind it)", bare_bulk, 0),
        ("the SQLite store alone, msg/s saved, confirmed and delivered", store, 0),
        ("bulk accepted msg/s / bare req/s (target >= 45)", ratios(accepted, bare), 1),
        ("bulk delivered msg/s / bare req/s (target >= 45)", ratios(delivered, bare), 1),
        ("the bare bulk route msg/s / bare req/s (the front door's ceiling)",
         ratios(bare_bulk, bare), 1),
        ("the store alone / bare req/s", ratios(store, bare), 1),
        ("bulk delivered msg/s / the store alone", ratios(delivered, store), 2),
        ("bulk accepted msg/s / single POST req/s", ratios(accepted, single), 1),
    ):
        print(f"| {name} | {statistics.median(values):.{digits}f} "
              f"({min(values):.{digits}f} to {max(values):.{digits}f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
