"""The FastSMSing adapter: ``POST /v1/batches``, one request a batch, Bearer key.

Its answer is ``202 {"accepted": n}``; every other way a call ends maps as in
:mod:`._http`. Its status reports are ``{message_id: status}``, signed with HMAC
(:mod:`smsproxy.signing`), and name our message ids."""

from collections.abc import Mapping
from typing import Any

import httpx

from smsproxy.models import Batch, Message
from smsproxy.providers._http import (
    HTTP_LIMITS,
    json_object,
    read_json,
    reply_field,
    reply_time,
    transport_errors,
    unexpected,
)
from smsproxy.providers._http import open_http_client as _open
from smsproxy.providers.protocol import Reply, Report, Sent, WebhookRequest
from smsproxy.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from smsproxy.statuses import Status

__all__ = ["HTTP_LIMITS", "FastSmsClient", "fastsmsing_reply", "open_http_client"]

BATCHES_PATH = "/v1/batches"


def open_http_client(base_url: str, api_key: str | None, timeout: float,
                     max_rate: float | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return _open(base_url, timeout, headers, max_rate=max_rate)


class FastSmsClient:
    def __init__(self, http: httpx.AsyncClient, name: str = "fastsmsing", *,
                 webhook_secret: str | None = None, max_batch: int | None = None,
                 sender: str | None = None) -> None:
        self._http = http
        self.name = name
        self.max_batch = max_batch
        self._webhook_secret = webhook_secret
        self._sender = sender
        self.status_url: str | None = None

    async def send(self, batch: Batch) -> Sent:
        body = {"messages": [self._message(m) for m in batch.messages]}
        with transport_errors():
            response = await self._http.post(BATCHES_PATH, json=body)
        answer = read_json(response, 202)
        if not (isinstance(answer, dict) and type(answer.get("accepted")) is int):
            raise unexpected(response, 'the documented body {"accepted": n}')
        return Sent(tuple(m.id for m in batch.messages))

    def _message(self, message: Message) -> dict[str, str]:
        item = {"message_id": message.id, "phone_number": message.phone_number,
                "content": message.content}
        sender = message.sender or self._sender
        if sender:
            item["sender"] = sender
        return item

    async def close(self) -> None:
        await self._http.aclose()

    def authenticate(self, request: WebhookRequest, now: float) -> str | None:
        if self._webhook_secret is None:
            return None
        headers = {k.lower(): v for k, v in request.headers.items()}
        return verify(request.body, self._webhook_secret,
                      headers.get(SIGNATURE_HEADER.lower()),
                      headers.get(TIMESTAMP_HEADER.lower()), now=now)

    def reports(self, request: WebhookRequest) -> list[Report]:
        body = json_object(request.body)
        if not all(isinstance(v, str) for v in body.values()):
            raise ValueError("a report maps message ids to status names")
        return [Report(message_id, _STATUSES.get(name), name) for message_id, name in body.items()]

    def replies(self, request: WebhookRequest) -> list[Reply]:
        return [fastsmsing_reply(json_object(request.body))]


_STATUSES = {s.value: s for s in (Status.CONFIRMED, Status.FAILED, Status.DELIVERED)}


def fastsmsing_reply(body: Mapping[str, Any]) -> Reply:
    """FastSMSing's inbound format: ``{"from", "to", "content", "received_at"}``."""
    return Reply(reply_field(body, "from"), reply_field(body, "to"),
                 reply_field(body, "content"), reply_time(body.get("received_at")))
