"""Proxy and fake provider as two real processes, talking HTTP both ways."""

import math

import httpx
import pytest
import trio

from tests.processes import ServiceProcess, free_port, wait_for_status

pytestmark = pytest.mark.e2e

MESSAGES = 500
BATCH_SIZE = 50


@pytest.fixture
def pair(tmp_path):
    """A fake provider that fails 20% of batches and leaves 10% unanswered, and a proxy."""
    proxy_port = free_port()
    provider = ServiceProcess(
        tmp_path, "--callback-url", f"http://127.0.0.1:{proxy_port}/provider/status",
        "--secret", "hook-secret", "--api-key", "key-1", "--failure-rate", "0.2",
        "--timeout-rate", "0.1", "--seed", "1", command="fake-provider", name="provider",
    )
    try:
        proxy = ServiceProcess(
            tmp_path, "--port", str(proxy_port), "--provider", provider.url,
            "--provider-api-key", "key-1", "--webhook-secret", "hook-secret",
            "--provider-timeout", "1", "--batch-size", str(BATCH_SIZE), "--max-delay", "0.2",
            "--store", "sqlite:///messages.db", name="proxy",
        )
        try:
            yield proxy, provider
        finally:
            proxy.stop()
    finally:
        provider.stop()


async def test_every_message_is_delivered_exactly_once_despite_faults(pair):
    proxy, provider = pair
    ids: list[str] = []
    async with proxy.client() as client:

        # As many at once as the client's pool has connections: more would only queue
        # for one, and on a loaded machine time out there (PoolTimeout), not at the proxy.
        connections = trio.CapacityLimiter(50)

        async def post(i: int) -> None:
            async with connections:
                answer = await client.post(
                    "/sms", json={"phone_number": "+4912345", "content": f"{i}"}
                )
            assert answer.status_code == 202
            ids.append(answer.json()["id"])

        async with trio.open_nursery() as nursery:
            for i in range(MESSAGES):
                nursery.start_soon(post, i)
        with trio.fail_after(60):
            for message_id in ids:
                await wait_for_status(client, message_id, "DELIVERED")

    async with httpx.AsyncClient(base_url=provider.url) as fake:
        stats = (await fake.get("/v1/stats")).json()
    assert stats["delivered"] == MESSAGES  # each delivered once: the provider deduplicates
    assert stats["messages"] - stats.get("duplicates", 0) == MESSAGES  # each seen at least once
    ideal = math.ceil(MESSAGES / BATCH_SIZE)
    assert stats["requests"] <= 3 * ideal, stats
    assert stats.get("refused", 0) + stats.get("unanswered", 0) > 0  # faults did happen
    print(f"\nprovider requests: {stats['requests']} for {MESSAGES} messages "
          f"({1000 * stats['requests'] / MESSAGES:.0f} per 1000; ideal {ideal}); {stats}")
    assert proxy.error_events() == []
    assert provider.error_events() == []
