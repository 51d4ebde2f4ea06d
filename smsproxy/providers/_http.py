"""What every HTTP adapter shares: the pooled client, and how a call's failures map
onto the provider error tree, in one place, so that nothing else escapes a sender::

    the adapter's success code      taken (the adapter reads the answer)
    429                             ProviderThrottled (retried, not before Retry-After)
    other 4xx but 408               ProviderRejected (not retried: resending cannot help)
    408, 500, 503, other 5xx,       ProviderUnavailable (retried; the provider did not
      refused connection,             take the request)
      connect or pool timeout
    502, 504, other answers,        ProviderOutcomeUnknown (retried, but the provider
      a success with another body,    may have taken the request: its messages get a
      broken or undecodable answer    grace for status reports before they can fail)
    read or write timeout           ProviderTimeout (an outcome unknown)
"""

import base64
import hmac
import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx

from smsproxy.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = [
    "HTTP_LIMITS",
    "basic_auth_problem",
    "digits",
    "json_object",
    "open_http_client",
    "read_json",
    "reply_field",
    "reply_time",
    "transport_errors",
    "unexpected",
]

HTTP_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16, keepalive_expiry=4.0)
"""Idle connections are dropped after 4 s: before common servers drop them (5 s and
up), so a request never races a closing connection and wastes a paid attempt."""


def open_http_client(
    base_url: str, timeout: float, headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None, max_rate: float | None = None,
) -> httpx.AsyncClient:
    """A pooled client; with ``max_rate``, its requests are paced to that many a second."""
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers=dict(headers or {}),
        auth=auth,
        timeout=timeout,
        limits=HTTP_LIMITS,
        event_hooks={"request": [Pacer(max_rate)]} if max_rate else None,
    )


class Pacer:
    """At most ``rate`` requests a second, evenly spaced: each request takes the next
    free slot and waits for it (concurrent senders queue up in slot order). The wait
    is part of the attempt, so it counts toward ``--provider-timeout``. (On anyio, as
    httpx itself is: the domain runs on whichever loop drives it.)"""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = -math.inf

    async def __call__(self, request: httpx.Request) -> None:
        now = anyio.current_time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        await anyio.sleep(slot - now)


@contextmanager
def transport_errors() -> Iterator[None]:
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
"""Answers that say the provider did not take the request (other 5xx count as this
too, but for the gateway answers 502 and 504, behind which the provider may have)."""


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def read_json(response: httpx.Response, success: int) -> Any:
    """The decoded body of an answer with the ``success`` code; the provider error
    that any other answer is, raised. A success that is not JSON is an outcome
    unknown (the provider may have taken the request)."""
    code = response.status_code
    if code == success:
        try:
            return json.loads(response.content)
        except ValueError:
            raise ProviderOutcomeUnknown(
                f"provider answered {code} with a body that is not JSON: "
                f"{response.content[:200]!r}") from None
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


def unexpected(response: httpx.Response, what: str) -> ProviderOutcomeUnknown:
    """A success whose body lacks what the provider documents: it may have taken it."""
    return ProviderOutcomeUnknown(
        f"provider answered {response.status_code} without {what}: {response.content[:200]!r}")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is rare here and ignored)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def basic_auth_problem(headers: Mapping[str, str], user: str, password: str) -> str | None:
    """None when the request carries these HTTP basic credentials; otherwise why not.
    (Infobip and Sinch call a webhook with the credentials the shop set for it.)"""
    header = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if not header:
        return "missing credentials"
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if not hmac.compare_digest(header.encode(), expected.encode()):
        return "wrong credentials"
    return None


def digits(phone_number: str) -> str:
    """A number without its leading ``+``: how Infobip names it, and how Sinch
    names a recipient in its reports."""
    return phone_number.removeprefix("+")


def json_object(body: bytes) -> dict[str, Any]:
    """A webhook's JSON object body; ValueError (a 400) for anything else."""
    try:
        value = json.loads(body)
    except ValueError:
        raise ValueError("the report is not JSON") from None
    if not isinstance(value, dict):
        raise ValueError("the report must be a JSON object")
    return value


def reply_field(item: Mapping[str, Any], name: str) -> str:
    """A reply's text field, which must be there (ValueError, a 400, when it is not)."""
    value = item.get(name)
    if not isinstance(value, str):
        raise ValueError(f"a reply needs its {name!r} (a string)")
    return value


def reply_time(value: object) -> float | None:
    """When a reply arrived: an ISO 8601 time (the providers' ``+0000`` and ``Z``
    included) or Unix seconds; None when absent. ValueError when malformed."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    raise ValueError(f"{str(value)[:40]!r} is not a time (ISO 8601, or Unix seconds)")
