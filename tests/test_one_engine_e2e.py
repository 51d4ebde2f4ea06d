"""The one engine against real processes: the proxy and a fake FastSMSing, over HTTP.
What the provider took is never sent again (not after a SIGTERM and a restart, not
past the TTL), and parked batches keep their rounds and last error across a kill -9."""

import signal
import sqlite3

import httpx
import pytest
import trio

from tests.processes import ServiceProcess, free_port, until, wait_for_status

pytestmark = pytest.mark.e2e

PHONE = "+4912345678"


def provider(tmp_path, proxy_port: int, *faults: str, name: str = "provider") -> ServiceProcess:
    return ServiceProcess(
        tmp_path, "--callback-url", f"http://127.0.0.1:{proxy_port}/provider/status",
        "--secret", "hook", "--seed", "1", *faults, command="fake-provider", name=name)


async def proxy(tmp_path, port: int, provider_url: str, *options: str,
                name: str) -> ServiceProcess:
    return await ServiceProcess.launch(
        tmp_path, "--port", str(port), "--provider", provider_url, "--webhook-secret", "hook",
        "--store", "sqlite:///messages.db", "--provider-timeout", "1", *options, name=name)


def provider_stats(fake: ServiceProcess) -> dict:
    return httpx.get(f"{fake.url}/v1/stats").json()


async def post_many(service: ServiceProcess, count: int) -> list[str]:
    ids: list[str] = []
    async with service.client() as client:
        limit = trio.CapacityLimiter(20)

        async def post(i: int) -> None:
            async with limit:
                try:
                    answer = await client.post("/sms", json={"phone_number": PHONE,
                                                             "content": f"m{i}"})
                except httpx.HTTPError:
                    return  # shutting down: not accepted
            if answer.status_code == 202:
                ids.append(answer.json()["id"])

        async with trio.open_nursery() as nursery:
            for i in range(count):
                nursery.start_soon(post, i)
    return ids


async def test_what_the_provider_took_before_a_sigterm_is_not_sent_again(tmp_path):
    port = free_port()
    fake = provider(tmp_path, port, "--callback-failure-rate", "1")  # no report arrives
    try:
        first = await proxy(tmp_path, port, fake.url, "--batch-size", "20", "--max-delay",
                            "0.1", name="first")
        ids: list[str] = []
        try:
            async def load() -> None:
                ids.extend(await post_many(first, 400))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(load)
                await trio.sleep(0.5)  # under load: batches in flight, more waiting
                first.process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                assert await first.exit_code() == 0
        finally:
            first.stop()
        second = await proxy(tmp_path, port, fake.url, "--max-delay", "0.1", name="second")
        try:
            with trio.fail_after(20):
                await until(lambda: provider_stats(fake).get("messages", 0) >= len(ids))
            await trio.sleep(2)  # the time a resend would have taken
            figures = provider_stats(fake)
            assert ids and figures.get("duplicates", 0) == 0
            # a save that committed as the door closed may have lost its 202: sent still
            assert len(ids) <= figures["messages"] <= len(ids) + 20
        finally:
            second.stop()
    finally:
        fake.stop()


async def test_a_provider_that_takes_and_never_reports_is_not_paid_past_the_ttl(tmp_path):
    """Batches taken but never answered (each attempt times out): a message is resent
    only within its TTL, then waits for a report through the grace, and fails."""
    port = free_port()
    fake = provider(tmp_path, port, "--timeout-rate", "1", "--callback-failure-rate", "1")
    try:
        service = await proxy(tmp_path, port, fake.url, "--batch-size", "10", "--max-delay",
                              "0.1", "--message-ttl", "4", "--status-grace", "2",
                              "--max-attempts", "2", name="proxy")
        try:
            ids = await post_many(service, 30)
            await trio.sleep(4.5)  # past the TTL
            sent_by_then = provider_stats(fake)["messages"]
            async with service.client() as client:
                with trio.fail_after(20):  # the grace, and the next expiry round (5 s)
                    for message_id in ids:
                        body = await wait_for_status(client, message_id, "FAILED")
                        assert "an attempt may have reached it" in body["reason"]
            assert provider_stats(fake)["messages"] == sent_by_then  # nothing after the TTL
        finally:
            service.stop()
    finally:
        fake.stop()


async def test_parked_batches_keep_their_rounds_and_last_error_across_a_kill_9(tmp_path):
    port = free_port()
    down = provider(tmp_path, port, "--failure-rate", "1", name="down")  # refuses every batch
    try:
        first = await proxy(tmp_path, port, down.url, "--batch-size", "5", "--max-delay",
                            "0.1", "--max-attempts", "1", name="first")
        try:
            ids = await post_many(first, 10)
            await until(lambda: len([e for e in first.events()
                                     if e.get("event") == "batch_failed"]) >= 2)
        finally:
            first.stop()  # SIGKILL, with both batches parked
    finally:
        down.stop()
    with sqlite3.connect(tmp_path / "messages.db") as db:
        rows = db.execute("SELECT rounds, last_error, sent_at FROM messages").fetchall()
    assert len(rows) == 10
    assert all(rounds >= 1 and "500" in error and sent is None for rounds, error, sent in rows)
    up = provider(tmp_path, port, name="up")
    try:
        second = await proxy(tmp_path, port, up.url, "--max-delay", "0.1", name="second")
        try:
            async with second.client() as client:
                with trio.fail_after(30):
                    for message_id in ids:
                        await wait_for_status(client, message_id, "DELIVERED")
        finally:
            second.stop()
    finally:
        up.stop()
