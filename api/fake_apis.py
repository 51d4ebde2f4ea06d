"""Stand-ins for Infobip, Sinch and Twilio: their send endpoints and their reports.

Each fake takes requests as its provider documents them (the path, the
authentication, the body's required fields), answers as it does, counts what it
was sent (messages, requests, duplicates: Infobip deduplicates by ``messageId``,
the others do not), and builds status reports in its provider's format and with
its authentication, for the proxy's webhook. ``script`` holds the answers to give
before the normal one: an HTTP status, or ``"hang"`` (taken, never answered).
"""

import base64
import hmac
import itertools
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import trio
from quart import Response, request
from quart_trio import QuartTrio

from api.common import json_response
from api.errors import error_response, register_error_handlers
from smsproxy.providers.twilio import SIGNATURE_HEADER, signature

__all__ = ["FakeApi", "FakeInfobip", "FakeSinch", "FakeTwilio", "basic_header"]


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

    def create_app(self) -> QuartTrio:
        app = QuartTrio(type(self).__name__)
        register_error_handlers(app)
        app.post(self.path)(self._take)
        return app

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
        return json_response({"sid": sid, "status": "queued", "to": body["To"],
                              "from": body["From"], "body": body["Body"]}, 201)

    def report(self, url: str, sid: str, status: str) -> tuple[bytes, dict[str, str]]:
        """A status callback to ``url``: its form body and its signed headers."""
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": self.account_sid}
        return urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: signature(self.secret, url, form)}
