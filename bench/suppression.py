"""The cost of the suppression list (issue 30): a load of 100,000 numbers of which 1 %
opted out, against the same server with an empty list, in one run.

Three figures:
- the check alone: ``suppressed()`` on a SQLite store holding the 1,000 entries, for
  a group of one number and of 100 (µs a message), against the same on an empty list;
- POST /sms throughput with the list against without it (wrk, random numbers of the
  100,000; every round measures both, back to back, alternating which goes first),
  as the median ratio: the opted-out 1 % are answered 422 and never stored;
- the provider requests 100,000 messages cost with and without the list (sent as
  bulk requests of 1,000; a request refused for its opted-out items is sent again
  without them, as a shop would), read from /stats once every message has left.

    python bench/suppression.py [--rounds 9] [--seconds 2] [--connections 64]
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
from contextlib import ExitStack
from datetime import date
from pathlib import Path

from _harness import BENCH, smsproxy_server, stats, wrk_run

from smsproxy.compliance import Suppression
from smsproxy.stores.sqlite import SqliteStore

NUMBERS = 100_000
OPTED_OUT = [f"+49151{i:08d}" for i in range(0, NUMBERS, 100)]
"""1 % of the numbers: every hundredth."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    print(f"# suppression list, {date.today()}, Python {platform.python_version()}, "
          f"{len(OPTED_OUT):,} of {NUMBERS:,} numbers opted out")
    check_alone()
    with ExitStack() as servers:
        throughput(pair(servers), args.rounds, args.seconds, args.connections)
    with ExitStack() as servers:  # fresh servers: their /stats count this load alone
        provider_requests(pair(servers))
    return 0


def pair(servers: ExitStack) -> dict[str, str]:
    """Two SQLite servers, ``without`` the list and ``with`` it (the 1 % opted out)."""
    folder = Path(servers.enter_context(tempfile.TemporaryDirectory()))
    urls = {name: servers.enter_context(smsproxy_server(
        "--store", f"sqlite:///{folder}/{name}.db", "--max-queue", "10000000"))
        for name in ("without", "with")}
    for number in OPTED_OUT:
        _request(urls["with"], "PUT", f"/suppressions/{number}", b"{}")
    return urls


def check_alone() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for listed in (False, True):
            store = SqliteStore(Path(folder) / f"{listed}.db")
            if listed:
                with store.transaction():
                    for number in OPTED_OUT:
                        store.suppress(Suppression(number, "bench", "bench", 0.0))
            for group in (1, 100):
                numbers = [f"+49151{i:08d}" for i in range(7, 7 + group * 13, 13)]
                runs = 2000 // group
                seconds = min(timeit.repeat(lambda s=store, n=numbers: s.suppressed(n),
                                            number=runs, repeat=5))
                print(f"check alone, {'1,000 listed' if listed else 'empty list'}, groups of "
                      f"{group}: {seconds / runs / group * 1e6:.2f} µs a message")
            store.close()


def throughput(urls: dict[str, str], rounds: int, seconds: float, connections: int) -> None:
    script = BENCH / "suppression.lua"
    for url in urls.values():  # warm-up
        wrk_run(f"{url}/sms", seconds=seconds, connections=connections, script=script,
                refusals=True)
    figures: dict[str, list[float]] = {"without": [], "with": []}
    for round_number in range(rounds):
        order = list(urls) if round_number % 2 == 0 else list(reversed(urls))
        for name in order:
            result = wrk_run(f"{urls[name]}/sms", seconds=seconds, connections=connections,
                             script=script, refusals=True)
            figures[name].append(result.requests_per_second)
    ratios = [w / wo for w, wo in zip(figures["with"], figures["without"], strict=True)]
    print(f"POST /sms, SQLite, {connections} connections: without the list "
          f"{statistics.median(figures['without']):,.0f}/s, with it "
          f"{statistics.median(figures['with']):,.0f}/s; ratio with/without median "
          f"{statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")


def provider_requests(urls: dict[str, str]) -> None:
    numbers = [f"+49151{i:08d}" for i in range(NUMBERS)]
    for name, url in urls.items():
        refused = 0
        for start in range(0, NUMBERS, 1000):
            items = [{"phone_number": n, "content": "Your order has shipped"}
                     for n in numbers[start:start + 1000]]
            status, body = _request(url, "POST", "/sms/bulk",
                                    json.dumps({"messages": items}).encode())
            if status == 422:
                named = {entry["index"] for entry in body["opted_out"]}
                refused += len(named)
                items = [item for i, item in enumerate(items) if i not in named]
                status, body = _request(url, "POST", "/sms/bulk",
                                        json.dumps({"messages": items}).encode())
            assert status == 202, body
        deadline = time.monotonic() + 300
        while (figures := stats(url))["queue_depth"] and time.monotonic() < deadline:
            time.sleep(0.5)
        print(f"{NUMBERS:,} messages {name} the list: {refused:,} refused (422), "
              f"{figures['messages_sent']:,} sent in {figures['attempts']:,} provider requests")


def _request(url: str, method: str, path: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}{path}", data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


if __name__ == "__main__":
    sys.exit(main())
