"""Where a bulk-submitted message's CPU goes: microseconds per message by stage.

`smsproxy serve` on SQLite (default durability, history on, the simulator), bulk load
(100 a request, 8 connections) for ``--seconds``, then the drain until every message
is DELIVERED, sampled by py-spy (``pip install py-spy``) at 100 Hz on every thread.
Each sample goes to the first stage (in the order below) that a frame of its stack
belongs to, but for a thread's idle waits (told apart by the innermost frame); the
sum over stages is the busy time per message, and the same by thread says which of
the two (the event loop, the store's thread) is the serial one. The stages are read
off function names; a thread waiting for the GIL may still count as busy, and two
runs differ by a few microseconds per stage.

    python bench/cost_model.py [--seconds 5]
"""

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import BENCH, server, stats, wrk

RATE = 100
STAGES = [
    ("status reports (updater, rules, store)", ["ApplyInOrder.apply", "UpdateMany.apply",
                                                "actors/updater.py"]),
    ("claim", ["Claim.apply"]),
    ("mark sent, park, renew", ["MarkSent.apply", "Park.apply", "Renew.apply"]),
    ("save: messages and ACCEPTED events", ["Repository.save_all"]),
    ("commit (fsync) and transaction", ["SqliteStore.transaction"]),
    ("other repository requests", ["actors/_repository_lanes.py"]),
    ("bulk body: JSON and validation", ["model_validate", "json/decoder"]),
    ("message objects, ids, segments", ["new_messages", "new_ids", "segments.py",
                                        "validation.py"]),
    ("answer JSON", ["jsonify", "json/encoder"]),
    ("logging", ["structlog", "smsproxy/logs.py"]),
    ("dispatcher and senders", ["actors/dispatcher.py", "actors/sender.py", "tenacity"]),
    ("simulator", ["actors/simulator.py"]),
    ("stats and metrics", ["actors/stats.py", "prometheus_client", "smsproxy/metrics.py"]),
    ("HTTP server and routes (hypercorn, quart, h11)", ["hypercorn", "quart", "h11",
                                                         "api/sms.py", "api/connections.py"]),
    ("trio scheduler, threads and I/O", ["trio/"]),
]


IDLE = "idle: the event loop in epoll, the store thread waiting for a job"
IDLE_LEAVES = ("EpollIOManager.get_events", "WorkerThread._work")
"""Frames a thread waits in. py-spy counts them as busy on this machine (its idle
detection misses them), so they are told apart here, by the innermost frame."""
STORE_THREAD = "Trio thread"


def stage_of(stack: str) -> str:
    if stack.rsplit(";", 1)[-1].startswith(IDLE_LEAVES):
        return IDLE
    return next((name for name, keys in STAGES if any(key in stack for key in keys)), "other")


def classify(samples: Path) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """Samples by stage, and the busy ones by thread (the event loop, the store's)."""
    counts: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in samples.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stage = stage_of(stack)
        counts[stage] += int(count)
        if stage != IDLE:
            thread = "store thread" if STORE_THREAD in stack.split(";", 1)[0] else "event loop"
            threads[thread] += int(count)
    return counts, threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--keep", type=Path, help="copy py-spy's raw samples to this file")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    pid: list[int] = []

    def listening(line: str) -> str | None:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            return None
        if event.get("event") != "listening":
            return None
        pid.append(int(event["instance"].rsplit(":", 1)[1]))  # host:pid by default
        return str(event["binds"][0])

    command = [sys.executable, "-m", "api.cli", "serve", "--port", "0",
               "--store", "sqlite:///smsproxy.db"]
    with tempfile.TemporaryDirectory() as folder, server(command, listening) as url:
        samples = Path(folder) / "samples.txt"
        recording = subprocess.Popen(
            [spy, "record", "-p", str(pid[0]), "-r", str(RATE), "-f", "raw", "--threads",
             "-o", str(samples), "-d", str(int(args.seconds * 4))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # py-spy attaches
        wrk(f"{url}/sms/bulk", seconds=args.seconds, connections=8,
            script=BENCH / "bulk_100.lua")
        accepted = stats(url)["messages_accepted"]
        while stats(url)["messages_delivered"] < accepted:
            time.sleep(0.05)
        recording.wait()
        counts, threads = classify(samples)
        if args.keep:
            shutil.copy(samples, args.keep)
    idle = counts.pop(IDLE, 0)
    total = sum(counts.values())
    per_message = total / RATE / accepted * 1e6
    print(f"{accepted} messages, {total / RATE:.2f} busy thread-seconds sampled "
          f"({idle / RATE:.2f} idle left out): {per_message:.0f} µs a message, "
          f"{1e6 / per_message:,.0f} msg/s if one thread did it all")
    for thread, count in threads.most_common():
        spent = count / RATE / accepted * 1e6
        print(f"  {thread}: {spent:.0f} µs a message (alone, {1e6 / spent:,.0f} msg/s)")
    print("| stage | µs a message | share |\n|---|---|---|")
    for name, count in counts.most_common():
        print(f"| {name} | {count / RATE / accepted * 1e6:.1f} | {count / total:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
