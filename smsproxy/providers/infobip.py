"""The Infobip adapter: ``POST {url}/sms/3/messages``, ``Authorization: App <key>``.

One request carries the whole batch: each message with its own text, its number
and our message id as its ``messageId``, so that Infobip's reports name our ids
and a resend of the same id is deduplicated there. The answer is ``200`` with
``messages``; a message it refuses there is still named in a REJECTED report
later, which fails it. Reports reach the webhook as ``{"results": [...]}``, with
the HTTP basic credentials the shop set for it.
"""

from collections.abc import Mapping
from typing import Any

import httpx

from smsproxy.models import Batch
from smsproxy.providers._http import (
    basic_auth_problem,
    digits,
    json_object,
    open_http_client,
    read_json,
    reply_field,
    reply_time,
    transport_errors,
    unexpected,
)
from smsproxy.providers.protocol import Reply, Report, Sent, WebhookRequest
from smsproxy.statuses import Status

__all__ = ["MESSAGES_PATH", "STATUS_GROUPS", "InfobipProvider"]

MESSAGES_PATH = "/sms/3/messages"

STATUS_GROUPS: Mapping[str, Status] = {
    "ACCEPTED": Status.CONFIRMED,
    "PENDING": Status.CONFIRMED,
    "DELIVERED": Status.DELIVERED,
    "UNDELIVERABLE": Status.FAILED,
    "EXPIRED": Status.FAILED,
    "REJECTED": Status.FAILED,
}
"""A report's ``status.groupName``, as ours (intermediate ones only confirm)."""


class InfobipProvider:
    def __init__(
        self, name: str, url: str, api_key: str, timeout: float, *,
        sender: str | None = None, status_url: str | None = None,
        webhook_user: str = "", webhook_password: str = "", max_batch: int | None = None,
        max_rate: float | None = None,
    ) -> None:
        self.name = name
        self.max_batch = max_batch
        self._http: httpx.AsyncClient = open_http_client(
            url, timeout, {"Authorization": f"App {api_key}"}, max_rate=max_rate)
        self._sender = sender
        self.status_url = status_url
        self._webhook_credentials = (webhook_user, webhook_password)

    def request_body(self, batch: Batch) -> dict[str, Any]:
        return {"messages": [self._message(m.id, m.phone_number, m.content, m.sender)
                             for m in batch.messages]}

    def _message(self, message_id: str, number: str, text: str,
                 sender: str | None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "destinations": [{"to": digits(number), "messageId": message_id}],
            "content": {"text": text},
        }
        if sender or self._sender:
            message["sender"] = sender or self._sender
        if self.status_url:
            message["webhooks"] = {"delivery": {"url": self.status_url,
                                                "intermediateReport": True}}
        return message

    async def send(self, batch: Batch) -> Sent:
        with transport_errors():
            response = await self._http.post(MESSAGES_PATH, json=self.request_body(batch))
        answer = read_json(response, 200)
        if not (isinstance(answer, dict) and isinstance(answer.get("messages"), list)):
            raise unexpected(response, "its messages")
        return Sent(tuple(m.id for m in batch.messages))

    async def close(self) -> None:
        await self._http.aclose()

    def authenticate(self, request: WebhookRequest, now: float) -> str | None:
        return basic_auth_problem(request.headers, *self._webhook_credentials)

    def reports(self, request: WebhookRequest) -> list[Report]:
        body = json_object(request.body)
        results = body.get("results")
        if not isinstance(results, list):
            raise ValueError("a report needs its results")
        reports = []
        for result in results:
            message_id = result.get("messageId") if isinstance(result, dict) else None
            status = result.get("status") if isinstance(result, dict) else None
            group = status.get("groupName") if isinstance(status, dict) else None
            if not isinstance(message_id, str) or not isinstance(group, str):
                raise ValueError("each result needs its messageId and status.groupName")
            reports.append(Report(message_id, STATUS_GROUPS.get(group), group))
        return reports



    def replies(self, request: WebhookRequest) -> list[Reply]:
        results = json_object(request.body).get("results")
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise ValueError("an inbound request needs its results")
        return [Reply(reply_field(r, "from"), reply_field(r, "to"), reply_field(r, "text"),
                      reply_time(r.get("receivedAt"))) for r in results]
