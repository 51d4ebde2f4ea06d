"""The Sinch adapter: ``POST {url}/xms/v1/{service_plan_id}/batches``, Bearer token.

One Sinch batch is one body to up to 1,000 recipients, so the messages of one of
our batches that share their text and their sender (a campaign) go in one
request, and the same number is never twice in one request (a second message to
it goes in the next). Reports come per recipient (``delivery_report:
per_recipient``) and name Sinch's batch id and the recipient: that pair is the
message's ref (``Sent.refs``). The webhook is called with the HTTP basic
credentials the shop set for it.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from smsproxy.errors import ProviderError
from smsproxy.models import Batch, Message
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
from smsproxy.providers.protocol import NOTHING, Reply, Report, Sent, WebhookRequest
from smsproxy.statuses import Status

__all__ = ["MAX_RECIPIENTS", "STATUSES", "SinchProvider", "campaigns", "ref_of"]

MAX_RECIPIENTS = 1000

STATUSES: Mapping[str, Status] = {
    "Queued": Status.CONFIRMED,
    "Dispatched": Status.CONFIRMED,
    "Delivered": Status.DELIVERED,
    **dict.fromkeys(("Failed", "Rejected", "Expired", "Aborted", "Cancelled", "Deleted",
                     "Unknown"), Status.FAILED),
}


def ref_of(batch_id: str, recipient: str) -> str:
    """A message's ref at Sinch: its batch there and its recipient."""
    return f"{batch_id}/{digits(recipient)}"


def campaigns(messages: Sequence[Message], default_sender: str | None,
              limit: int = MAX_RECIPIENTS) -> list[list[Message]]:
    """The messages as Sinch requests: one per text and sender, at most ``limit``
    recipients each, no number twice in one (first seen, first sent)."""
    groups: dict[tuple[str, str | None], list[list[Message]]] = {}
    for message in messages:
        requests = groups.setdefault((message.content, message.sender or default_sender), [])
        for request in requests:
            if len(request) < limit and all(m.phone_number != message.phone_number
                                            for m in request):
                request.append(message)
                break
        else:
            requests.append([message])
    return [request for requests in groups.values() for request in requests]


class SinchProvider:
    def __init__(
        self, name: str, url: str, service_plan_id: str, api_token: str, timeout: float, *,
        sender: str | None = None, status_url: str | None = None,
        webhook_user: str = "", webhook_password: str = "", max_batch: int | None = None,
        max_rate: float | None = None,
    ) -> None:
        self.name = name
        self.max_batch = max_batch
        self._http: httpx.AsyncClient = open_http_client(
            url, timeout, {"Authorization": f"Bearer {api_token}"}, max_rate=max_rate)
        self._path = f"/xms/v1/{service_plan_id}/batches"
        self._sender = sender
        self.status_url = status_url
        self._webhook_credentials = (webhook_user, webhook_password)

    def request_body(self, messages: Sequence[Message]) -> dict[str, Any]:
        first = messages[0]
        body: dict[str, Any] = {
            "to": [m.phone_number for m in messages],
            "from": first.sender or self._sender or "",
            "body": first.content,
            "delivery_report": "per_recipient",
        }
        if self.status_url:
            body["callback_url"] = self.status_url
        return body

    async def send(self, batch: Batch) -> Sent:
        sent = NOTHING
        for request in campaigns(batch.messages, self._sender):
            try:
                sent += await self._send_one(request)
            except ProviderError as error:
                error.taken, error.refs, error.requests_taken = (
                    sent.taken, sent.refs, sent.requests)
                raise
        return sent

    async def _send_one(self, messages: Sequence[Message]) -> Sent:
        with transport_errors():
            response = await self._http.post(self._path, json=self.request_body(messages))
        answer = read_json(response, 201)
        batch_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(batch_id, str) or not batch_id:
            raise unexpected(response, "its batch id")
        return Sent(tuple(m.id for m in messages), 1,
                    {m.id: ref_of(batch_id, m.phone_number) for m in messages})

    async def close(self) -> None:
        await self._http.aclose()

    def authenticate(self, request: WebhookRequest, now: float) -> str | None:
        return basic_auth_problem(request.headers, *self._webhook_credentials)

    def reports(self, request: WebhookRequest) -> list[Report]:
        body = json_object(request.body)
        batch_id, recipient, status = (body.get("batch_id"), body.get("recipient"),
                                       body.get("status"))
        if not all(isinstance(v, str) and v for v in (batch_id, recipient, status)):
            raise ValueError("a recipient report needs its batch_id, recipient and status")
        assert isinstance(batch_id, str) and isinstance(recipient, str)
        assert isinstance(status, str)
        return [Report(ref_of(batch_id, recipient), STATUSES.get(status), status, by_ref=True)]


    def replies(self, request: WebhookRequest) -> list[Reply]:
        body = json_object(request.body)
        if body.get("type") != "mo_text":
            raise ValueError("an inbound request is a 'mo_text' (media is not taken)")
        return [Reply(reply_field(body, "from"), reply_field(body, "to"),
                      reply_field(body, "body"), reply_time(body.get("received_at")))]
