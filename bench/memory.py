"""Memory: RSS while 1M messages go through the actors in-process (no HTTP).

Each store runs in a fresh process: submit in chunks of 1,000 (waiting whenever
the queue is full), the simulator confirms and delivers, and RSS is read after
start, at half-way and at the end. SQLite should stay flat once its bounded page
cache is warm; the memory store keeps every message, so its growth per message
is the figure.

    python bench/memory.py [--messages 1000000]
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

from actors.supervisor import Runtime, running
from smsproxy.config import Config
from smsproxy.errors import QueueFull
from smsproxy.logs import configure_logging

CHUNK = 1000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def drive(store: str, messages: int) -> None:
    config = Config(store=store, batch_size=500, max_delay=0.05, max_in_flight=8,
                    max_queue=200_000, log_level="warning")
    pairs = [("+4912345678", "Your order has shipped")] * CHUNK
    readings = []
    async with running(config) as runtime:
        readings.append(("start", rss_mb()))
        sent = 0
        while sent < messages:
            try:
                await runtime.dispatcher.submit_many(pairs)
            except QueueFull:
                await trio.sleep(0.01)
                continue
            sent += CHUNK
            if sent == messages // 2:
                await _delivered(runtime, sent)
                readings.append(("half", rss_mb()))
        await _delivered(runtime, messages)
        readings.append(("end", rss_mb()))
    start, half, end = (value for _, value in readings)
    print(f"{store:>24}: RSS {start:.0f} MB at start, {half:.0f} MB at {messages // 2:,}, "
          f"{end:.0f} MB at {messages:,} delivered; growth {end - start:+.0f} MB in all, "
          f"{end - half:+.0f} MB over the second half; "
          f"{(end - start) * 1024 * 1024 / messages:.0f} bytes per message")


async def _delivered(runtime: Runtime, count: int) -> None:
    # A poll on purpose: the stats actor answers counts; it has no event to wait on.
    while (await runtime.stats.snapshot()).messages_delivered < count:  # noqa: ASYNC110
        await trio.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--store", help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    if args.store:
        configure_logging("console", "warning")
        trio.run(drive, args.store, args.messages)
        return 0
    with tempfile.TemporaryDirectory() as work:
        for store in ("memory://", f"sqlite:///{work}/memory-bench.db"):
            subprocess.run([sys.executable, __file__, "--store", store,
                            "--messages", str(args.messages)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
