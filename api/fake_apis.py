"""Stand-ins for Infobip, Sinch and Twilio: their send endpoints and their reports.

Each fake takes requests as its provider documents them (the path, the
authentication, the body's required fields), answers as it does, counts what it
was sent (messages, requests, duplicates: Infobip deduplicates by ``messageId``,
the others do not), and builds status reports in its provider's format and with
its authentication, and posts them (accepted, then delivered) to the webhook the
request names, or to ``callback_url``, retrying until they are taken. ``script``
holds the answers to give before the normal one: an HTTP status, ``"ok"``, or
``"hang"`` (taken, never answered); ``failure_rate`` refuses at random (500).
"""

import base64
import hmac
import itertools
import json
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
import trio
from quart import Response, request
from quart_trio import QuartTrio

from api.common import json_response
from api.errors import error_response, register_error_handlers
from smsproxy.providers.twilio import SIGNATURE_HEADER, signature

__all__ = ["FAKE_APIS", "FakeApi", "FakeInfobip", "FakeSinch", "FakeTwilio", "basic_header"]

log = structlog.get_logger("smsproxy.fake_provider")


@dataclass(frozen=True, slots=True)
class _Callback:
    url: str
    body: bytes
    headers: dict[str, str]


async def _posted(http: httpx.AsyncClient, callback: _Callback) -> bool:
    try:
        response = await http.post(callback.url, content=callback.body, headers=callback.headers)
    except httpx.HTTPError as error:
        log.warning("callback_failed", error=f"{type(error).__name__}: {error}")
        return False
    if not response.is_success:
        log.warning("callback_refused", status=response.status_code, body=response.text[:200])
    return response.is_success


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class FakeApi:
    """What every fake shares: the counts, the scripted faults, what was received."""

    secret: str
    counts: Counter[str] = field(default_factory=Counter)
    script: list[int | str] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    ids: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))
    callback_url: str | None = None
    """Where reports go when a request names no URL of its own."""
    webhook_user: str = ""
    webhook_password: str = ""
    latency: float = 0.0
    failure_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._outbox, self._reports = trio.open_memory_channel[_Callback](math.inf)

    def send_report(self, url: str | None, body: bytes, headers: dict[str, str]) -> None:
        if url:
            self._outbox.send_nowait(_Callback(url, body, headers))

    def basic_report(self, url: str | None, document: Any) -> None:
        self.send_report(url or self.callback_url, json.dumps(document).encode(), {
            "Content-Type": "application/json",
            "Authorization": basic_header(self.webhook_user, self.webhook_password)})

    async def deliver_reports(self, http: httpx.AsyncClient) -> None:
        """Post every report, in order, retrying each until it is answered 2xx."""
        async with self._reports:
            async for callback in self._reports:
                delay = 0.05
                while not await _posted(http, callback):
                    self.counts["callback_failures"] += 1
                    await trio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                self.counts["callbacks"] += 1

    def create_app(self) -> QuartTrio:
        app = QuartTrio(type(self).__name__)
        register_error_handlers(app)
        app.post(self.path)(self._take)
        app.get("/stats")(self._stats)
        return app

    async def _stats(self) -> Response:
        return json_response(dict(self.counts), 200)

    path = "/"

    async def _take(self, **_: str) -> Response:
        self.counts["requests"] += 1
        if not hmac.compare_digest(request.headers.get("Authorization", "").encode(),
                                   self.authorization().encode()):
            return error_response(401, "bad or missing credentials")
        body = await self.read()
        self.received.append({"path": request.path, "body": body,
                              "headers": dict(request.headers)})
        problem = self.problem(body)
        if problem:
            return error_response(400, problem)
        step = self.script.pop(0) if self.script else None
        if self.latency:
            await trio.sleep(self.latency)
        if step is None and self.rng.random() < self.failure_rate:
            step = 500
        if isinstance(step, int):
            return error_response(step, "scripted failure", {"Retry-After": "2"})
        answer = self.take(body)
        if step == "hang":
            await trio.sleep_forever()
        return answer

    def count(self, key: str) -> None:
        self.counts["messages"] += 1
        if key in self.seen:
            self.counts["duplicates"] += 1
        self.seen.add(key)

    def authorization(self) -> str:
        raise NotImplementedError

    async def read(self) -> Any:
        return await request.get_json(force=True, silent=True)

    def problem(self, body: Any) -> str | None:
        raise NotImplementedError

    def take(self, body: Any) -> Response:
        raise NotImplementedError


@dataclass
class FakeInfobip(FakeApi):
    path = "/sms/3/messages"

    def authorization(self) -> str:
        return f"App {self.secret}"

    def problem(self, body: Any) -> str | None:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages:
            return "messages is required"
        for message in messages:
            if not isinstance(message, dict) or not isinstance(message.get("destinations"), list):
                return "each message needs destinations"
            if not isinstance(message.get("content"), dict) or "text" not in message["content"]:
                return "each message needs content.text"
        return None

    def take(self, body: Any) -> Response:
        answered = []
        for message in body["messages"]:
            for destination in message["destinations"]:
                message_id = destination.get("messageId") or f"ib-{next(self.ids)}"
                if message_id in self.seen:  # Infobip deduplicates by messageId
                    self.counts["deduplicated"] += 1
                else:
                    self.count(message_id)
                    url = message.get("webhooks", {}).get("delivery", {}).get("url")
                    for group in ("PENDING", "DELIVERED"):
                        self.basic_report(url, self.report({message_id: group}))
                answered.append({"messageId": message_id, "destination": destination["to"],
                                 "status": {"groupId": 1, "groupName": "PENDING",
                                            "id": 26, "name": "PENDING_ACCEPTED"}})
        return json_response({"bulkId": f"bulk-{next(self.ids)}", "messages": answered}, 200)

    @staticmethod
    def report(groups: Mapping[str, str]) -> dict[str, Any]:
        """A delivery report body: each message id with its status group."""
        return {"results": [{"messageId": message_id, "status": {"groupName": group}}
                            for message_id, group in groups.items()]}


@dataclass
class FakeSinch(FakeApi):
    path = "/xms/v1/<plan>/batches"
    max_recipients: int = 1000

    def authorization(self) -> str:
        return f"Bearer {self.secret}"

    def problem(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "a JSON object is required"
        for name in ("to", "from", "body"):
            if not body.get(name):
                return f"{name} is required"
        if not isinstance(body["to"], list) or len(body["to"]) > self.max_recipients:
            return f"to must list 1 to {self.max_recipients} recipients"
        return None

    def take(self, body: Any) -> Response:
        batch_id = f"sinch-batch-{next(self.ids)}"
        for recipient in body["to"]:
            self.count(f"{body['body']}\x00{recipient}")
            for status in ("Dispatched", "Delivered"):
                self.basic_report(body.get("callback_url"),
                                  self.report(batch_id, recipient, status))
        return json_response({"id": batch_id, "to": body["to"], "from": body["from"],
                              "body": body["body"], "type": "mt_text",
                              "delivery_report": body.get("delivery_report", "none")}, 201)

    @staticmethod
    def report(batch_id: str, recipient: str, status: str) -> dict[str, Any]:
        return {"type": "recipient_delivery_report_sms", "batch_id": batch_id,
                "recipient": recipient.removeprefix("+"), "status": status, "code": 0}


@dataclass
class FakeTwilio(FakeApi):
    path = "/2010-04-01/Accounts/<sid>/Messages.json"
    account_sid: str = "AC0"

    def authorization(self) -> str:
        return basic_header(self.account_sid, self.secret)

    async def read(self) -> Any:
        return dict((await request.form).items())

    def problem(self, body: Any) -> str | None:
        if not body.get("To"):
            return "To is required"
        if not body.get("From") or not body.get("Body"):
            return "From and Body are required"
        return None

    def take(self, body: Any) -> Response:
        sid = f"SM{next(self.ids):032d}"
        self.count(f"{body['Body']}\x00{body['To']}")
        url = body.get("StatusCallback") or self.callback_url
        if url:
            for status in ("sent", "delivered"):
                self.send_report(url, *self.report(url, sid, status))
        return json_response({"sid": sid, "status": "queued", "to": body["To"],
                              "from": body["From"], "body": body["Body"]}, 201)

    def report(self, url: str, sid: str, status: str) -> tuple[bytes, dict[str, str]]:
        """A status callback to ``url``: its form body and its signed headers."""
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid}
        return urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: signature(self.secret, url, form)}


FAKE_APIS: dict[str, type[FakeApi]] = {"infobip": FakeInfobip, "sinch": FakeSinch,
                                      "twilio": FakeTwilio}
