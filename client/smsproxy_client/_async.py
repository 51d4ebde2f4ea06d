"""The async client, on ``httpx.AsyncClient``: under trio and asyncio alike (its waits
are anyio's, as httpx's own I/O is)."""

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import anyio
import httpx

from smsproxy_client import _core
from smsproxy_client._core import Call, RetryPolicy
from smsproxy_client._errors import SmsProxyError
from smsproxy_client._models import Accepted, Event, MessageStatus, Outgoing, Page, Status

__all__ = ["AsyncClient"]


class AsyncClient:
    """smsproxy's API: ``send``, ``send_many``, ``status``, ``events``, ``find``.

    ``bulk_limit`` is the server's ``--bulk-max`` (1,000 by default): ``send_many``
    splits into requests of at most that many. ``transport`` is for tests (an
    ``httpx.MockTransport``)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, bulk_limit: int = 1000,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout,
                                  transport=transport)
        self._retry = retry or RetryPolicy()
        self.bulk_limit = bulk_limit

    async def send(self, phone_number: str, content: str, *, sender: str | None = None,
             callback_url: str | None = None, idempotency_key: str | None = None,
             **options: Any) -> Accepted:
        """Send one message; with ``idempotency_key`` (made up when absent) a retried
        call is answered from the first and never texts twice."""
        message = Outgoing(phone_number, content, sender, callback_url, options)
        return _core.read_sent(await self._call(_core.send_call(message, idempotency_key)))

    async def send_many(self, messages: Iterable[Outgoing]) -> list[Accepted]:
        """Send many, in requests of at most ``bulk_limit``, in order, each all or
        none. When one fails, its error carries what the requests before it had
        accepted (``error.accepted``); the rest were not sent."""
        accepted: list[Accepted] = []
        for call in _core.bulk_calls(list(messages), self.bulk_limit):
            try:
                accepted += _core.read_bulk(await self._call(call))
            except SmsProxyError as error:
                error.accepted = accepted
                raise
        return accepted

    async def status(self, message_id: str) -> MessageStatus:
        return _core.read_status(await self._call(_core.status_call(message_id)))

    async def events(self, message_id: str) -> list[Event]:
        return _core.read_events(await self._call(_core.events_call(message_id)))

    async def find(self, *, status: Status | str | None = None, since: str | None = None,
             until: str | None = None, limit: int = 100, cursor: str | None = None) -> Page:
        """One page of messages, newest first; pass its ``next`` as ``cursor``."""
        call = _core.find_call(status, since, until, limit, cursor)
        return _core.read_page(await self._call(call))

    async def _call(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self._http.request(call.method, call.path, json=call.json,
                                                   params=call.params, headers=call.headers)
            except httpx.TransportError as error:
                outcome = error
            else:
                if outcome.is_success:
                    return outcome
            wait = self._retry.wait(outcome, attempt)
            if wait is None:
                raise _core.failure(outcome)
            await anyio.sleep(wait)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        await self.aclose()
