"""The Twilio adapter: ``POST {url}/2010-04-01/Accounts/{sid}/Messages.json``.

Form-encoded ``To``, ``From``, ``Body`` and ``StatusCallback``, HTTP basic auth
with the account SID and auth token, one message a request (a batch of ten is ten
paid requests: Twilio is the failover target, not the everyday route). The
status callback URL carries our message id (``?message_id=``), so a report names
the message without a lookup; Twilio signs it with ``X-Twilio-Signature``: the
base64 HMAC-SHA1, keyed by the auth token, of the URL it called followed by each
form field's name and value, sorted by name.
"""

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from smsproxy.errors import ProviderError
from smsproxy.models import Batch, Message
from smsproxy.providers._http import (
    open_http_client,
    read_json,
    reply_field,
    transport_errors,
    unexpected,
)
from smsproxy.providers.protocol import NOTHING, Reply, Report, Sent, WebhookRequest
from smsproxy.statuses import Status

__all__ = ["SIGNATURE_HEADER", "STATUSES", "TwilioProvider", "signature"]

SIGNATURE_HEADER = "X-Twilio-Signature"

STATUSES: Mapping[str, Status] = {
    **dict.fromkeys(("accepted", "scheduled", "queued", "sending", "sent"), Status.CONFIRMED),
    "delivered": Status.DELIVERED,
    "read": Status.DELIVERED,
    **dict.fromkeys(("undelivered", "failed", "canceled"), Status.FAILED),
}


def signature(auth_token: str, url: str, form: Mapping[str, str]) -> str:
    signed = url + "".join(name + form[name] for name in sorted(form))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TwilioProvider:
    max_batch: int | None = None

    def __init__(
        self, name: str, url: str, account_sid: str, auth_token: str, timeout: float, *,
        sender: str | None = None, status_url: str | None = None,
        max_batch: int | None = None,
        max_rate: float | None = None,
    ) -> None:
        self.name = name
        self.max_batch = max_batch
        self._http: httpx.AsyncClient = open_http_client(
            url, timeout, auth=(account_sid, auth_token), max_rate=max_rate)
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._auth_token = auth_token
        self._sender = sender
        self.status_url = status_url

    def request_form(self, message: Message) -> dict[str, str]:
        form = {"To": message.phone_number, "From": message.sender or self._sender or "",
                "Body": message.content}
        if self.status_url:
            separator = "&" if urlsplit(self.status_url).query else "?"
            form["StatusCallback"] = (self.status_url + separator
                                      + urlencode({"message_id": message.id}))
        return form

    async def send(self, batch: Batch) -> Sent:
        sent = NOTHING
        for message in batch.messages:
            try:
                sent += await self._send_one(message)
            except ProviderError as error:
                error.taken, error.refs, error.requests_taken = (
                    sent.taken, sent.refs, sent.requests)
                raise
        return sent

    async def _send_one(self, message: Message) -> Sent:
        with transport_errors():
            response = await self._http.post(self._path, data=self.request_form(message))
        answer = read_json(response, 201)
        sid = answer.get("sid") if isinstance(answer, dict) else None
        if not isinstance(sid, str) or not sid:
            raise unexpected(response, "the message's sid")
        return Sent((message.id,), 1, {message.id: sid})

    async def close(self) -> None:
        await self._http.aclose()

    def authenticate(self, request: WebhookRequest, now: float) -> str | None:
        given = next((v for k, v in request.headers.items()
                      if k.lower() == SIGNATURE_HEADER.lower()), "")
        if not given:
            return "missing signature"
        expected = signature(self._auth_token, request.url, request.form)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return "wrong signature"
        return None

    def reports(self, request: WebhookRequest) -> list[Report]:
        status = request.form.get("MessageStatus")
        sid = request.form.get("MessageSid")
        if not status or not sid:
            raise ValueError("a status callback needs its MessageSid and MessageStatus")
        ours = parse_qs(urlsplit(request.url).query).get("message_id")
        if ours:
            return [Report(ours[0], STATUSES.get(status), status)]
        return [Report(sid, STATUSES.get(status), status, by_ref=True)]


    def replies(self, request: WebhookRequest) -> list[Reply]:
        return [Reply(reply_field(request.form, "From"), reply_field(request.form, "To"),
                      reply_field(request.form, "Body"), None)]
