"""The FastSMSing client: hands batches to the real provider over HTTP (httpx on trio).

One pooled ``httpx.AsyncClient`` serves the whole process. Answers map onto the
provider error tree in one place::

    202                         accepted
    408, 5xx, other, timeout,   ProviderUnavailable / ProviderTimeout (retried)
      refused or broken
    429                         ProviderThrottled (retried, not before Retry-After)
    other 4xx                   ProviderRejected (not retried: resending cannot help)
"""

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from smsproxy.errors import (
    ProviderError,
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
    try:
        yield
    except httpx.TimeoutException as error:
        raise ProviderTimeout(f"provider timed out: {type(error).__name__}") from error
    except httpx.TransportError as error:
        reason = f"provider unreachable: {type(error).__name__}: {error}"
        raise ProviderUnavailable(reason) from error


def _raise_for_answer(response: httpx.Response) -> None:
    code = response.status_code
    if code == 202:
        return
    summary = f"provider answered {code}: {response.text[:200]}"
    error: ProviderError
    if code == 429:
        error = ProviderThrottled(summary, _retry_after(response))
    elif 400 <= code < 500 and code != 408:
        error = ProviderRejected(summary)
    else:
        error = ProviderUnavailable(summary)
    raise error


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is rare here and ignored)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None
