"""Status callbacks, in one run: bulk submit with a callback for every event against
the same without callbacks (messages/s), and how long a callback takes from the
status change to a healthy local receiver (p50, p99).

    python bench/callbacks.py [--rounds 3] [--seconds 3]
"""

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from _harness import BENCH, smsproxy_server, wrk

SECRET = "bench-secret"


class _Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a receiver that a shop would run
    latencies: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            at = datetime.fromisoformat(json.loads(body)["at"].replace("Z", "+00:00"))
        except ValueError:  # cut off by a proxy stopped at the end of its round
            return
        _Receiver.latencies.append(time.time() - at.timestamp())
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a proxy stopped at the end of its round resets its connections


@contextmanager
def receiver() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


def bulk_script(callback_url: str | None, directory: Path) -> Path:
    """A wrk script posting 100 messages per request, each with the callback URL."""
    items = [{"phone_number": f"+4915000000{n:02d}", "content": f"Order {n} shipped"}
             | ({"callback_url": callback_url} if callback_url else {}) for n in range(100)]
    script = directory / ("bulk_callbacks.lua" if callback_url else "bulk_plain.lua")
    body = json.dumps({"messages": items})
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = [[{body}]]\n")
    return script


def bulk_round(seconds: float, hook: str, directory: Path) -> tuple[float, float]:
    """(without callbacks, with callbacks) messages accepted a second, SQLite store."""
    rates = []
    for url in (None, hook):
        with tempfile.TemporaryDirectory() as workdir, smsproxy_server(
                "--store", f"sqlite:///{workdir}/bench.db", "--callback-secret", SECRET,
                "--callback-allow-private") as proxy:
            rates.append(wrk(f"{proxy}/sms/bulk", seconds=seconds, connections=8,
                             script=bulk_script(url, directory)) * 100)
    return rates[0], rates[1]


def latency_round(hook: str, messages: int = 200, rate: float = 50.0) -> list[float]:
    """Seconds from each status change to its callback's arrival, at a steady rate."""
    _Receiver.latencies.clear()
    with tempfile.TemporaryDirectory() as workdir, smsproxy_server(
            "--store", f"sqlite:///{workdir}/bench.db", "--callback-secret", SECRET,
            "--callback-allow-private", "--max-delay", "0.2") as proxy:
        for n in range(messages):
            body = json.dumps({"phone_number": "+4912345678", "content": f"m{n}",
                               "callback_url": hook}).encode()
            request = urllib.request.Request(f"{proxy}/sms", data=body,
                                             headers={"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=10).close()
            time.sleep(1 / rate)
        deadline = time.monotonic() + 30
        while len(_Receiver.latencies) < 3 * messages and time.monotonic() < deadline:
            time.sleep(0.1)
    return list(_Receiver.latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    args = parser.parse_args()
    print(f"# status callbacks, {date.today()}, {socket.gethostname()}, "
          f"{args.rounds} rounds x {args.seconds:g} s")
    ratios = []
    with receiver() as hook, tempfile.TemporaryDirectory(dir=BENCH) as scripts:
        for n in range(1, args.rounds + 1):
            plain, hooked = bulk_round(args.seconds, hook, Path(scripts))
            ratios.append(hooked / plain)
            print(f"round {n}: bulk without callbacks {plain:.0f} msg/s, with {hooked:.0f} "
                  f"msg/s ({hooked / plain:.2f})")
        latencies = sorted(latency_round(hook))
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan")
    print()
    print("| figure | result | target |")
    print("|---|---|---|")
    print(f"| bulk msg/s with a callback per event / without, SQLite | "
          f"{statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f}) | >= 0.7 |")
    print(f"| callback latency, status change to receiver, 50 msg/s, {len(latencies)} "
          f"callbacks | p50 {1000 * p50:.0f} ms, p99 {1000 * p99:.0f} ms | p99 <= 1 s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
