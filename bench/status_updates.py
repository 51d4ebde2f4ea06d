"""Status updates applied per second, through the webhook in reports of 100, SQLite store.

Stores N messages (bulk requests, held unsent: a batch size and delay that never
flush during the run, so nothing but the webhook changes them), then wrk posts
reports of 100 ids: CONFIRMED for all, then DELIVERED
for all (2N updates). The figure is 2N over the time until /stats counts them
all applied.

    python bench/status_updates.py [--messages 50000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _harness import BENCH, ensure_wrk, smsproxy_server, stats

REPORT_SIZE = 100


def store_messages(url: str, count: int) -> list[str]:
    ids: list[str] = []
    body = json.dumps({"messages": [{"phone_number": "+4912345678", "content": "hi"}] * 1000})
    for _ in range(count // 1000):
        request = urllib.request.Request(f"{url}/sms/bulk", data=body.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            ids += [m["id"] for m in json.load(answer)["messages"]]
    return ids


def write_reports(ids: list[str], path: Path) -> None:
    with path.open("w") as reports:
        # wrk builds one request before the load starts and may not send it: lead with
        # an empty report, harmless either way.
        reports.write("{}\n")
        for status in ("CONFIRMED", "DELIVERED"):
            for start in range(0, len(ids), REPORT_SIZE):
                chunk = ids[start : start + REPORT_SIZE]
                reports.write(json.dumps(dict.fromkeys(chunk, status)) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, smsproxy_server(
        "--store", "sqlite:///smsproxy.db", "--batch-size", str(args.messages * 2),
        "--max-delay", "3600", "--max-queue", str(args.messages * 2),
    ) as url:
        ids = store_messages(url, args.messages)
        reports = Path(work) / "reports.jsonl"
        write_reports(ids, reports)
        target = stats(url)["updates_applied"] + 2 * len(ids)
        command = [ensure_wrk(), "-t1", "-c8", "-d120s", "-s", str(BENCH / "status_reports.lua"),
                   url]
        started = time.monotonic()
        load = subprocess.Popen(command, env=os.environ | {"SMSPROXY_REPORTS": str(reports)},
                                stdout=subprocess.DEVNULL)
        try:
            while (applied := stats(url)["updates_applied"]) < target:
                if time.monotonic() - started > 110:
                    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
                        codes = [line for line in answer.read().decode().splitlines()
                                 if 'route="/provider/status"' in line]
                    raise RuntimeError(f"only {applied} of {target} updates applied: {codes}")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        finally:
            load.terminate()
            load.wait()
    rate = 2 * len(ids) / elapsed
    print(f"{2 * len(ids)} status updates ({len(ids)} messages, reports of {REPORT_SIZE}) "
          f"applied in {elapsed:.1f} s: {rate:.0f} updates/s (target >= 20000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
