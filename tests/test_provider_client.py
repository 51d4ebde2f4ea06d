"""The FastSMSing client against a local HTTP server that answers as scripted."""

import math
from functools import partial

import pytest
import trio
from quart import Response, jsonify, request
from quart_trio import QuartTrio

from actors.sender import RetryPolicy, deliver
from api.serving import serve_app
from smsproxy.errors import (
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnavailable,
)
from smsproxy.models import Batch, BatchFailed, BatchSucceeded, Message
from smsproxy.providers.fastsmsing import FastSmsClient, open_http_client
from smsproxy.providers.protocol import Sent
from tests.processes import free_port

BATCH = Batch("b1", (Message("m1", "+4912345", "hello", 0.0), Message("m2", "+4913", "hi", 0.0)))


class ScriptedServer:
    """Answers each POST /v1/batches with the next scripted (status, headers); records them."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes] | str] = []
        self.received: list[tuple[dict, str | None]] = []
        self.app = QuartTrio("scripted-provider")
        self.app.post("/v1/batches")(self.take)

    async def take(self) -> Response:
        self.received.append((await request.get_json(), request.headers.get("Authorization")))
        step = self.script.pop(0) if self.script else (202, {})
        if step == "hang":
            await trio.sleep_forever()
        status, headers, *raw = step
        if raw:
            response = Response(raw[0], status)
            response.headers.update(headers)
            return response
        response = jsonify(accepted=2) if status == 202 else jsonify(error="scripted")
        response.status_code = status
        response.headers.update(headers)
        return response


@pytest.fixture
async def server(nursery):
    scripted = ScriptedServer()
    stop = trio.Event()
    [url] = await nursery.start(lambda task_status: serve_app(
        scripted.app, "127.0.0.1", 0, grace=0.1, stop=stop, handle_signals=False,
        task_status=task_status))
    scripted.url = url
    yield scripted
    stop.set()


@pytest.fixture
async def client(server):
    provider = FastSmsClient(open_http_client(server.url, "key-1", timeout=0.5))
    yield provider
    await provider.close()


async def test_202_is_success_and_the_request_is_well_formed(server, client):
    await client.send(BATCH)
    [(body, authorization)] = server.received
    assert authorization == "Bearer key-1"
    assert body == {"messages": [
        {"message_id": "m1", "phone_number": "+4912345", "content": "hello"},
        {"message_id": "m2", "phone_number": "+4913", "content": "hi"},
    ]}


async def test_a_message_s_sender_or_else_the_default_goes_as_sender(server):
    provider = FastSmsClient(open_http_client(server.url, "key-1", timeout=0.5),
                             sender="Default")
    try:
        await provider.send(Batch("b2", (Message("m1", "+4912345", "a", 0.0, sender="MyShop"),
                                         Message("m2", "+4913", "b", 0.0))))
    finally:
        await provider.close()
    [(body, _)] = server.received
    assert [item["sender"] for item in body["messages"]] == ["MyShop", "Default"]


@pytest.mark.parametrize(("status", "error"), [
    (500, ProviderUnavailable), (503, ProviderUnavailable), (408, ProviderUnavailable),
    (501, ProviderUnavailable), (400, ProviderRejected), (401, ProviderRejected),
    (404, ProviderRejected), (502, ProviderOutcomeUnknown), (504, ProviderOutcomeUnknown),
    (200, ProviderOutcomeUnknown),
])
async def test_answers_map_to_provider_errors(server, client, status, error):
    server.script = [(status, {})]
    with pytest.raises(error) as raised:
        await client.send(BATCH)
    assert type(raised.value) is error
    assert str(status) in str(raised.value)


@pytest.mark.parametrize(("headers", "body"), [
    ({"Content-Encoding": "gzip"}, b"this is not gzip"),
    ({"Content-Type": "application/json"}, b"<html>accepted</html>"),
    ({"Content-Type": "application/json"}, b'{"accepted": "all of them"}'),
    ({"Content-Type": "application/json"}, b"[2]"),
    ({}, b""),
], ids=["bad-gzip", "not-json", "wrong-type", "wrong-shape", "empty"])
async def test_a_202_that_cannot_be_read_is_an_outcome_unknown(server, client, headers, body):
    server.script = [(202, headers, body)]
    with pytest.raises(ProviderOutcomeUnknown):
        await client.send(BATCH)


async def test_a_malformed_answer_is_a_failed_attempt_not_an_escape(server, client):
    server.script = [(202, {"Content-Encoding": "gzip"}, b"garbage")] * 2
    outcome = await deliver(BATCH, client, RetryPolicy(2, 5, backoff_initial=0.01))
    assert isinstance(outcome, BatchFailed)
    assert outcome.maybe_delivered
    assert "DecodingError" in outcome.error


async def test_a_connection_closed_without_an_answer_is_an_outcome_unknown(nursery):
    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)  # the request arrived; the answer never comes
        await stream.aclose()

    [listener] = await nursery.start(partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    client = FastSmsClient(open_http_client(f"http://127.0.0.1:{port}", None, 5.0))
    with pytest.raises(ProviderOutcomeUnknown, match="RemoteProtocolError"):
        await client.send(BATCH)
    await client.close()


async def test_429_carries_its_retry_after(server, client):
    server.script = [(429, {"Retry-After": "7"})]
    with pytest.raises(ProviderThrottled) as raised:
        await client.send(BATCH)
    assert raised.value.retry_after == 7.0


async def test_429_without_retry_after_is_still_throttled(server, client):
    server.script = [(429, {})]
    with pytest.raises(ProviderThrottled) as raised:
        await client.send(BATCH)
    assert raised.value.retry_after is None


async def test_no_answer_is_a_timeout(server, client):
    server.script = ["hang"]
    with pytest.raises(ProviderTimeout):
        await client.send(BATCH)


async def test_connection_refused_is_unavailable():
    client = FastSmsClient(open_http_client(f"http://127.0.0.1:{free_port()}", None, 1.0))
    with pytest.raises(ProviderUnavailable, match="unreachable") as raised:
        await client.send(BATCH)
    assert not isinstance(raised.value, ProviderOutcomeUnknown)  # it cannot have been taken
    await client.close()


async def test_400_is_not_retried_but_500_is(server, client):
    server.script = [(400, {})]
    outcome = await deliver(BATCH, client, RetryPolicy(3, 5, backoff_initial=0.01))
    assert isinstance(outcome, BatchFailed)
    assert len(server.received) == 1
    server.script = [(500, {}), (500, {})]
    outcome = await deliver(BATCH, client, RetryPolicy(3, 5, backoff_initial=0.01))
    assert outcome == BatchSucceeded("b1", 2, 3)
    assert len(server.received) == 4


class ThrottlingProvider:
    name = "throttling"
    max_batch: int | None = None

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after
        self.call_times: list[float] = []

    async def send(self, batch: Batch) -> Sent:
        self.call_times.append(trio.current_time())
        if len(self.call_times) == 1:
            raise ProviderThrottled("provider answered 429", self.retry_after)
        return Sent(tuple(m.id for m in batch.messages))


async def test_the_sender_waits_out_retry_after(autojump_clock):
    provider = ThrottlingProvider(retry_after=20)
    outcome = await deliver(BATCH, provider, RetryPolicy(3, 5, backoff_initial=0.5))
    assert isinstance(outcome, BatchSucceeded)
    first, second = provider.call_times
    assert second - first >= 20


async def test_an_absurd_retry_after_is_capped(autojump_clock):
    provider = ThrottlingProvider(retry_after=math.inf)
    policy = RetryPolicy(3, 5, backoff_initial=0.5, retry_after_max=60)
    await deliver(BATCH, provider, policy)
    first, second = provider.call_times
    assert 60 <= second - first <= 61
