"""``--workers`` supervises its workers: a worker killed with SIGKILL is replaced while
the others serve, nothing acknowledged is lost, and the set's counters go on."""

import os
import signal
from contextlib import suppress

import httpx
import pytest
import trio

from tests.processes import ServiceProcess, free_port, until, wait_for_status
from tests.test_instances import listening_twice

pytestmark = pytest.mark.e2e

PHONE = "+4912345678"
SECRET = "hook-secret"


async def test_a_killed_worker_is_replaced_while_the_other_serves(tmp_path, postgres_url):
    port = free_port()
    # A provider of its own process, as a real one is: the killed worker's batches
    # are still delivered, and its reports come to whichever worker takes them.
    provider = ServiceProcess(tmp_path, "--callback-url",
                              f"http://127.0.0.1:{port}/provider/status", "--secret", SECRET,
                              command="fake-provider", name="provider")
    workers = ServiceProcess(tmp_path, "--workers", "2", "--port", str(port), "--store",
                             postgres_url, "--max-delay", "0.05", "--claim-lease", "3",
                             "--provider-timeout", "2", "--provider", provider.url,
                             "--webhook-secret", SECRET, name="workers", wait=False)
    url = f"http://127.0.0.1:{port}"
    try:
        with trio.fail_after(30):
            await listening_twice(workers)
        [first, _] = workers.event("workers_started")["pids"]
        acknowledged: list[str] = []
        codes: list[int] = []
        refused = 0

        async def post_steadily(seconds: float) -> None:
            nonlocal refused
            deadline = trio.current_time() + seconds
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                while trio.current_time() < deadline:
                    try:
                        answer = await client.post(
                            "/sms", json={"phone_number": PHONE, "content": "steady"},
                            headers={"Connection": "close"})  # spread over the workers
                    except httpx.TransportError:
                        refused += 1  # queued at the killed worker's socket
                        continue
                    codes.append(answer.status_code)
                    if answer.status_code == 202:
                        acknowledged.append(answer.json()["id"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_steadily, 4.0)
            await trio.sleep(1.0)
            before = await accepted(url)
            os.kill(first, signal.SIGKILL)
        assert set(codes) == {202}
        assert refused <= 5, refused
        with trio.fail_after(30):
            await until(lambda: workers.event("worker_restarted") is not None)
            await until(lambda: sum(e.get("event") == "listening"
                                    for e in workers.events()) == 3)
        died = workers.event("worker_died")
        assert died is not None and died["pid"] == first and died["exit_code"] == -9
        assert workers.process.poll() is None
        with trio.fail_after(60):
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                for message_id in acknowledged:
                    await wait_for_status(client, message_id, "DELIVERED")
        # The killed worker's last second of counts died with it; what it had
        # published stays, and the replacement counts on from there.
        scrapes = [await accepted(url) for _ in range(6)]
        assert all(before <= count <= len(acknowledged) for count in scrapes), (before, scrapes)
        workers.process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await workers.exit_code() == 0
        unexpected = [e for e in workers.error_events()
                      if not (isinstance(e, dict) and e.get("event") == "worker_died")]
        assert unexpected == []
    finally:
        workers.stop()
        provider.stop()
        started = workers.event("workers_started")
        for pid in started["pids"] if started else []:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def accepted(url: str) -> int:
    async with httpx.AsyncClient(base_url=url) as client:
        return int((await client.get("/stats")).json()["messages_accepted"])
