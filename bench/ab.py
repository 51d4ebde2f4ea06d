"""A/B against another checkout: this tree's server and a baseline's, in the same rounds.

Per round, the order rotating: the bare endpoint's POST /sms (32 connections), then
for each server on the SQLite store (default durability, history on): single
POST /sms req/s (32 connections), the batch fill under that load (messages per
provider call / batch size), and bulk submit (100 a request, 8 connections)
accepted and delivered msg/s. The figures are medians of per-round ratios.

    git worktree add /tmp/baseline <commit>
    python bench/ab.py --baseline /tmp/baseline [--rounds 6] [--seconds 5]
"""

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from _harness import BENCH, bare_server, ratios, smsproxy_server, stats, wrk

PER_REQUEST = 100
BATCH_SIZE = 100


def single(tree: Path | None, seconds: float) -> tuple[float, float]:
    """req/s, and the batch fill of what the load sent."""
    with smsproxy_server("--store", "sqlite:///smsproxy.db", tree=tree) as url:
        rate = wrk(f"{url}/sms", seconds=seconds, connections=32, script=BENCH / "post_sms.lua")
        time.sleep(1.5)  # the last batch leaves
        figures = stats(url)
    fill = figures["messages_sent"] / max(1, figures["success"]) / BATCH_SIZE
    return rate, fill


def bulk(tree: Path | None, seconds: float) -> tuple[float, float]:
    """Accepted and delivered msg/s."""
    with smsproxy_server("--store", "sqlite:///smsproxy.db", tree=tree) as url:
        started = time.monotonic()
        requests = wrk(f"{url}/sms/bulk", seconds=seconds, connections=8,
                       script=BENCH / "bulk_100.lua")
        accepted = stats(url)["messages_accepted"]
        while stats(url)["messages_delivered"] < accepted:
            if time.monotonic() - started > seconds * 20:
                raise RuntimeError("not everything was delivered")
            time.sleep(0.05)
        return requests * PER_REQUEST, accepted / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    print(f"# A/B against {args.baseline}, {date.today()}, {args.rounds} rounds")
    figures: dict[str, dict[str, list[float]]] = {"this": {}, "baseline": {}}
    bare: list[float] = []
    for round_number in range(args.rounds):
        with bare_server() as url:
            bare.append(wrk(f"{url}/sms", seconds=args.seconds, connections=32,
                            script=BENCH / "post_sms.lua"))
        sides = [("this", None), ("baseline", args.baseline)]
        for name, tree in sides if round_number % 2 == 0 else sides[::-1]:
            rate, fill = single(tree, args.seconds)
            accepted, delivered = bulk(tree, args.seconds)
            for key, value in (("single", rate), ("fill", fill), ("bulk accepted", accepted),
                               ("bulk delivered", delivered)):
                figures[name].setdefault(key, []).append(value)
            print(f"round {round_number + 1} {name}: single {rate:.0f} req/s (bare "
                  f"{bare[-1]:.0f}), fill {fill:.3f}, bulk {accepted:.0f} accepted, "
                  f"{delivered:.0f} delivered msg/s")
    this, base = figures["this"], figures["baseline"]
    print()
    print("| figure | this | baseline | this / baseline |")
    print("|---|---|---|---|")
    mine, theirs = ratios(this["single"], bare), ratios(base["single"], bare)
    print(f"| single POST /sms, SQLite / bare | {statistics.median(mine):.2f}"
          f" | {statistics.median(theirs):.2f}"
          f" | {statistics.median(ratios(this['single'], base['single'])):.2f} |")
    for key in ("bulk accepted", "bulk delivered", "fill"):
        print(f"| {key} | {statistics.median(this[key]):.3g} | "
              f"{statistics.median(base[key]):.3g} | "
              f"{statistics.median(ratios(this[key], base[key])):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
