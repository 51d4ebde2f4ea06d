"""Against real servers: hypercorn in this process, and `smsproxy serve` as a process."""

import gc
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from api.serving import GC_THRESHOLDS, serve, tune_garbage_collector
from smsproxy.config import Config
from tests.processes import ServiceProcess, wait_for_status

PHONE = "+4912345678"


async def test_in_process_server_delivers_and_shuts_down_cleanly(nursery, tmp_path):
    stop = trio.Event()
    config = Config(port=0, batch_size=10, max_delay=0.05, store=f"sqlite:///{tmp_path}/s.db")
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
        with trio.fail_after(15):
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
def proxy_process(tmp_path: Path) -> Iterator[ServiceProcess]:
    proxy = ServiceProcess(tmp_path, "--store", "memory://", "--max-delay", "0.05")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.mark.e2e
async def test_serve_process_delivers_then_exits_0_on_sigterm(proxy_process):
    async with proxy_process.client() as client:
        accepted = await client.post("/sms", json={"PhoneNumber": PHONE, "Content": "hello"})
        assert accepted.status_code == 202
        with trio.fail_after(15):
            body = await wait_for_status(client, accepted.json()["id"], "DELIVERED")
        assert body == {"id": accepted.json()["id"], "status": "DELIVERED",
                        "phone_number": PHONE, "provider": "simulator"}
        unknown = await client.get(f"/sms/{uuid.uuid4()}")
        assert unknown.json()["status"] == "NOT_FOUND"
        bad = await client.post("/sms", content=b"{oops")
        assert bad.status_code == 400
    proxy_process.process.send_signal(signal.SIGTERM)
    with trio.fail_after(15):
        assert await proxy_process.exit_code() == 0
    names = [e["event"] for e in proxy_process.events()]
    assert "batch_sent" in names
    assert names[-1] == "stopped"
    assert proxy_process.error_events() == []
    assert "hello" not in proxy_process.log_path.read_text()  # content is never logged


def test_the_serve_command_tunes_the_collector_for_a_long_running_process():
    before = gc.get_threshold()
    gc.unfreeze()  # the CLI tests may have tuned this process already
    gc.set_threshold(700, 10, 10)  # Python's defaults
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0  # start-up objects are out of the collector's sight
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
