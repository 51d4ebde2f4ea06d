"""What the sync and async clients share, without I/O: each call as a request, when
an outcome is worth another try and how long to wait first, and each answer read into
the client's values. (The clients only send, sleep and loop.)

A send carries an ``Idempotency-Key`` made once per logical send and kept across its
retries, so a retry after a lost answer is answered from the first request and never
texts twice.
"""

import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from smsproxy_client._errors import (
    ApiError,
    QuotaExceeded,
    TransportError,
    error_for,
    retry_after_of,
)
from smsproxy_client._models import Accepted, Event, MessageStatus, Outgoing, Page, Status

__all__ = [
    "Call", "RetryPolicy", "bulk_calls", "events_call", "failure", "find_call", "read_bulk",
    "read_events", "read_page", "read_sent", "read_status", "send_call", "status_call",
]

RETRIED_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; between them ``Retry-After`` when the server gives
    one, else ``backoff`` doubling up to ``max_backoff``, with jitter. A server that
    asks for more than ``max_wait`` seconds (a quota spent until midnight) is not
    waited for: its error is raised at once."""

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_wait: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def wait(self, outcome: httpx.Response | httpx.TransportError, attempt: int
             ) -> float | None:
        """Seconds to wait before try ``attempt + 1``, or None: give up now."""
        if attempt >= self.attempts:
            return None
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in RETRIED_STATUSES:
                return None
            asked = retry_after_of(outcome)
            if isinstance(error_for(outcome), QuotaExceeded) or (
                    asked is not None and asked > self.max_wait):
                return None
            if asked is not None:
                return asked
        backoff: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return backoff * (0.5 + self.rng.random() / 2)


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def failure(outcome: httpx.Response | httpx.TransportError) -> Exception:
    """What a last outcome raises."""
    if isinstance(outcome, httpx.Response):
        return error_for(outcome)
    return TransportError(f"{type(outcome).__name__}: {outcome}")


def _idempotent(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key or str(uuid.uuid4())}


def send_call(message: Outgoing, idempotency_key: str | None = None) -> Call:
    return Call("POST", "/sms", json=message.body(), headers=_idempotent(idempotency_key))


def bulk_calls(messages: Sequence[Outgoing], limit: int) -> Iterator[Call]:
    """One request per ``limit`` messages, each with its own key."""
    for start in range(0, len(messages), limit):
        yield Call("POST", "/sms/bulk",
                   json={"messages": [m.body() for m in messages[start:start + limit]]},
                   headers=_idempotent(None))


def status_call(message_id: str) -> Call:
    return Call("GET", f"/sms/{message_id}")


def events_call(message_id: str) -> Call:
    return Call("GET", f"/sms/{message_id}/events")


def find_call(status: Status | str | None, since: str | None, until: str | None, limit: int,
              cursor: str | None) -> Call:
    params = {"limit": str(limit)}
    for name, value in (("status", status), ("since", since), ("until", until),
                        ("cursor", cursor)):
        if value is not None:
            params[name] = str(value)
    return Call("GET", "/sms", params=params)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ApiError(response.status_code, "the answer is not a JSON object")
    return body


def _replayed(response: httpx.Response) -> bool:
    return bool(response.headers.get("Idempotent-Replayed") == "true")


def read_sent(response: httpx.Response) -> Accepted:
    return Accepted.of(_body(response), _replayed(response))


def read_bulk(response: httpx.Response) -> list[Accepted]:
    return [Accepted.of(item, _replayed(response)) for item in _body(response)["messages"]]


def read_status(response: httpx.Response) -> MessageStatus:
    return MessageStatus.of(_body(response))


def read_events(response: httpx.Response) -> list[Event]:
    return [Event.of(event) for event in _body(response)["events"]]


def read_page(response: httpx.Response) -> Page:
    return Page.of(_body(response))
