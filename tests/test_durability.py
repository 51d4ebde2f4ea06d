"""A 202 is a promise: kill -9, SIGTERM and restarts lose no acknowledged message."""

import signal
import time

import pytest
import trio

from tests.processes import ServiceProcess, wait_for_status

pytestmark = pytest.mark.e2e

PHONE = "+4912345678"


async def post_many(proxy: ServiceProcess, count: int) -> list[str]:
    ids: list[str] = []
    async with proxy.client() as client:

        async def post(i: int) -> None:
            answer = await client.post("/sms", json={"phone_number": PHONE, "content": f"m{i}"})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(post, i)
    return ids


async def assert_all_delivered(proxy: ServiceProcess, ids: list[str]) -> None:
    async with proxy.client() as client:
        with trio.fail_after(30):
            for message_id in ids:
                await wait_for_status(client, message_id, "DELIVERED")


async def test_kill_9_loses_no_acknowledged_message(tmp_path):
    store = "sqlite:///messages.db"
    slow = await ServiceProcess.launch(
        tmp_path, "--store", store, "--sim-latency", "3", "--batch-size", "10",
        "--max-delay", "0.05", "--max-in-flight", "1", name="first",
    )
    try:
        ids = await post_many(slow, 60)
        async with slow.client() as client:
            statuses = {(await client.get(f"/sms/{i}")).json()["status"] for i in ids}
        assert statuses == {"ACCEPTED"}  # the slow provider has delivered none yet
    finally:
        slow.process.send_signal(signal.SIGKILL)
        with trio.fail_after(15):
            await slow.exit_code()

    restarted = await ServiceProcess.launch(
        tmp_path, "--store", store, "--max-delay", "0.05", name="second"
    )
    try:
        assert restarted.event("recovered")["messages"] == 60
        await assert_all_delivered(restarted, ids)
        assert restarted.error_events() == []
    finally:
        restarted.stop()


async def test_sigterm_flushes_a_half_full_batch_within_the_grace_period(tmp_path):
    store = "sqlite:///messages.db"
    proxy = await ServiceProcess.launch(
        tmp_path, "--store", store, "--batch-size", "100", "--max-delay", "60",
        "--shutdown-grace", "5", name="first",
    )
    try:
        ids = await post_many(proxy, 7)
        started = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await proxy.exit_code() == 0
        assert time.monotonic() - started < 5
    finally:
        proxy.stop()
    [sent] = [e for e in proxy.events() if e["event"] == "batch_sent"]
    assert sent["messages"] == 7
    assert proxy.error_events() == []

    restarted = await ServiceProcess.launch(tmp_path, "--store", store, name="second")
    try:
        assert restarted.event("recovered")["messages"] == 0  # nothing was left behind
        await assert_all_delivered(restarted, ids)
    finally:
        restarted.stop()


async def test_sigterm_with_a_hung_provider_exits_after_the_grace_period(tmp_path):
    store = "sqlite:///messages.db"
    proxy = await ServiceProcess.launch(
        tmp_path, "--store", store, "--sim-latency", "1000", "--max-delay", "0.01",
        "--shutdown-grace", "1", name="first",
    )
    try:
        ids = await post_many(proxy, 5)
        await trio.sleep(0.3)  # real time: let the batch reach the hung provider
        started = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await proxy.exit_code() == 0
        assert time.monotonic() - started < 4
    finally:
        proxy.stop()
    assert proxy.event("shutdown_grace_exceeded") is not None

    restarted = await ServiceProcess.launch(
        tmp_path, "--store", store, "--max-delay", "0.01", name="second"
    )
    try:
        assert restarted.event("recovered")["messages"] == 5
        await assert_all_delivered(restarted, ids)
    finally:
        restarted.stop()


async def test_after_the_retention_window_a_message_and_its_history_are_gone(tmp_path):
    """Within the window the feed carries every event across a restart; after it the
    message answers NOT_FOUND, its events leave the feed, and the purge is counted."""
    args = ("--store", "sqlite:///messages.db", "--batch-size", "1", "--retention", "10")
    first = await ServiceProcess.launch(tmp_path, *args, name="first")
    try:
        [message_id] = await post_many(first, 1)
        await assert_all_delivered(first, [message_id])
    finally:
        first.stop()
    restarted = await ServiceProcess.launch(tmp_path, *args, name="second")
    try:
        async with restarted.client() as client:
            feed = (await client.get("/events", params={"limit": 10})).json()
            assert [e["status"] for e in feed["events"]] == ["ACCEPTED", "CONFIRMED", "DELIVERED"]
            with trio.fail_after(25):
                await wait_for_status(client, message_id, "NOT_FOUND")
            assert (await client.get(f"/sms/{message_id}/events")).json()["events"] == []
            assert (await client.get("/events")).json()["events"] == []
            assert (await client.get("/stats")).json()["messages_purged"] == 1
            assert "smsproxy_messages_purged_total 1.0" in (await client.get("/metrics")).text
        assert restarted.event("housekeeping_done")["messages_purged"] == 1
        assert restarted.error_events() == []
    finally:
        restarted.stop()
