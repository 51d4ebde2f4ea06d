"""The Infobip, Sinch and Twilio adapters against their fakes over HTTP: the
requests as each provider documents them, every answer mapped onto the provider
error tree, partial takes carried by the error, and each webhook's authentication
and statuses."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from api.fake_apis import FakeApi, FakeInfobip, FakeSinch, FakeTwilio, basic_header
from api.serving import serve_app
from smsproxy.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnavailable,
)
from smsproxy.models import Batch, Message
from smsproxy.providers._http import Pacer
from smsproxy.providers.infobip import InfobipProvider
from smsproxy.providers.sinch import SinchProvider, campaigns
from smsproxy.providers.twilio import TwilioProvider

STATUS_URL = "https://proxy.example/providers/p/status"
USER, PASSWORD = "shop", "hook-password"


def message(i: int, text: str = "hello", number: str | None = None,
            sender: str | None = None) -> Message:
    return Message(f"m{i}", number or f"+49151{i:07d}", text, 0.0, sender=sender)


BATCH = Batch("b1", (message(1), message(2, "hi", sender="Shop 2")))


@dataclass
class Served:
    fake: FakeApi
    adapter: Any


async def serve(nursery: trio.Nursery, fake: FakeApi) -> tuple[str, trio.Event]:
    stop = trio.Event()
    [url] = await nursery.start(lambda task_status: serve_app(
        fake.create_app(), "127.0.0.1", 0, grace=0.1, stop=stop, handle_signals=False,
        task_status=task_status))
    return url, stop


def adapter_for(api: str, url: str, secret: str) -> Any:
    common = {"sender": "MyShop", "status_url": STATUS_URL}
    if api == "infobip":
        return InfobipProvider("ib", url, secret, 0.5, webhook_user=USER,
                               webhook_password=PASSWORD, **common)
    if api == "sinch":
        return SinchProvider("sn", url, "plan-7", secret, 0.5, webhook_user=USER,
                             webhook_password=PASSWORD, **common)
    return TwilioProvider("tw", url, "AC0", secret, 0.5, **common)


FAKES = {"infobip": FakeInfobip, "sinch": FakeSinch, "twilio": FakeTwilio}


@pytest.fixture(params=sorted(FAKES))
async def served(request: pytest.FixtureRequest, nursery: trio.Nursery
                 ) -> AsyncIterator[Served]:
    fake = FAKES[request.param](secret="key-1")
    url, stop = await serve(nursery, fake)
    adapter = adapter_for(request.param, url, "key-1")
    yield Served(fake, adapter)
    await adapter.close()
    stop.set()


async def test_a_batch_is_taken_in_the_providers_format(served: Served) -> None:
    sent = await served.adapter.send(BATCH)
    assert sent.taken == ("m1", "m2")
    assert served.fake.counts["messages"] == 2
    assert served.fake.counts["duplicates"] == 0
    # one request for Infobip; one per text and sender for Sinch; one per message for Twilio
    assert sent.requests == served.fake.counts["requests"] == len(served.fake.received)


async def test_infobip_request_names_our_ids_sender_and_webhook(nursery: trio.Nursery) -> None:
    fake = FakeInfobip(secret="k")
    url, stop = await serve(nursery, fake)
    adapter = adapter_for("infobip", url, "k")
    await adapter.send(BATCH)
    [received] = fake.received
    assert received["path"] == "/sms/3/messages"
    assert received["headers"]["Authorization"] == "App k"
    first, second = received["body"]["messages"]
    assert first == {"destinations": [{"to": "491510000001", "messageId": "m1"}],
                     "content": {"text": "hello"}, "sender": "MyShop",
                     "webhooks": {"delivery": {"url": STATUS_URL, "intermediateReport": True}}}
    assert second["sender"] == "Shop 2" and second["content"] == {"text": "hi"}
    await adapter.send(BATCH)  # the same ids again: Infobip deduplicates them
    assert fake.counts["deduplicated"] == 2 and fake.counts["messages"] == 2
    await adapter.close()
    stop.set()


async def test_sinch_request_is_one_campaign_per_text_and_sender(nursery: trio.Nursery) -> None:
    fake = FakeSinch(secret="tok")
    url, stop = await serve(nursery, fake)
    adapter = adapter_for("sinch", url, "tok")
    batch = Batch("b", (message(1), message(2), message(3, "other"), message(4, sender="X")))
    sent = await adapter.send(batch)
    assert [r["path"] for r in fake.received] == ["/xms/v1/plan-7/batches"] * 3
    assert fake.received[0]["headers"]["Authorization"] == "Bearer tok"
    assert fake.received[0]["body"] == {
        "to": ["+491510000001", "+491510000002"], "from": "MyShop", "body": "hello",
        "delivery_report": "per_recipient", "callback_url": STATUS_URL}
    assert [r["body"]["from"] for r in fake.received] == ["MyShop", "MyShop", "X"]
    assert sent.refs["m2"] == "sinch-batch-1/491510000002"
    await adapter.close()
    stop.set()


async def test_a_campaign_of_2500_identical_texts_costs_three_sinch_requests(
        nursery: trio.Nursery) -> None:
    fake = FakeSinch(secret="tok")
    url, stop = await serve(nursery, fake)
    adapter = adapter_for("sinch", url, "tok")
    sent = await adapter.send(Batch("b", tuple(message(i, "sale!") for i in range(2500))))
    assert sent.requests == fake.counts["requests"] == 3
    assert [len(r["body"]["to"]) for r in fake.received] == [1000, 1000, 500]
    assert len(sent.taken) == fake.counts["messages"] == 2500
    await adapter.close()
    stop.set()


def test_sinch_never_puts_one_number_twice_in_a_request() -> None:
    same = "+4915100000"
    requests = campaigns([message(1, number=same), message(2, number=same),
                          message(3, number="+4916")], "S")
    assert [[m.id for m in r] for r in requests] == [["m1", "m3"], ["m2"]]
    assert all(len({m.phone_number for m in r}) == len(r) for r in requests)


async def test_twilio_request_is_one_form_per_message(nursery: trio.Nursery) -> None:
    fake = FakeTwilio(secret="tok", account_sid="AC9")
    url, stop = await serve(nursery, fake)
    adapter = TwilioProvider("tw", url, "AC9", "tok", 0.5, sender="+15550100",
                             status_url=STATUS_URL)
    sent = await adapter.send(BATCH)
    assert [r["path"] for r in fake.received] == ["/2010-04-01/Accounts/AC9/Messages.json"] * 2
    assert fake.received[0]["headers"]["Authorization"] == basic_header("AC9", "tok")
    assert fake.received[0]["body"] == {
        "To": "+491510000001", "From": "+15550100", "Body": "hello",
        "StatusCallback": f"{STATUS_URL}?message_id=m1"}
    assert fake.received[1]["body"]["From"] == "Shop 2"
    assert sent.requests == 2 and set(sent.refs) == {"m1", "m2"}
    await adapter.close()
    stop.set()


@pytest.mark.parametrize(("answer", "error"), [
    (429, ProviderThrottled), (400, ProviderRejected), (401, ProviderRejected),
    (403, ProviderRejected), (408, ProviderUnavailable), (500, ProviderUnavailable),
    (503, ProviderUnavailable), (502, ProviderOutcomeUnknown), (504, ProviderOutcomeUnknown),
    ("hang", ProviderTimeout),
])
async def test_every_answer_maps_onto_the_error_tree(
        served: Served, answer: int | str, error: type[ProviderError]) -> None:
    served.fake.script.append(answer)
    with pytest.raises(error) as raised:
        await served.adapter.send(BATCH)
    assert type(raised.value) is error
    if isinstance(raised.value, ProviderThrottled):
        assert raised.value.retry_after == 2.0


async def test_wrong_credentials_are_a_refusal(served: Served) -> None:
    served.fake.secret = "another key"
    with pytest.raises(ProviderRejected):
        await served.adapter.send(BATCH)


async def test_an_unreachable_provider_did_not_take_the_batch() -> None:
    from tests.processes import free_port

    for api in FAKES:
        adapter = adapter_for(api, f"http://127.0.0.1:{free_port()}", "k")
        with pytest.raises(ProviderUnavailable) as raised:
            await adapter.send(BATCH)
        assert not isinstance(raised.value, ProviderOutcomeUnknown)
        await adapter.close()


@pytest.mark.parametrize("api", ["sinch", "twilio"])
async def test_a_failure_after_some_requests_names_what_was_taken(
        api: str, nursery: trio.Nursery) -> None:
    fake = FAKES[api](secret="k")
    url, stop = await serve(nursery, fake)
    adapter = adapter_for(api, url, "k")
    fake.script.extend(["ok", 503])  # the first request is taken, the second refused
    batch = Batch("b", (message(1), message(2, "two"), message(3, "three")))
    with pytest.raises(ProviderUnavailable) as raised:
        await adapter.send(batch)
    assert raised.value.taken == ("m1",)
    assert raised.value.requests_taken == 1
    assert set(raised.value.refs) == {"m1"}
    assert fake.counts["messages"] == 1  # the third was never sent
    await adapter.close()
    stop.set()


async def test_max_rate_paces_each_request_at_the_provider(nursery: trio.Nursery) -> None:
    fake = FakeTwilio(secret="tok", account_sid="AC9")
    url, stop = await serve(nursery, fake)
    adapter = TwilioProvider("tw", url, "AC9", "tok", 5.0, sender="+15550100", max_rate=20)
    started = trio.current_time()
    sent = await adapter.send(Batch("b", tuple(message(i) for i in range(5))))
    elapsed = trio.current_time() - started
    assert sent.requests == 5 and elapsed >= 4 / 20 * 0.95  # four gaps of 50 ms at least
    await adapter.close()
    stop.set()


async def test_concurrent_requests_queue_up_for_their_slots(
        autojump_clock: trio.testing.MockClock) -> None:
    pacer = Pacer(rate=10)
    started: list[float] = []

    async def request() -> None:
        await pacer(httpx.Request("POST", "http://provider.test/"))
        started.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(request)
    assert [round(t, 3) for t in started] == [0.0, 0.1, 0.2, 0.3]
    await trio.sleep(1.0)
    await request()  # a request after a quiet second goes at once
    assert round(started[-1], 3) == 1.3
