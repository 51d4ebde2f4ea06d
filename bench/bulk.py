"""Bulk submit: messages per second accepted and delivered, durably, in one run.

`smsproxy serve` with the SQLite store (default fsync durability) and the
in-process simulator, which confirms and delivers everything. wrk posts bulk
requests of 100 messages; accepted/s comes from wrk, delivered/s from /stats (the
time until every accepted message is DELIVERED). Single-message POST /sms
requests/s is measured against the same build for comparison.

    python bench/bulk.py [--seconds 10] [--connections 8] [--rounds 3]
"""

import argparse
import platform
import statistics
import sys
import time
from datetime import date

from _harness import BENCH, smsproxy_server, stats, wrk

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
    accepted, delivered, single = [], [], []
    for round_number in range(1, args.rounds + 1):
        print(f"round {round_number}")
        a, d = bulk_round(args.seconds, args.connections, args.option)
        accepted.append(a)
        delivered.append(d)
        single.append(single_round(args.seconds, 32, args.option))
    print()
    print("| figure | median of rounds |")
    print("|---|---|")
    print(f"| bulk (100/request), accepted msg/s | {statistics.median(accepted):.0f} |")
    print(f"| bulk (100/request), delivered msg/s | {statistics.median(delivered):.0f} |")
    print(f"| single POST /sms, req/s | {statistics.median(single):.0f} |")
    print(f"| bulk accepted / single, ratio | "
          f"{statistics.median(a / s for a, s in zip(accepted, single, strict=True)):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
