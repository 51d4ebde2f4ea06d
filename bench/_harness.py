"""Shared by the bench scripts: start servers on free ports, drive wrk, compare in rounds."""

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

__all__ = [
    "ADMIN_URL", "BENCH", "WrkResult", "bare_server", "database", "ensure_wrk", "free_port",
    "machine_busy_seconds", "median_ratio", "process_tree_cpu", "ratios", "server",
    "smsproxy_server",
    "stats", "wait_until_up", "wrk", "wrk_run",
]

BENCH = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get("SMSPROXY_BENCH_POSTGRES",
                           "postgresql://postgres@127.0.0.1:5432/postgres")


def ensure_wrk() -> str:
    """Debian's wrk, installed on first use (the bench runs as root on these machines)."""
    path = shutil.which("wrk")
    if path is None:
        print("installing wrk from Debian's packages ...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
        path = shutil.which("wrk")
    assert path, "wrk could not be installed"
    return path


@contextmanager
def server(command: Sequence[str], find_url: Callable[[str], str | None],
           tree: Path | None = None) -> Iterator[str]:
    """Run ``command``, wait until ``find_url`` finds the bound URL in its output.
    ``tree``: another checkout whose code the command runs (an A/B's baseline)."""
    env = None if tree is None else {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as workdir:
        log_path = Path(workdir) / "server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                       env=env)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for line in log_path.read_text().splitlines():
                    url = find_url(line)
                    if url:
                        yield url
                        return
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited:\n{log_path.read_text()}")
                time.sleep(0.05)
            raise RuntimeError(f"{command} did not start:\n{log_path.read_text()}")
        finally:
            if process.poll() is not None:  # it died under load: say why
                log_tail = "\n".join(log_path.read_text().splitlines()[-40:])
                print(f"{command[0]} exited with {process.returncode}:\n{log_tail}",
                      file=sys.stderr)
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _listening_event(line: str) -> str | None:
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return str(event["binds"][0]) if event.get("event") == "listening" else None


def smsproxy_server(*options: str, tree: Path | None = None) -> AbstractContextManager[str]:
    command = [sys.executable, "-m", "api.cli", "serve", "--port", "0", *options]
    return server(command, _listening_event, tree)


def bare_server() -> AbstractContextManager[str]:
    command = [sys.executable, str(BENCH / "bare_app.py"), "--port", "0"]
    return server(command, lambda line: line.split()[1] if line.startswith("listening ") else None)


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p99_ms: float
    requests: int
    """Answers wrk read in all (every one 2xx: wrk_run fails otherwise)."""


def wrk(url: str, *, seconds: float, connections: int, script: Path | None = None) -> float:
    """Requests per second that wrk measured (non-2xx answers make it fail loudly)."""
    return wrk_run(url, seconds=seconds, connections=connections, script=script).requests_per_second


def wrk_run(
    url: str, *, seconds: float, connections: int, script: Path | None = None,
    refusals: bool = False,
) -> WrkResult:
    """``refusals``: non-2xx answers are part of the load (a 422 on purpose), not a fault."""
    command = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx or 3xx responses" in output and not refusals:
        raise RuntimeError(f"wrk saw error answers:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    assert rate and p99 and total, output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return WrkResult(float(rate.group(1)), float(p99.group(1)) * scale, int(total.group(1)))


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=30) as answer:
        return json.load(answer)  # type: ignore[no-any-return]


def median_ratio(pairs: Sequence[tuple[float, float]]) -> float:
    """Median over rounds of (candidate / baseline) measured back to back."""
    return statistics.median(candidate / baseline for baseline, candidate in pairs)


def ratios(candidates: Sequence[float], baselines: Sequence[float]) -> list[float]:
    """Each round's candidate / that round's baseline."""
    return [c / b for c, b in zip(candidates, baselines, strict=True)]


@contextmanager
def database() -> Iterator[str]:
    name = f"smsproxy_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = conninfo_to_dict(ADMIN_URL)
        login = parts.get("user", "postgres")
        if parts.get("password"):
            login = f"{login}:{parts['password']}"
        host, port = parts.get("host", "127.0.0.1"), parts.get("port", 5432)
        yield f"postgresql://{login}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and all its descendants so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid or stat.parent.name == str(pid) or _descends(stat, pid):
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _descends(stat: Path, ancestor: int) -> bool:
    parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    while parent > 1:
        if parent == ancestor:
            return True
        try:
            parent = int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str, probe: str = "/readyz") -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}{probe}", timeout=1):
                time.sleep(1)  # every worker up, not only the first
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
