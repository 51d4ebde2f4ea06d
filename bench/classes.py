"""Delivery classes under a mixed load: provider calls and each class's time to the
provider, against one --max-delay for everything and against the ideal.

20 messages a second for 60 s, 10% class ``otp`` (0.5 s), 90% class ``marketing``
(600 s), batches of 100, SQLite. The same arrivals (one seeded sequence) go to:
  (a) a proxy with ``--max-delay 0.5`` and no classes, and
  (b) a proxy with ``--class otp=0.5 --class marketing=600``.
The ideal comes from the run's own arrival times: a window opens with each OTP that
arrives after the previous flush and closes at its deadline (one call per window),
plus one call per full batch.

    python bench/classes.py [--seconds 60] [--rate 20] [--seed 7]
"""

import argparse
import json
import random
import re
import sys
import tempfile
import time
import urllib.request

from _harness import smsproxy_server, stats

BATCH = 100
OTP, MARKETING = 0.5, 600.0


def arrivals(seconds: float, rate: float, seed: int) -> list[tuple[float, str]]:
    """(seconds into the run, class) for each message, evenly spaced."""
    rng = random.Random(seed)
    return [(n / rate, "otp" if rng.random() < 0.1 else "marketing")
            for n in range(int(seconds * rate))]


def ideal_calls(plan: list[tuple[float, str]], end: float) -> int:
    """Calls a perfect batcher makes by ``end``, flushing only at OTP deadlines and full
    batches."""
    calls, waiting, window_closes = 0, 0, None
    for at, kind in plan:
        if window_closes is not None and at >= window_closes:
            calls, waiting, window_closes = calls + 1, 0, None
        waiting += 1
        if kind == "otp" and window_closes is None:
            window_closes = at + OTP
        if waiting == BATCH:
            calls, waiting, window_closes = calls + 1, 0, None
    if window_closes is not None and window_closes <= end:
        calls += 1
    return calls


def drive(url: str, plan: list[tuple[float, str]], with_classes: bool) -> None:
    start = time.monotonic()
    for at, kind in plan:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = {"phone_number": "+4912345678", "content": f"{kind} text"}
        if with_classes:
            body["class"] = kind
        request = urllib.request.Request(f"{url}/sms", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()


def p99_bound(metrics: str, label: str) -> str:
    """The smallest histogram bucket holding 99% of a class's messages."""
    buckets = [(float(le), float(count)) for le, count in re.findall(
        rf'smsproxy_time_to_provider_seconds_bucket{{class="{label}",le="([^"]+)"}} (\S+)',
        metrics) if le != "+Inf"]
    total = float(re.search(rf'smsproxy_time_to_provider_seconds_count{{class="{label}"}} '
                            rf'(\S+)', metrics).group(1))  # type: ignore[union-attr]
    for le, count in buckets:
        if total and count >= 0.99 * total:
            return f"<= {le:g} s"
    return "over the largest bucket"


def run(options: list[str], plan: list[tuple[float, str]], with_classes: bool,
        seconds: float) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as workdir, smsproxy_server(
            "--store", f"sqlite:///{workdir}/bench.db", "--batch-size", str(BATCH),
            *options) as url:
        drive(url, plan, with_classes)
        time.sleep(1.0)  # the last OTP's deadline, and its call
        calls = stats(url)["attempts"]
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
    return calls, metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    plan = arrivals(args.seconds, args.rate, args.seed)
    otps = sum(1 for _, kind in plan if kind == "otp")
    ideal = ideal_calls(plan, args.seconds + 1.0)
    flat_calls, flat_metrics = run(["--max-delay", "0.5"], plan, False, args.seconds)
    class_calls, class_metrics = run(["--max-delay", "0.5", "--class", "otp=0.5",
                                      "--class", "marketing=600"], plan, True, args.seconds)
    print(f"{len(plan)} messages in {args.seconds:g} s, {otps} of them OTPs")
    print(f"provider calls: one --max-delay 0.5: {flat_calls}; with classes: {class_calls}; "
          f"ideal: {ideal}")
    print(f"classes / ideal: {class_calls / ideal:.2f} (target <= 1.1); classes / one "
          f"max-delay: {class_calls / flat_calls:.2f}")
    print(f"OTP time to provider, p99: {p99_bound(class_metrics, 'otp')} (target <= 0.6 s); "
          f"marketing: {p99_bound(class_metrics, 'marketing')}; "
          f"everything with one max-delay: {p99_bound(flat_metrics, 'default')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
