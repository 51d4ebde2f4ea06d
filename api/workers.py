"""``smsproxy serve --workers N``: N processes behind one port, counted as one.

The parent starts N ``smsproxy serve`` processes with the same configuration (by
environment), each binding the port with ``SO_REUSEPORT``, so the kernel spreads
connections over them; they share the PostgreSQL store, as separate instances
would. It forwards SIGTERM/SIGINT to them. It supervises them as a process manager
would: a worker that dies unasked is started again in its place (the others serve
meanwhile) after a pause that doubles with each death in a row; only when workers
die ``MAX_DEATHS`` times within ``DEATH_WINDOW`` seconds does the parent stop the set
and exit 1, for the process manager above it to decide. When the parent
itself dies without a word (SIGKILL, the OOM killer), the kernel sends each worker
SIGTERM (Linux's parent-death signal), so that no orphan set keeps serving.

Each worker writes its counters, every second, to a folder the set shares (a
snapshot for ``/stats`` and a Prometheus text for ``/metrics``, each replaced
atomically); whichever worker takes a scrape sums them. A worker that died keeps
its last file, so totals never go backwards (a replacement starts its own file);
the gauge of batches in flight is summed over the workers that wrote in the last few
seconds only. A file that cannot be written or read (a full ``/tmp``) is skipped and
logged, never the end of a worker.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry

from actors.stats import Snapshot
from smsproxy.config import OPTIONS, Config, env_name

__all__ = ["FRESH_SECONDS", "merge_expositions", "merge_snapshots", "publish", "read_shared",
           "run_workers"]

log = structlog.get_logger("smsproxy.workers")

PR_SET_PDEATHSIG = 1
"""prctl(2): the signal a process gets when its parent dies."""

FRESH_SECONDS = 5.0
"""A worker's file older than this is a dead worker's: its gauges no longer count."""

_MAX_GAUGES = frozenset({"smsproxy_queue_depth", "smsproxy_callbacks_pending",
                         "smsproxy_callback_oldest_pending_seconds", "smsproxy_queue_capacity",
                         "process_max_fds"})
"""Gauges every worker reads from the shared store (or the same limit): the same figure,
not to be summed."""
_MIN_GAUGES = frozenset({"process_start_time_seconds"})
"""The set started when its first worker did."""

_SHARED_READINGS = frozenset({"callbacks_pending"})
"""The same in /stats."""


MAX_DEATHS = 5
DEATH_WINDOW = 60.0
"""More deaths than ``MAX_DEATHS`` within this many seconds stop the set (OTP's
restart intensity): a worker that cannot stay up is a fault to report, not to hide."""
RESTART_PAUSE, MAX_RESTART_PAUSE = 0.5, 10.0


def run_workers(config: Config) -> int:
    """Run ``config.workers`` serving processes until a signal; the exit code."""
    shared = Path(tempfile.mkdtemp(prefix="smsproxy-workers-"))
    environment = _worker_environment(config, shared)
    base = config.effective_instance_name

    def start(n: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "api.cli", "serve"],
                                env=environment | {env_name("instance_name"): f"{base}/{n}"},
                                preexec_fn=_terminate_with_parent(os.getpid()))

    children = {n: start(n) for n in range(1, config.workers + 1)}
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    log.info("workers_started", workers=len(children),
             pids=[c.pid for c in children.values()])
    deaths: list[float] = []
    restart_at: dict[int, float] = {}
    failed = False
    try:
        while any(child.poll() is None for child in children.values()) or (
                restart_at and not stopping):
            now = time.monotonic()
            for n, child in children.items():
                if stopping or n in restart_at or child.poll() is None:
                    continue
                deaths = [at for at in deaths if at > now - DEATH_WINDOW] + [now]
                pause = min(MAX_RESTART_PAUSE, RESTART_PAUSE * 2 ** (len(deaths) - 1))
                if len(deaths) > MAX_DEATHS:
                    log.critical("workers_dying", deaths=len(deaths), window=DEATH_WINDOW,
                                 pid=child.pid, exit_code=child.returncode)
                    failed = True
                    forward(signal.SIGTERM, None)
                    break
                log.error("worker_died", pid=child.pid, exit_code=child.returncode,
                          worker=n, restart_in=pause)
                restart_at[n] = now + pause
            for n, at in list(restart_at.items()):
                if stopping:
                    del restart_at[n]
                elif now >= at:
                    del restart_at[n]
                    children[n] = start(n)
                    log.info("worker_restarted", worker=n, pid=children[n].pid)
            time.sleep(0.1)
    finally:
        for path in shared.iterdir():
            path.unlink()
        shared.rmdir()
    codes = [child.returncode for child in children.values()]
    return 0 if stopping and not failed and all(code == 0 for code in codes) else 1


def _terminate_with_parent(parent: int) -> Callable[[], None] | None:
    """What a worker runs before it starts: SIGTERM to it when ``parent`` dies.

    None where the C library has no ``prctl`` (not Linux): the set then relies on
    its process manager to stop the workers."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None:
        return None

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def _worker_environment(config: Config, shared: Path) -> dict[str, str]:
    environment = dict(os.environ)
    for option in OPTIONS:
        value = getattr(config, option.name)
        if value is not None and value != "":
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            environment[env_name(option.name)] = text
    environment[env_name("workers")] = "1"
    environment[env_name("reuse_port")] = "true"
    environment[env_name("shared_stats")] = str(shared)
    return environment


def publish(folder: Path, snapshot: Snapshot, exposition: bytes, in_flight: int) -> None:
    """This worker's figures, each file replaced at once (a reader never sees half);
    ``OSError`` when the folder cannot take them."""
    name = str(os.getpid())
    _replace(folder / f"{name}.json",
             json.dumps({"snapshot": asdict(snapshot), "in_flight": in_flight}).encode())
    _replace(folder / f"{name}.prom", exposition)


def _replace(path: Path, content: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def read_shared(folder: Path) -> tuple[list[tuple[float, dict[str, Any]]], list[str]]:
    """Every worker's (age, snapshot file) and Prometheus text."""
    now = time.time()
    snapshots = []
    for path in folder.glob("*.json"):
        with suppress(OSError, ValueError):  # gone meanwhile, or unreadable: skipped
            snapshots.append((now - path.stat().st_mtime, json.loads(path.read_text())))
    texts = []
    for path in folder.glob("*.prom"):
        with suppress(OSError, ValueError):
            texts.append(path.read_text())
    return snapshots, texts


def merge_snapshots(files: Iterable[tuple[float, Mapping[str, Any]]]) -> tuple[Snapshot, int]:
    """The workers' counters summed, and the batches in flight of the live ones."""
    totals: dict[str, int] = defaultdict(int)
    by_attempt: dict[int, int] = defaultdict(int)
    keys: dict[str, dict[str, float]] = {}
    last_error = None
    in_flight = 0
    for age, content in files:
        snapshot = content["snapshot"]
        for name, value in snapshot.items():
            if name == "success_by_attempt":
                for attempt, count in value.items():
                    by_attempt[int(attempt)] += count
            elif name == "keys":
                for key, bill in value.items():
                    mine = keys.setdefault(key, {})
                    for figure, amount in bill.items():
                        mine[figure] = mine.get(figure, 0) + amount
            elif name == "last_error":
                last_error = value or last_error
            elif name in _SHARED_READINGS:
                totals[name] = max(totals[name], value)
            else:
                totals[name] += value
        if age <= FRESH_SECONDS:
            in_flight += content["in_flight"]
    snapshot = Snapshot(**totals, success_by_attempt=dict(sorted(by_attempt.items())),
                        last_error=last_error, keys=dict(sorted(keys.items())))
    return snapshot, in_flight


def merge_expositions(texts: Iterable[str]) -> bytes:
    """The workers' Prometheus texts as one: samples with the same name and labels
    summed (the queue depth, which each reads from the shared store, maximised)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(texts))
    return generate_latest(registry)


class _Merged(Collector):
    def __init__(self, texts: Iterable[str]) -> None:
        self.families: dict[str, Metric] = {}
        values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
        for text in texts:
            for family in text_string_to_metric_families(text):
                merged = self.families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    key = (merged.name, sample.name, tuple(sorted(sample.labels.items())))
                    if family.name in _MAX_GAUGES:
                        values[key] = max(values.get(key, sample.value), sample.value)
                    elif family.name in _MIN_GAUGES:
                        values[key] = min(values.get(key, sample.value), sample.value)
                    else:
                        values[key] = values.get(key, 0.0) + sample.value
        for (family_name, sample_name, labels), value in values.items():
            self.families[family_name].add_sample(sample_name, dict(labels), value)

    def collect(self) -> Iterator[Metric]:
        yield from self.families.values()
