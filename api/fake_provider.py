"""``smsproxy fake-provider``: a stand-in FastSMSing for end-to-end tests, demos and benchmarks.

It takes batches on ``POST /v1/batches``, deduplicates them by ``message_id``, and
reports each new message back through signed callbacks, CONFIRMED then DELIVERED,
retrying callbacks that fail. Faults on demand: latency, refused requests (500),
requests accepted but never answered, and lost callbacks. ``GET /v1/stats`` tells
what the proxy cost.
"""

import hmac
import json
import math
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import structlog
import trio
from pydantic import BaseModel, Field, ValidationError
from quart import Response, request
from quart_trio import QuartTrio

from actors import receive_ready
from api.common import json_response
from api.errors import error_response, register_error_handlers
from api.fake_apis import FakeApi
from api.schemas import describe_validation_error
from api.serving import serve_app
from smsproxy.providers.fastsmsing import HTTP_LIMITS
from smsproxy.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from smsproxy.statuses import Status

__all__ = ["FakeProvider", "FakeProviderSettings", "run_fake_api", "run_fake_provider"]

log = structlog.get_logger("smsproxy.fake_provider")

CALLBACK_BATCH = 500


@dataclass(frozen=True, slots=True)
class FakeProviderSettings:
    callback_url: str
    secret: str | None = None
    api_key: str | None = None
    latency: float = 0.0
    failure_rate: float = 0.0
    timeout_rate: float = 0.0
    callback_failure_rate: float = 0.0
    seed: int | None = None


class _Item(BaseModel):
    message_id: str
    phone_number: str
    content: str
    sender: str | None = None


class _BatchBody(BaseModel):
    messages: list[_Item]


class _Reply(BaseModel):
    from_: str = Field(alias="from")
    to: str
    content: str


@dataclass
class FakeProvider:
    settings: FakeProviderSettings
    counts: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.settings.seed)
        self._to_report, self._reports = trio.open_memory_channel[str](math.inf)
        self.http: httpx.AsyncClient | None = None
        """Set while it runs: the client its reports and replies go out with."""

    def create_app(self) -> QuartTrio:
        app = QuartTrio("fake-provider")
        register_error_handlers(app)
        app.post("/v1/batches")(self._take_batch)
        app.get("/v1/stats")(self._stats)
        app.post("/v1/replies")(self._reply)
        return app

    async def _reply(self) -> Response:
        """A test's stand-in for a phone replying: the body ``{"from", "to", "content"}``
        goes to the proxy's inbound webhook (the callback URL's ``/status`` made
        ``/inbound``), signed, with the time it arrived; the proxy's answer comes back."""
        assert self.http is not None
        try:
            body = _Reply.model_validate_json(await request.get_data(as_text=False))
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        payload = json.dumps(body.model_dump(by_alias=True) | {"received_at": time.time()})
        url = self.settings.callback_url.removesuffix("/status") + "/inbound"
        try:
            answer = await self.http.post(url, content=payload.encode(),
                                          headers=self._signed(payload.encode()))
        except httpx.HTTPError as error:
            return error_response(502, f"the proxy did not answer: {error}")
        self.counts["replies"] += 1
        return json_response({"proxy_status": answer.status_code}, 200)

    def _signed(self, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.settings.secret:
            now = int(time.time())
            headers |= {TIMESTAMP_HEADER: str(now),
                        SIGNATURE_HEADER: sign(body, self.settings.secret, now)}
        return headers

    async def _take_batch(self) -> Response:
        self.counts["requests"] += 1
        if not self._authorized(request.headers.get("Authorization", "")):
            return error_response(401, "bad or missing API key")
        try:
            batch = _BatchBody.model_validate_json(await request.get_data(as_text=False))
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        if self.settings.latency:
            await trio.sleep(self.settings.latency)
        if self.rng.random() < self.settings.failure_rate:
            self.counts["refused"] += 1
            return error_response(500, "injected failure")
        self._accept([item.message_id for item in batch.messages])
        if self.rng.random() < self.settings.timeout_rate:
            self.counts["unanswered"] += 1
            await trio.sleep_forever()  # taken, but the answer never comes
        return json_response({"accepted": len(batch.messages)}, 202)

    def _authorized(self, header: str) -> bool:
        if self.settings.api_key is None:
            return True
        return hmac.compare_digest(header.encode(), f"Bearer {self.settings.api_key}".encode())

    def _accept(self, message_ids: Sequence[str]) -> None:
        self.counts["messages"] += len(message_ids)
        for message_id in message_ids:
            if message_id in self.seen:
                self.counts["duplicates"] += 1
                continue
            self.seen.add(message_id)
            self._to_report.send_nowait(message_id)

    async def _stats(self) -> Response:
        return json_response(dict(self.counts) | {"delivered": len(self.delivered)}, 200)

    async def report(self, http: httpx.AsyncClient) -> None:
        """Confirm, then deliver, every new message through the callback; forever."""
        async with self._reports:
            while True:
                first = await self._reports.receive()
                ids = receive_ready(self._reports, first, CALLBACK_BATCH)
                await self._callback(http, dict.fromkeys(ids, Status.CONFIRMED.value))
                await self._callback(http, dict.fromkeys(ids, Status.DELIVERED.value))
                self.delivered.update(ids)

    async def _callback(self, http: httpx.AsyncClient, updates: dict[str, str]) -> None:
        body = json.dumps(updates).encode()
        delay = 0.05
        while True:
            if await self._post_callback(http, body):
                self.counts["callbacks"] += 1
                return
            self.counts["callback_failures"] += 1
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _post_callback(self, http: httpx.AsyncClient, body: bytes) -> bool:
        if self.rng.random() < self.settings.callback_failure_rate:
            return False  # an injected loss: the proxy never sees this callback
        headers = self._signed(body)
        try:
            response = await http.post(self.settings.callback_url, content=body, headers=headers)
        except httpx.HTTPError as error:
            log.warning("callback_failed", error=f"{type(error).__name__}: {error}")
            return False
        if response.status_code != 204:
            log.warning("callback_refused", status=response.status_code, body=response.text[:200])
            return False
        return True


async def run_fake_provider(
    settings: FakeProviderSettings,
    host: str,
    port: int,
    *,
    stop: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the fake provider until ``stop`` is set or SIGTERM/SIGINT arrives."""
    provider = FakeProvider(settings)
    client = httpx.AsyncClient(timeout=10, limits=HTTP_LIMITS)
    async with client as http, trio.open_nursery() as nursery:
        provider.http = http
        nursery.start_soon(provider.report, http)
        await serve_app(
            provider.create_app(), host, port, grace=1.0,
            stop=trio.Event() if stop is None else stop, handle_signals=handle_signals,
            task_status=task_status,
        )
        nursery.cancel_scope.cancel()


async def run_fake_api(
    fake: FakeApi, host: str, port: int, *, stop: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve an Infobip, Sinch or Twilio fake, and post its reports, until stopped."""
    client = httpx.AsyncClient(timeout=10, limits=HTTP_LIMITS)
    async with client as http, trio.open_nursery() as nursery:
        nursery.start_soon(fake.deliver_reports, http)
        await serve_app(
            fake.create_app(), host, port, grace=1.0,
            stop=trio.Event() if stop is None else stop, handle_signals=handle_signals,
            task_status=task_status,
        )
        nursery.cancel_scope.cancel()
