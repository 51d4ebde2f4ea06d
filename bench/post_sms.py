"""POST /sms throughput of smsproxy against a bare quart-trio endpoint, in one run.

Rounds alternate baseline and candidate (A B A B ...); the figure is the median of
the per-round ratios, so a noisy machine moves both sides of each ratio alike.

    python bench/post_sms.py [--rounds 3] [--seconds 5] [--connections 32]
"""

import argparse
import platform
import statistics
import sys
from datetime import date

from _harness import BENCH, bare_server, median_ratio, smsproxy_server, wrk

STORES = {"memory": "memory://", "sqlite": "sqlite:///smsproxy.db"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--store", action="append", choices=sorted(STORES))
    args = parser.parse_args()
    stores = args.store or sorted(STORES)
    script = BENCH / "post_sms.lua"

    def measure(url: str) -> float:
        return wrk(f"{url}/sms", seconds=args.seconds, connections=args.connections, script=script)

    print(f"# POST /sms, {date.today()}, {platform.python_version()}, "
          f"{args.rounds} rounds x {args.seconds:g} s, {args.connections} connections")
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in stores}
    with bare_server() as bare_url:
        wrk(f"{bare_url}/sms", seconds=1, connections=args.connections, script=script)  # warm-up
        for round_number in range(1, args.rounds + 1):
            for name in stores:
                with smsproxy_server("--store", STORES[name]) as proxy_url:
                    wrk(f"{proxy_url}/sms", seconds=1, connections=args.connections,
                        script=script)  # warm-up
                    baseline = measure(bare_url)
                    candidate = measure(proxy_url)
                results[name].append((baseline, candidate))
                print(f"round {round_number} {name:>7}: bare {baseline:8.0f} req/s, "
                      f"smsproxy {candidate:8.0f} req/s, ratio {candidate / baseline:.3f}")
    print()
    print("| store | bare req/s (median) | smsproxy req/s (median) | ratio (median of rounds) |")
    print("|---|---|---|---|")
    for name, pairs in results.items():
        bare = statistics.median(b for b, _ in pairs)
        proxy = statistics.median(c for _, c in pairs)
        print(f"| {name} | {bare:.0f} | {proxy:.0f} | {median_ratio(pairs):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
