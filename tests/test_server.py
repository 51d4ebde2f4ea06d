"""Against real servers: hypercorn in this process, and `smsproxy serve` as a process."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from smsproxy.config import Config
from smsproxy.service import serve

PHONE = "+4912345678"


async def wait_for_status(client: httpx.AsyncClient, message_id: str, wanted: str) -> dict:
    with trio.fail_after(10):
        while True:
            body = (await client.get(f"/sms/{message_id}")).json()
            if body["status"] == wanted:
                return body
            await trio.sleep(0.02)


async def test_in_process_server_delivers_and_shuts_down_cleanly(nursery):
    stop = trio.Event()
    config = Config(port=0, batch_size=10, max_delay=0.05)
    stopped = trio.Event()

    async def run_service(task_status=trio.TASK_STATUS_IGNORED):
        await serve(config, stop=stop, handle_signals=False, task_status=task_status)
        stopped.set()

    [base_url] = await nursery.start(run_service)
    async with httpx.AsyncClient(base_url=base_url) as client:
        answers = [
            await client.post("/sms", json={"phone_number": PHONE, "content": f"m{i}"})
            for i in range(25)
        ]
        assert {a.status_code for a in answers} == {202}
        for answer in answers:
            await wait_for_status(client, answer.json()["id"], "DELIVERED")
        stats = (await client.get("/stats")).json()
        assert stats["messages_sent"] == 25
        assert stats["batches_sent"] < 25
        missing = await client.get("/missing")
        assert (missing.status_code, "error" in missing.json()) == (404, True)
    stop.set()
    with trio.fail_after(10):
        await stopped.wait()


@pytest.fixture
def proxy_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`smsproxy serve` on a free port; yields the process, its URL and its log file."""
    log_path = tmp_path / "smsproxy.log"
    env = os.environ | {"SMSPROXY_PORT": "0", "SMSPROXY_MAX_DELAY": "0.05"}
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "smsproxy.cli", "serve", "--store", "memory://"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, text=True, cwd=tmp_path,
        )
    try:
        yield process, _wait_for_listening(log_path, process), log_path
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_for_listening(log_path: Path, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for event in read_events(log_path):
            if event.get("event") == "listening":
                return str(event["binds"][0])
        if process.poll() is not None:
            raise AssertionError(f"smsproxy exited early:\n{log_path.read_text()}")
        time.sleep(0.05)
    raise AssertionError(f"smsproxy did not start:\n{log_path.read_text()}")


def read_events(log_path: Path) -> list[dict]:
    events = []
    for line in log_path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # hypercorn's own plain-text start-up line
    return events


@pytest.mark.e2e
async def test_serve_process_delivers_then_exits_0_on_sigterm(proxy_process):
    process, base_url, log_path = proxy_process
    async with httpx.AsyncClient(base_url=base_url) as client:
        accepted = await client.post("/sms", json={"PhoneNumber": PHONE, "Content": "hello"})
        assert accepted.status_code == 202
        body = await wait_for_status(client, accepted.json()["id"], "DELIVERED")
        assert body == {"id": accepted.json()["id"], "status": "DELIVERED"}
        unknown = await client.get(f"/sms/{uuid.uuid4()}")
        assert unknown.json()["status"] == "NOT_FOUND"
        bad = await client.post("/sms", content=b"{oops")
        assert bad.status_code == 400
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    events = read_events(log_path)
    names = [e["event"] for e in events]
    assert "batch_sent" in names
    assert names[-1] == "stopped"
    errors = [e for e in events if e.get("level") in {"error", "critical"}]
    assert errors == [], errors
    logged = log_path.read_text()
    assert "hello" not in logged  # message content is never logged
