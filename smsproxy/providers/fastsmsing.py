"""The FastSMSing client: hands batches to the real provider over HTTP (httpx on trio).

One pooled ``httpx.AsyncClient`` serves the whole process. Every way a call can
end maps onto the provider error tree here, in one place, so that nothing else
escapes a sender::

    202 {"accepted": n}         accepted
    429                         ProviderThrottled (retried, not before Retry-After)
    other 4xx but 408           ProviderRejected (not retried: resending cannot help)
    408, 500, 503, other 5xx,   ProviderUnavailable (retried; the provider did not
      refused connection,         take the batch)
      connect or pool timeout
    502, 504, other answers,    ProviderOutcomeUnknown (retried, but the provider
      202 with another body,      may have taken the batch: its messages get a
      broken or undecodable       grace for status reports before they can fail)
      answer
    read or write timeout       ProviderTimeout (an outcome unknown)
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from smsproxy.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnavailable,
)
from smsproxy.models import Batch

__all__ = ["HTTP_LIMITS", "FastSmsClient", "open_http_client"]

BATCHES_PATH = "/v1/batches"

HTTP_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=4.0)
"""Idle connections are dropped after 4 s: before common servers drop them (5 s and
up), so a request never races a closing connection and wastes a paid attempt."""


def open_http_client(base_url: str, api_key: str | None, timeout: float) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers=headers,
        timeout=timeout,
        limits=HTTP_LIMITS,
    )


class FastSmsClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def send(self, batch: Batch) -> None:
        body = {
            "messages": [
                {"message_id": m.id, "phone_number": m.phone_number, "content": m.content}
                for m in batch.messages
            ]
        }
        with _transport_errors():
            response = await self._http.post(BATCHES_PATH, json=body)
            _raise_for_answer(response)

    async def close(self) -> None:
        await self._http.aclose()


@contextmanager
def _transport_errors() -> Iterator[None]:
    """Every failure of the call itself, as the provider error it is."""
    try:
        yield
    except _NEVER_SENT as error:
        raise ProviderUnavailable(f"provider unreachable: {_describe(error)}") from error
    except httpx.TimeoutException as error:
        raise ProviderTimeout(f"provider timed out: {_describe(error)}") from error
    except (httpx.HTTPError, httpx.StreamError) as error:
        raise ProviderOutcomeUnknown(f"broken answer: {_describe(error)}") from error


_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
               httpx.UnsupportedProtocol, httpx.ProxyError)
"""Failures before the request left this process: the provider cannot have taken it."""

_NOT_TAKEN = frozenset({408, 500, 503})
"""Answers that say the provider did not take the batch (other 5xx count as this too,
but for the gateway answers 502 and 504, behind which the provider may have)."""


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _raise_for_answer(response: httpx.Response) -> None:
    code = response.status_code
    if code == 202:
        _check_accepted(response)
        return
    summary = f"provider answered {code}: {response.text[:200]}"
    error: ProviderError
    if code == 429:
        error = ProviderThrottled(summary, _retry_after(response))
    elif 400 <= code < 500 and code != 408:
        error = ProviderRejected(summary)
    elif code in _NOT_TAKEN or (code >= 500 and code not in (502, 504)):
        error = ProviderUnavailable(summary)
    else:
        error = ProviderOutcomeUnknown(summary)
    raise error


def _check_accepted(response: httpx.Response) -> None:
    """A 202 must say ``{"accepted": n}``; anything else may or may not mean it took them."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not (isinstance(body, dict) and type(body.get("accepted")) is int):
        raise ProviderOutcomeUnknown(
            f"provider answered 202 without the documented body: {response.content[:200]!r}"
        )


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is rare here and ignored)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None
