"""POST /sms throughput of smsproxy against a bare quart-trio endpoint, in one run.

The bare endpoint (bare_app.py) parses the same request model and answers alike,
with nothing behind it. All three servers run side by side and are warmed up;
each round then measures bare, memory store, SQLite store, back to back, and the
figure is the median over rounds of candidate / that round's bare.

    python bench/post_sms.py [--rounds 5] [--seconds 4] [--connections 32]
"""

import argparse
import platform
import statistics
import sys
from contextlib import ExitStack
from datetime import date

from _harness import BENCH, bare_server, smsproxy_server, wrk

STORES = {"memory": "memory://", "sqlite": "sqlite:///smsproxy.db"}
TARGETS = {"memory": 0.95, "sqlite": 0.90}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    script = BENCH / "post_sms.lua"

    def measure(url: str, seconds: float) -> float:
        return wrk(f"{url}/sms", seconds=seconds, connections=args.connections, script=script)

    print(f"# POST /sms, {date.today()}, Python {platform.python_version()}, "
          f"{args.rounds} rounds x {args.seconds:g} s each, {args.connections} connections")
    with ExitStack() as servers:
        urls = {"bare": servers.enter_context(bare_server())}
        for name, store in STORES.items():
            urls[name] = servers.enter_context(smsproxy_server("--store", store))
        for url in urls.values():
            measure(url, 2)  # warm-up
        rounds: list[dict[str, float]] = []
        for number in range(1, args.rounds + 1):
            rates = {name: measure(url, args.seconds) for name, url in urls.items()}
            rounds.append(rates)
            print(f"round {number}: " + ", ".join(f"{n} {r:.0f} req/s" for n, r in rates.items()))
    print()
    print("| store | bare req/s (median) | smsproxy req/s (median) | ratio (median of rounds) "
          "| target |")
    print("|---|---|---|---|---|")
    bare = statistics.median(r["bare"] for r in rounds)
    for name in STORES:
        proxy = statistics.median(r[name] for r in rounds)
        ratio = statistics.median(r[name] / r["bare"] for r in rounds)
        print(f"| {name} | {bare:.0f} | {proxy:.0f} | {ratio:.3f} | >= {TARGETS[name]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
