"""Shared by the bench scripts: start servers on free ports, drive wrk, compare in rounds."""

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH", "WrkResult", "bare_server", "ensure_wrk", "median_ratio", "server", "smsproxy_server",
    "stats", "wrk", "wrk_run",
]

BENCH = Path(__file__).resolve().parent


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
def server(command: Sequence[str], find_url: Callable[[str], str | None]) -> Iterator[str]:
    """Run ``command``, wait until ``find_url`` finds the bound URL in its output."""
    with tempfile.TemporaryDirectory() as workdir:
        log_path = Path(workdir) / "server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
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


def smsproxy_server(*options: str) -> AbstractContextManager[str]:
    command = [sys.executable, "-m", "api.cli", "serve", "--port", "0", *options]
    return server(command, _listening_event)


def bare_server() -> AbstractContextManager[str]:
    command = [sys.executable, str(BENCH / "bare_app.py"), "--port", "0"]
    return server(command, lambda line: line.split()[1] if line.startswith("listening ") else None)


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p99_ms: float


def wrk(url: str, *, seconds: float, connections: int, script: Path | None = None) -> float:
    """Requests per second that wrk measured (non-2xx answers make it fail loudly)."""
    return wrk_run(url, seconds=seconds, connections=connections, script=script).requests_per_second


def wrk_run(
    url: str, *, seconds: float, connections: int, script: Path | None = None
) -> WrkResult:
    command = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx or 3xx responses" in output:
        raise RuntimeError(f"wrk saw error answers:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    assert rate and p99, output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return WrkResult(float(rate.group(1)), float(p99.group(1)) * scale)


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=30) as answer:
        return json.load(answer)  # type: ignore[no-any-return]


def median_ratio(pairs: Sequence[tuple[float, float]]) -> float:
    """Median over rounds of (candidate / baseline) measured back to back."""
    return statistics.median(candidate / baseline for baseline, candidate in pairs)
