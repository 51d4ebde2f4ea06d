"""Opt-out and quotas with real processes: the proxy and the fake FastSMSing, a STOP
arriving through the provider's inbound webhook, on every store; and two instances
on one PostgreSQL sharing the suppression list and a key's daily quota."""

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio

from smsproxy.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from smsproxy.signing import verify
from tests.processes import ServiceProcess, free_port, wait_for_status
from tests.test_callback_delivery import received, start_receiver

pytestmark = pytest.mark.e2e

BOB = "+4915112345672"
SHOP = {"Authorization": "Bearer shop-key"}
SUPPORT = {"Authorization": "Bearer support-key"}


def proxy_args(store: str, provider: ServiceProcess, port: int) -> tuple[str, ...]:
    return ("--port", str(port), "--store", store, "--provider", provider.url,
            "--provider-api-key", "k", "--webhook-secret", "hook-secret",
            "--api-keys", "shop=shop-key", "--admin-keys", "support=support-key",
            "--quota", "shop=6", "--batch-size", "1", "--max-delay", "0.05")


def fake_provider(tmp_path, proxy_port: int) -> ServiceProcess:
    return ServiceProcess(
        tmp_path, "--callback-url", f"http://127.0.0.1:{proxy_port}/provider/status",
        "--secret", "hook-secret", "--api-key", "k", command="fake-provider", name="provider")


async def phone_replies(provider: ServiceProcess, content: str) -> None:
    """The phone answers; the provider forwards it to the proxy's inbound webhook."""
    async with httpx.AsyncClient(base_url=provider.url) as fake:
        answer = await fake.post("/v1/replies", json={
            "from": BOB.removeprefix("+"), "to": "4930123456", "content": content})
    assert answer.json() == {"proxy_status": 204}


async def provider_messages(provider: ServiceProcess) -> int:
    async with httpx.AsyncClient(base_url=provider.url) as fake:
        return int((await fake.get("/v1/stats")).json().get("messages", 0))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request, tmp_path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'messages.db'}"
    return request.getfixturevalue("postgres_url")


async def test_stop_through_the_providers_webhook_stops_every_send_until_start(
        tmp_path, store) -> None:
    port, hook_port = free_port(), free_port()
    receiver = start_receiver(hook_port, tmp_path / "received.jsonl")
    provider = fake_provider(tmp_path, port)
    proxy = await ServiceProcess.launch(
        tmp_path, *proxy_args(store, provider, port), "--callback-url",
        f"http://127.0.0.1:{hook_port}/hook", "--callback-secret", "shop-secret",
        "--callback-allow-private", name="proxy")
    try:
        async with httpx.AsyncClient(base_url=proxy.url, headers=SHOP, timeout=10) as client:
            first = (await client.post("/sms", json={"phone_number": BOB, "content": "hi"},
                                       headers=SHOP)).json()
            later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
            waiting = (await client.post("/sms", headers=SHOP, json={
                "phone_number": BOB, "content": "tomorrow's offer", "send_at": later})).json()
            with trio.fail_after(20):
                await wait_for_status(client, first["id"], "DELIVERED")

            await phone_replies(provider, "Stop")
            refused = await client.post("/sms", json={"phone_number": BOB, "content": "again"},
                                        headers=SHOP)
            assert refused.status_code == 422, refused.text
            assert "opted out" in refused.json()["error"]
            failed = (await client.get(f"/sms/{waiting['id']}", headers=SHOP)).json()
            assert (failed["status"], failed["reason"]) == ("FAILED", "recipient opted out")
            listed = (await client.get("/suppressions", headers=SUPPORT)).json()
            assert [s["phone_number"] for s in listed["suppressions"]] == [BOB]

            await phone_replies(provider, "START")
            back = await client.post("/sms", json={"phone_number": BOB, "content": "welcome"},
                                     headers=SHOP)
            assert back.status_code == 202
            with trio.fail_after(20):
                await wait_for_status(client, back.json()["id"], "DELIVERED")
        assert await provider_messages(provider) == 2  # never the refused nor the waiting
        with trio.fail_after(20):  # the shop hears of both replies, signed (in any order)
            while len(replies := inbound_events(tmp_path / "received.jsonl")) < 2:  # noqa: ASYNC110
                await trio.sleep(0.1)
        assert sorted((r["from"], r["content"], r["keyword"]) for r in replies) == [
            (BOB, "START", "opt_in"), (BOB, "Stop", "opt_out")]
        assert proxy.error_events() == [] and provider.error_events() == []
    finally:
        proxy.stop()
        provider.stop()
        receiver.kill()
        receiver.wait()


def inbound_events(log) -> list[dict]:
    """The ``inbound`` callbacks the receiver got, each checked against its signature."""
    events = []
    for arrived in received(log):
        body = arrived["body"].encode()
        headers = {k.lower(): v for k, v in arrived["headers"].items()}
        assert verify(body, "shop-secret", headers[SIGNATURE_HEADER.lower()],
                      headers[TIMESTAMP_HEADER.lower()], now=time.time()) is None
        event = json.loads(body)
        if event.get("type") == "inbound":
            events.append(event)
    return events


async def test_two_instances_share_the_list_and_the_quota(tmp_path, postgres_url) -> None:
    port = free_port()
    provider = fake_provider(tmp_path, port)
    a = await ServiceProcess.launch(tmp_path, *proxy_args(postgres_url, provider, port),
                                    name="a")
    b = await ServiceProcess.launch(tmp_path, *proxy_args(postgres_url, provider, free_port()),
                                    name="b")
    try:
        async with a.client() as to_a, b.client() as to_b:
            await phone_replies(provider, "STOP")  # it reaches instance a
            refused = await to_b.post("/sms", json={"phone_number": BOB, "content": "x"},
                                      headers=SHOP)
            assert refused.status_code == 422
            deleted = await to_b.delete(f"/suppressions/{BOB}", headers=SUPPORT)
            assert deleted.status_code == 204
            sent = [await to.post("/sms", json={"phone_number": BOB, "content": f"{n}"},
                                  headers=SHOP)
                    for n, to in enumerate([to_a, to_b] * 3)]
            assert [answer.status_code for answer in sent] == [202] * 6
            for to in (to_a, to_b):  # six a day for the key, over both instances
                over = await to.post("/sms", json={"phone_number": BOB, "content": "x"},
                                     headers=SHOP)
                assert over.status_code == 429
                assert "Exceeded send limits (6)" in over.json()["error"]
                assert 0 < int(over.headers["Retry-After"]) <= 86_400
        assert a.error_events() == [] and b.error_events() == []
    finally:
        a.stop()
        b.stop()
        provider.stop()
