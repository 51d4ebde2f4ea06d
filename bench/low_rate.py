"""Provider calls for N messages at a low, steady rate: what batching saves when quiet.

Posts N messages at a fixed rate (well below --batch-size per --max-delay), then
compares the provider calls the proxy made with N (one call per message, as without
the proxy) and with the ideal for the max delay (one call per --max-delay window).

    python bench/low_rate.py [--messages 150] [--rate 10] [--max-delay 1.0]
"""

import argparse
import json
import math
import sys
import time
import urllib.request

from _harness import smsproxy_server, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=150)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--max-delay", type=float, default=1.0)
    args = parser.parse_args()
    body = json.dumps({"phone_number": "+4912345678", "content": "hello"}).encode()
    with smsproxy_server("--store", "sqlite:///smsproxy.db",
                         "--max-delay", str(args.max_delay)) as url:
        started = time.monotonic()
        for i in range(args.messages):
            time.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            request = urllib.request.Request(f"{url}/sms", data=body, method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        duration = time.monotonic() - started
        time.sleep(args.max_delay * 2)  # the last batch leaves
        calls = stats(url)["attempts"]
    ideal = math.ceil(duration / args.max_delay)
    print(f"{args.messages} messages at {args.rate:g}/s over {duration:.1f} s, "
          f"max delay {args.max_delay:g} s: {calls} provider calls; one per message would be "
          f"{args.messages} ({args.messages / calls:.1f}x more); the ideal for the max delay "
          f"is {ideal} ({calls / ideal:.2f}x the ideal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
