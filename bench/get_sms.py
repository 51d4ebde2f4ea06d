"""GET /sms/<id> throughput of smsproxy (SQLite store) against a bare quart-trio endpoint.

The id is a real, delivered message, so the proxy answers from its store.
Rounds alternate baseline and candidate; the figure is the median of the ratios.

    python bench/get_sms.py [--rounds 3] [--seconds 5] [--connections 32]
"""

import argparse
import json
import statistics
import sys
import time
import urllib.request
import uuid

from _harness import bare_server, median_ratio, smsproxy_server, wrk


def post_one(url: str) -> str:
    body = json.dumps({"phone_number": "+4912345678", "content": "hello"}).encode()
    request = urllib.request.Request(f"{url}/sms", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        message_id: str = json.load(answer)["id"]
    time.sleep(1.5)  # past max_delay: sent, confirmed and delivered
    return message_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    pairs = []
    with bare_server() as bare_url, smsproxy_server("--store", "sqlite:///smsproxy.db") as url:
        message_id = post_one(url)
        proxy_get = f"{url}/sms/{message_id}"
        bare_get = f"{bare_url}/sms/{uuid.uuid4()}"
        for target in (bare_get, proxy_get):  # warm-up
            wrk(target, seconds=1, connections=args.connections)
        for round_number in range(1, args.rounds + 1):
            baseline = wrk(bare_get, seconds=args.seconds, connections=args.connections)
            candidate = wrk(proxy_get, seconds=args.seconds, connections=args.connections)
            pairs.append((baseline, candidate))
            print(f"round {round_number}: bare {baseline:.0f} req/s, smsproxy {candidate:.0f} "
                  f"req/s, ratio {candidate / baseline:.3f}")
    bare = statistics.median(b for b, _ in pairs)
    proxy = statistics.median(c for _, c in pairs)
    print(f"GET /sms/<id>: bare {bare:.0f} req/s, smsproxy {proxy:.0f} req/s, "
          f"ratio {median_ratio(pairs):.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
