"""POST latency with a slow provider, and how full batches are under full load.

p99 of POST /sms with a provider that takes 2 s per call, against one that answers
at once (memory store, same load, alternating rounds): a POST never waits on the
provider, so the ratio should stay near 1. From the instant runs: messages per
provider call divided by the batch size (batch fill).

    python bench/latency.py [--rounds 3] [--seconds 5] [--connections 32]
"""

import argparse
import statistics
import sys

from _harness import BENCH, smsproxy_server, stats, wrk_run

BATCH_SIZE = 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    script = BENCH / "post_sms.lua"
    ratios, fills = [], []
    for round_number in range(1, args.rounds + 1):
        p99 = {}
        for name, latency in (("instant", "0"), ("2 s", "2")):
            with smsproxy_server("--store", "memory://", "--sim-latency", latency,
                                 "--batch-size", str(BATCH_SIZE)) as url:
                result = wrk_run(f"{url}/sms", seconds=args.seconds,
                                 connections=args.connections, script=script)
                p99[name] = result.p99_ms
                if name == "instant":
                    counts = stats(url)
                    fills.append(counts["messages_sent"] / counts["batches_sent"] / BATCH_SIZE)
        ratios.append(p99["2 s"] / p99["instant"])
        print(f"round {round_number}: POST p99 {p99['instant']:.1f} ms (instant provider), "
              f"{p99['2 s']:.1f} ms (2 s provider), ratio {ratios[-1]:.2f}; "
              f"batch fill {fills[-1]:.3f}")
    print(f"POST p99 with a 2 s provider / instant provider: {statistics.median(ratios):.2f} "
          f"(target <= 1.5)")
    print(f"batch fill under full load: {statistics.median(fills):.3f} (target >= 0.98)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
