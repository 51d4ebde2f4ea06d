"""Real `smsproxy` processes for end-to-end tests, on free ports, with readable logs."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio


def free_port() -> int:
    """A port free right now, for a process whose address must be known before it starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServiceProcess:
    """`smsproxy COMMAND ARGS` in ``workdir`` (port 0 unless ARGS say otherwise).

    Its log goes to a file; the URL comes from its ``listening`` event. The
    constructor waits for it with ``time.sleep``, for sync tests and fixtures; an
    async test uses ``await ServiceProcess.launch(...)``, which waits with trio.
    """

    @classmethod
    async def launch(cls, workdir: Path, *args: str, **options: Any) -> "ServiceProcess":
        started = cls(workdir, *args, wait=False, **options)
        with trio.fail_after(20):
            started.url = (await wait_for_event(started, "listening"))["binds"][0]
        return started

    def __init__(
        self, workdir: Path, *args: str, command: str = "serve", name: str = "smsproxy",
        wait: bool = True, preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.log_path = workdir / f"{name}.log"
        env = os.environ | {"SMSPROXY_PORT": "0"}
        if command == "fake-provider" and "--port" not in args:
            args = ("--port", "0", *args)
        with self.log_path.open("w") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", command, *args],
                stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                preexec_fn=preexec_fn,
            )
        self.url = self._wait_for("listening", timeout=20)["binds"][0] if wait else ""

    def events(self) -> list[dict]:
        events = []
        for line in self.log_path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # hypercorn's own plain-text start-up line
        return events

    def event(self, name: str) -> dict | None:
        return next((e for e in self.events() if e.get("event") == name), None)

    def error_events(self) -> list[dict | str]:
        """Error-level events, and hypercorn's plain-text error lines (tracebacks)."""
        plain = [line for line in self.log_path.read_text().splitlines() if "[ERROR]" in line]
        return [e for e in self.events() if e.get("level") in {"error", "critical"}] + plain

    def poll_event(self, name: str) -> dict | None:
        """The event if it is in the log by now; raises if the process has ended without it."""
        found = self.event(name)
        if found is None and self.process.poll() is not None:
            raise AssertionError(f"smsproxy exited early:\n{self.log_path.read_text()}")
        return found

    def _wait_for(self, name: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.poll_event(name)
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {name!r} event in time:\n{self.log_path.read_text()}")

    async def exit_code(self) -> int:
        """Wait for the process to end, in a thread: the event loop goes on. Callers
        bound the wait with trio.fail_after."""
        return await trio.to_thread.run_sync(self.process.wait, abandon_on_cancel=True)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_to_exit(workdir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """`smsproxy ARGS` in ``workdir``, until it exits by itself; its output, apart."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args], cwd=workdir, capture_output=True,
        text=True, timeout=timeout, env=os.environ | {"SMSPROXY_PORT": "0"},
    )


def log_events(stdout: str) -> list[dict]:
    events = []
    for line in stdout.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


async def wait_for_status(client: httpx.AsyncClient, message_id: str, wanted: str) -> dict:
    """Poll until the message has ``wanted``; callers bound the wait with trio.fail_after."""
    while True:
        body = (await client.get(f"/sms/{message_id}")).json()
        if body["status"] == wanted:
            return body
        await trio.sleep(0.02)


async def wait_for_event(process: ServiceProcess, name: str) -> dict:
    """Poll the process's log for an event; callers bound the wait with trio.fail_after."""
    while True:
        found = process.poll_event(name)
        if found is not None:
            return found
        await trio.sleep(0.05)


async def until(condition: Callable[[], bool]) -> None:
    """Poll until ``condition()`` holds; callers bound the wait with trio.fail_after."""
    while True:
        if condition():
            return
        await trio.sleep(0.05)
