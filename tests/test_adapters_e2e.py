"""Each provider API end to end, with real processes, on SQLite and PostgreSQL: the
proxy sends through the adapter to that provider's fake, the fake posts its reports to
the proxy's webhook in its own format and authentication, and the message's status,
sender and provider show in GET /sms/<id> and in the shop's callbacks."""

import json
import time
from pathlib import Path

import pytest
import trio

from smsproxy.statuses import Status
from tests.processes import ServiceProcess, free_port, wait_for_status
from tests.test_callback_delivery import received, start_receiver

pytestmark = pytest.mark.e2e

ENTRIES = {
    "infobip": 'api_key = "key"\nwebhook_user = "shop"\nwebhook_password = "pw"',
    "sinch": 'service_plan_id = "plan"\napi_token = "key"\nwebhook_user = "shop"\n'
             'webhook_password = "pw"\nsender = "Shop"',
    "twilio": 'account_sid = "AC0"\nauth_token = "key"\nsender = "+15550100"',
}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///messages.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("api", sorted(ENTRIES))
async def test_reports_reach_the_message_and_the_shop(tmp_path: Path, store: str,
                                                      api: str) -> None:
    proxy_port, receiver_port = free_port(), free_port()
    fake = ServiceProcess(tmp_path, "--api", api, "--api-key", "key", "--webhook-user", "shop",
                          "--webhook-password", "pw", command="fake-provider",
                          name=f"{api}-{time.monotonic_ns()}")
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f'[[providers]]\nname = "{api}-1"\napi = "{api}"\nurl = "{fake.url}"\nprice = 0.01\n'
        f'status_url = "http://127.0.0.1:{proxy_port}/providers/{api}-1/status"\n'
        f"{ENTRIES[api]}\n")
    receiver_log = tmp_path / "callbacks.jsonl"
    receiver = start_receiver(receiver_port, receiver_log)
    proxy = ServiceProcess(tmp_path, "--port", str(proxy_port), "--providers", str(providers),
                           "--store", store, "--max-delay", "0.05", "--callback-secret", "s",
                           "--callback-allow-private", name=f"proxy-{api}")
    try:
        async with proxy.client() as client:
            ids = []
            for n, sender in enumerate(["MyShop", None, "+4930123456"]):
                body = {"phone_number": f"+4915100000{n}", "content": "your order",
                        "callback_url": f"http://127.0.0.1:{receiver_port}/hook",
                        **({"sender": sender} if sender else {})}
                answer = await client.post("/sms", json=body)
                assert answer.status_code == 202, answer.text
                ids.append(answer.json()["id"])
            with trio.fail_after(20):
                shown = [await wait_for_status(client, i, "DELIVERED") for i in ids]
            assert [s["provider"] for s in shown] == [f"{api}-1"] * 3
            assert [s.get("sender") for s in shown] == ["MyShop", None, "+4930123456"]
        with trio.fail_after(20):
            while len(received(receiver_log)) < 9:  # noqa: ASYNC110 - another process writes
                await trio.sleep(0.05)
        events: dict[str, list[str]] = {}
        for call in received(receiver_log):
            event = json.loads(call["body"])
            events.setdefault(event["message_id"], []).append(event["status"])
        expected = [Status.ACCEPTED.value, Status.CONFIRMED.value, Status.DELIVERED.value]
        assert {i: sorted(s, key=expected.index) for i, s in events.items()} == dict.fromkeys(
            ids, expected)
        assert not proxy.error_events()
    finally:
        receiver.terminate()
        for process in (proxy, fake):
            process.stop()
