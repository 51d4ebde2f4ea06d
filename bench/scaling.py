"""Per machine: POST /sms with `--workers` 1, 2 and 4 on PostgreSQL against the bare
single-process endpoint, and the CPU each spends per 1,000 messages.

Every round runs each server on its own (a fresh database for each smsproxy), in an
order that rotates from round to round: a 1 s warm-up, then wrk for ``--seconds`` at
``--connections``. CPU comes from /proc: the server's process tree (user + system,
PostgreSQL's backends not included) and the whole machine's busy time (PostgreSQL,
wrk and all). Every answer counted must be a 202 whose message is committed: the
rows the round added are counted in the database, and the round fails if fewer.

    python bench/scaling.py [--rounds 5] [--seconds 3] [--connections 64] [--bulk]

With ``--bulk``, the load is `POST /sms/bulk` with 100 messages a request (8
connections unless told), the bare endpoint answers the same body, and the rates
and the CPU are per message.
"""

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from _harness import (
    BENCH,
    database,
    free_port,
    machine_busy_seconds,
    process_tree_cpu,
    ratios,
    wait_until_up,
    wrk_run,
)

BARE = "bare"
WORKER_COUNTS = (1, 2, 4)


@dataclass(frozen=True)
class Load:
    path: str
    script: Path
    messages_per_request: int


SINGLE = Load("/sms", BENCH / "post_sms.lua", 1)
BULK = Load("/sms/bulk", BENCH / "bulk_100.lua", 100)


@dataclass(frozen=True)
class Reading:
    messages_per_second: float
    """Requests a second times the messages a request carries."""
    server_cpu_per_1000: float
    machine_cpu_per_1000: float


@contextmanager
def running(command: list[str], port: int, probe: str) -> Iterator[tuple[str, int]]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, probe)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def committed(store: str) -> int:
    with psycopg.connect(store) as db:
        row = db.execute("SELECT count(*) FROM smsproxy_messages").fetchone()
    assert row is not None
    return int(row[0])


def measure(
    url: str, pid: int, seconds: float, connections: int, load: Load
) -> tuple[Reading, int]:
    """Messages a second, and the CPU per 1,000 messages; and the messages answered."""
    target = f"{url}{load.path}"
    wrk_run(target, seconds=1, connections=connections, script=load.script)  # warm-up
    time.sleep(0.3)  # the warm-up's last answers committed
    server_before, machine_before = process_tree_cpu(pid), machine_busy_seconds()
    result = wrk_run(target, seconds=seconds, connections=connections, script=load.script)
    server_cpu = process_tree_cpu(pid) - server_before
    machine_cpu = machine_busy_seconds() - machine_before
    messages = result.requests * load.messages_per_request
    per_1000 = 1000 / messages
    return Reading(result.requests_per_second * load.messages_per_request,
                   server_cpu * per_1000, machine_cpu * per_1000), messages


def bare_round(seconds: float, connections: int, load: Load) -> Reading:
    port = free_port()
    command = [sys.executable, str(BENCH / "bare_app.py"), "--port", str(port)]
    with running(command, port, f"/sms/{uuid.UUID(int=1)}") as (url, pid):
        reading, _ = measure(url, pid, seconds, connections, load)
    return reading


def workers_round(workers: int, seconds: float, connections: int, load: Load) -> Reading:
    port = free_port()
    with database() as store:
        command = [sys.executable, "-m", "api.cli", "serve", "--store", store,
                   "--port", str(port), "--workers", str(workers)]
        with running(command, port, "/readyz") as (url, pid):
            time.sleep(0.3)
            before = committed(store)
            reading, answered = measure(url, pid, seconds, connections, load)
            time.sleep(0.5)
            added = committed(store) - before
        if added < answered:
            raise RuntimeError(f"{answered} answers 202 but only {added} messages committed")
    return reading


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--bulk", action="store_true", help="POST /sms/bulk, 100 a request")
    args = parser.parse_args()
    load = BULK if args.bulk else SINGLE
    connections = args.connections or (8 if args.bulk else 64)
    print(f"# --workers scaling on PostgreSQL, {date.today()}, {load.path}, {args.rounds} "
          f"rounds x {args.seconds:g} s, {connections} connections")
    servers: list[str | int] = [BARE, *WORKER_COUNTS]
    readings: dict[str | int, list[Reading]] = {name: [] for name in servers}
    for n in range(args.rounds):
        line = []
        for name in servers[n % len(servers):] + servers[:n % len(servers)]:
            if name == BARE:
                reading = bare_round(args.seconds, connections, load)
            else:
                reading = workers_round(int(name), args.seconds, connections, load)
            readings[name].append(reading)
            line.append(f"{name}: {reading.messages_per_second:.0f} msg/s "
                        f"({reading.server_cpu_per_1000:.2f} / "
                        f"{reading.machine_cpu_per_1000:.2f} CPU-s per 1,000)")
        print(f"round {n + 1}: " + "; ".join(line), flush=True)
    print()
    print("| server | messages/s, median (range) | / bare, median of rounds | CPU-s per 1,000 "
          "messages: server processes | whole machine |")
    print("|---|---|---|---|---|")
    for name in servers:
        rates = [r.messages_per_second for r in readings[name]]
        to_bare = ratios(rates, [b.messages_per_second for b in readings[BARE]])
        label = "bare quart-trio endpoint, one process" if name == BARE else \
            f"smsproxy --workers {name}, PostgreSQL"
        print(f"| {label} | {statistics.median(rates):.0f} ({min(rates):.0f} to "
              f"{max(rates):.0f}) | {statistics.median(to_bare):.2f} ({min(to_bare):.2f} to "
              f"{max(to_bare):.2f}) | "
              f"{statistics.median(r.server_cpu_per_1000 for r in readings[name]):.2f} | "
              f"{statistics.median(r.machine_cpu_per_1000 for r in readings[name]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
