"""Several providers from a providers file, through the whole service, on every
store: cheapest first, failover when it refuses, each report accepted from the
provider that took the message only, in that provider's format and authentication."""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from actors.router import Router
from actors.supervisor import Runtime, running
from api import ApiSettings, Services, create_app
from api.fake_apis import FakeApi, FakeInfobip, FakeSinch, FakeTwilio, basic_header
from api.serving import serve_app
from smsproxy.config import Config
from smsproxy.statuses import Status

HOOK = "http://proxy.test/providers/{}/status"
BASIC = {"Authorization": basic_header("shop", "pw"), "Content-Type": "application/json"}


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'routing.db'}"
    return str(request.getfixturevalue("postgres_url"))


async def serve(nursery: trio.Nursery, fake: FakeApi) -> str:
    [url] = await nursery.start(lambda task_status: serve_app(
        fake.create_app(), "127.0.0.1", 0, grace=0.1, stop=trio.Event(),
        handle_signals=False, task_status=task_status))
    return str(url)


def providers_file(tmp_path: Path, entries: list[dict[str, Any]]) -> str:
    lines = []
    for entry in entries:
        lines.append("[[providers]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    path = tmp_path / "providers.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@dataclass
class Service:
    runtime: Runtime
    client: Any

    async def send(self, count: int, text: str = "order shipped") -> list[str]:
        ids = []
        for i in range(count):
            saved = await self.runtime.dispatcher.submit(f"+4915100{i:05d}", text)
            ids += saved.message_ids
        return ids

    async def status(self, message_id: str) -> Status:
        return (await self.runtime.repository.get(message_id)).status

    async def report(self, name: str, body: bytes, headers: dict[str, str],
                     query: str = "") -> int:
        response = await self.client.post(f"/providers/{name}/status{query}", data=body,
                                          headers=headers)
        await self.runtime.updater.flush()
        return int(response.status_code)


@pytest.fixture
def start(store: str, tmp_path: Path) -> Callable[..., Any]:
    def starting(entries: list[dict[str, Any]]) -> Any:
        config = Config(store=store, providers=providers_file(tmp_path, entries),
                        batch_size=5, max_delay=0.05, status_linger=0.0, max_attempts=2,
                        provider_timeout=2.0)

        @asynccontextmanager
        async def run() -> AsyncIterator[Service]:
            async with running(config) as runtime:
                assert isinstance(runtime.provider, Router)
                services = Services(runtime.repository, runtime.dispatcher, runtime.stats,
                                    runtime.updater, runtime.provider)
                app = create_app(services, ApiSettings())
                yield Service(runtime, app.test_client())
        return run()
    return starting


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polling another server's counts
            await trio.sleep(0.02)


def infobip_entry(url: str, price: float = 0.01) -> dict[str, Any]:
    return {"name": "ib", "api": "infobip", "url": url, "api_key": "ib-key", "price": price,
            "webhook_user": "shop", "webhook_password": "pw",
            "status_url": HOOK.format("ib")}


def twilio_entry(url: str, price: float = 0.05) -> dict[str, Any]:
    return {"name": "tw", "api": "twilio", "url": url, "account_sid": "AC0",
            "auth_token": "tw-token", "price": price, "sender": "+15550100",
            "status_url": HOOK.format("tw")}


def sinch_entry(url: str) -> dict[str, Any]:
    return {"name": "sn", "api": "sinch", "url": url, "service_plan_id": "plan",
            "api_token": "sn-token", "price": 0.02, "sender": "MyShop",
            "webhook_user": "shop", "webhook_password": "pw"}


async def test_cheapest_first_then_failover_and_reports_from_the_owner_only(
        nursery: trio.Nursery, start: Callable[..., Any]) -> None:
    infobip, twilio = FakeInfobip(secret="ib-key"), FakeTwilio(secret="tw-token")
    entries = [twilio_entry(await serve(nursery, twilio)),
               infobip_entry(await serve(nursery, infobip))]
    async with start(entries) as service:
        first = await service.send(5)
        await until(lambda: infobip.counts["messages"] == 5)
        assert infobip.counts["requests"] == 1 and twilio.counts["requests"] == 0

        report = json.dumps(FakeInfobip.report({first[0]: "DELIVERED"})).encode()
        wrong = {**BASIC, "Authorization": basic_header("shop", "guess")}
        assert await service.report("ib", report, wrong) == 401
        assert await service.status(first[0]) is Status.ACCEPTED
        assert await service.report("ib", report, BASIC) == 204
        assert await service.status(first[0]) is Status.DELIVERED
        shown = await (await service.client.get(f"/sms/{first[0]}")).get_json()
        assert shown["provider"] == "ib"

        # Twilio did not take first[1]: its report on it changes nothing
        url = f"{HOOK.format('tw')}?message_id={first[1]}"
        body, headers = twilio.report(url, "SM9", "delivered")
        assert await service.report("tw", body, headers, f"?message_id={first[1]}") == 204
        assert await service.status(first[1]) is Status.ACCEPTED

        infobip.script.extend([503] * 50)  # Infobip goes down
        routes = service.runtime.provider.table.routes  # type: ignore[attr-defined]
        for wave in range(1, 4):  # each batch fails over in its own attempt
            later = await service.send(5, f"wave {wave}")
            await until(lambda wave=wave: twilio.counts["messages"] == 5 * wave)
        assert twilio.counts["duplicates"] == 0
        assert infobip.counts["messages"] == 5  # it took none of the later waves
        assert routes["ib"].state == "down"  # three refusals in a row took it out
        url = f"{HOOK.format('tw')}?message_id={later[0]}"
        body, headers = twilio.report(url, "SM1", "delivered")
        assert await service.report("tw", body, headers, f"?message_id={later[0]}") == 204
        assert await service.status(later[0]) is Status.DELIVERED
        shown = await (await service.client.get(f"/sms/{later[0]}")).get_json()
        assert shown["provider"] == "tw"  # the batch failed over: Twilio took it
        # ... and Infobip may no longer report on it
        report = json.dumps(FakeInfobip.report({later[1]: "DELIVERED"})).encode()
        assert await service.report("ib", report, BASIC) == 204
        assert await service.status(later[1]) is Status.ACCEPTED
        for message_id in later[1:]:
            assert await service.status(message_id) is Status.ACCEPTED  # sent, not FAILED
        assert routes["tw"].requests == 15 and routes["ib"].requests == 1
        stats = await (await service.client.get("/stats")).get_json()
        twilio_bill = stats["providers"]["tw"]
        assert twilio_bill | {"spend": round(twilio_bill["spend"], 2)} == {
            "requests": 15, "messages": 15, "failures": 0, "state": "up", "weight": 100,
            "price": 0.05, "spend": 0.75}
        assert stats["providers"]["ib"]["state"] == "down"
        assert stats["providers"]["ib"]["failures"] == 3
        metrics = await (await service.client.get("/metrics")).get_data(as_text=True)
        assert 'smsproxy_provider_up{provider="ib"} 0.0' in metrics
        assert 'smsproxy_provider_up{provider="tw"} 1.0' in metrics
        assert 'smsproxy_provider_requests_total{outcome="taken",provider="tw"} 15.0' in metrics
        refused = 'smsproxy_provider_requests_total{outcome="unavailable",provider="ib"} 3.0'
        assert refused in metrics
        assert 'smsproxy_provider_spend_total{provider="ib"} 0.01' in metrics


async def test_sinch_reports_name_the_batch_and_recipient(
        nursery: trio.Nursery, start: Callable[..., Any]) -> None:
    sinch = FakeSinch(secret="sn-token")
    entry = sinch_entry(await serve(nursery, sinch))
    async with start([entry]) as service:
        ids = await service.send(5, "campaign")
        await until(lambda: sinch.counts["messages"] == 5)
        assert sinch.counts["requests"] == 1  # one text, one sender: one request
        body = json.dumps(FakeSinch.report("sinch-batch-1", "+491510000003", "Delivered"))
        assert await service.report("sn", body.encode(), BASIC) == 204
        assert await service.status(ids[3]) is Status.DELIVERED
        assert await service.report("sn", body.encode(), {}) == 401
        # After a restart (or on another instance) the router has not seen the ref: the
        # store has it, with the provider that took the message.
        assert isinstance(service.runtime.provider, Router)
        service.runtime.provider.refs.clear()
        body = json.dumps(FakeSinch.report("sinch-batch-1", "+491510000004", "Delivered"))
        assert await service.report("sn", body.encode(), BASIC) == 204
        assert await service.status(ids[4]) is Status.DELIVERED
        shown = await (await service.client.get(f"/sms/{ids[4]}")).get_json()
        assert shown["provider"] == "sn"
        unknown = json.dumps(FakeSinch.report("no-such-batch", "+4915", "Delivered"))
        assert await service.report("sn", unknown.encode(), BASIC) == 204
        assert await service.status(ids[0]) is Status.ACCEPTED


async def test_an_unknown_provider_name_is_404(nursery: trio.Nursery,
                                               start: Callable[..., Any]) -> None:
    infobip = FakeInfobip(secret="ib-key")
    async with start([infobip_entry(await serve(nursery, infobip))]) as service:
        assert await service.report("nobody", b"{}", BASIC) == 404


@pytest.mark.parametrize("store", ["memory://"])  # the router's race, not the store's
async def test_a_report_that_outruns_its_request_s_answer_is_asked_again(
        nursery: trio.Nursery, start: Callable[..., Any]) -> None:
    sinch = FakeSinch(secret="sn-token")
    entry = sinch_entry(await serve(nursery, sinch))
    async with start([entry]) as service:
        router = service.runtime.provider
        assert isinstance(router, Router)
        sinch.script.append("hang")  # the request is under way; its answer does not come
        await service.send(1)
        await until(lambda: router.sending["sn"] == 1)
        early = json.dumps(FakeSinch.report("sinch-batch-9", "+491510000000", "Dispatched"))
        assert await service.report("sn", early.encode(), BASIC) == 503  # retried later
        await until(lambda: router.sending["sn"] == 0)
        assert await service.report("sn", early.encode(), BASIC) == 204  # none under way:
        stats = await (await service.client.get("/stats")).get_json()  # refused, counted
        assert stats["updates_rejected"] == 1
