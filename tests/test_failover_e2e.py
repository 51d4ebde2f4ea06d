"""Failover with real processes: Infobip (cheap) and Twilio (dear) fakes, the proxy
routing between them from a providers file, on SQLite and PostgreSQL. Infobip dies
under load: its batches go to Twilio within seconds, nothing is lost or FAILED; it
comes back and takes its share again; no phone is texted twice."""

import time
from pathlib import Path

import httpx
import pytest
import trio

from tests.processes import ServiceProcess, free_port, wait_for_status

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///messages.db"
    return str(request.getfixturevalue("postgres_url"))


def providers_file(tmp_path: Path, proxy_port: int, ib_url: str, tw_url: str) -> Path:
    hook = f"http://127.0.0.1:{proxy_port}/providers"
    path = tmp_path / "providers.toml"
    path.write_text(f'''
[[providers]]
name = "ib"
api = "infobip"
url = "{ib_url}"
api_key = "ib-key"
webhook_user = "shop"
webhook_password = "pw"
price = 0.01
status_url = "{hook}/ib/status"

[[providers]]
name = "tw"
api = "twilio"
url = "{tw_url}"
account_sid = "AC0"
auth_token = "tw-token"
sender = "+15550100"
price = 0.05
status_url = "{hook}/tw/status"
''')
    return path


def infobip(tmp_path: Path, port: int) -> ServiceProcess:
    return ServiceProcess(tmp_path, "--api", "infobip", "--port", str(port), "--api-key",
                          "ib-key", "--webhook-user", "shop", "--webhook-password", "pw",
                          command="fake-provider", name=f"infobip-{time.monotonic_ns()}")


async def send(client: httpx.AsyncClient, count: int, wave: str) -> list[str]:
    ids = []
    for i in range(count):
        response = await client.post("/sms", json={"phone_number": f"+4915100{i:05d}",
                                                   "content": f"{wave} {i}"})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


async def stats(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url) as client:
        return dict((await client.get("/stats")).json())


async def test_failover_and_back_with_real_processes(tmp_path: Path, store: str) -> None:
    proxy_port, ib_port = free_port(), free_port()
    ib = infobip(tmp_path, ib_port)
    tw = ServiceProcess(tmp_path, "--api", "twilio", "--api-key", "tw-token",
                        command="fake-provider", name="twilio")
    path = providers_file(tmp_path, proxy_port, ib.url, tw.url)
    proxy = ServiceProcess(tmp_path, "--port", str(proxy_port), "--providers", str(path),
                           "--store", store, "--batch-size", "10", "--max-delay", "0.1",
                           "--provider-timeout", "2", name="proxy")
    try:
        async with proxy.client() as client:
            first = await send(client, 20, "first")
            with trio.fail_after(20):
                for message_id in first:
                    await wait_for_status(client, message_id, "DELIVERED")
            assert (await stats(ib.url))["messages"] == 20
            assert (await stats(tw.url)).get("messages", 0) == 0  # cheapest first

            ib.stop()  # Infobip dies
            failed_at = time.monotonic()
            second = await send(client, 20, "second")
            with trio.fail_after(20):
                for message_id in second:
                    body = await wait_for_status(client, message_id, "DELIVERED")
            failover = time.monotonic() - failed_at
            assert (await stats(tw.url))["messages"] == 20
            assert body["status"] == "DELIVERED"

            ib = infobip(tmp_path, ib_port)  # it comes back, on the same address
            third: list[str] = []
            with trio.fail_after(60):
                while (await stats(ib.url)).get("messages", 0) == 0:
                    third += await send(client, 1, f"third {len(third)}")
                    await trio.sleep(0.2)
                for message_id in third:
                    await wait_for_status(client, message_id, "DELIVERED")
            routed = (await client.get("/stats")).json()["providers"]
            assert routed["ib"]["state"] == "up"
            ib_stats, tw_stats = await stats(ib.url), await stats(tw.url)
            assert ib_stats.get("duplicates", 0) == tw_stats.get("duplicates", 0) == 0
            # each message sent once: 20 to the first Infobip, the rest to Twilio or back
            assert 20 + ib_stats["messages"] + tw_stats["messages"] == 40 + len(third)
            for message_id in first + second + third:
                assert (await client.get(f"/sms/{message_id}")).json()["status"] == "DELIVERED"
        print(f"failover: the second wave delivered {failover:.2f} s after Infobip died")
        assert not proxy.error_events()
    finally:
        for process in (proxy, ib, tw):
            process.stop()
