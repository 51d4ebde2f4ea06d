"""What every route module shares: the handles, the settings, body and answer helpers."""

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quart import Response, request
from quart_trio.wrappers import TrioResponse
from werkzeug.exceptions import RequestEntityTooLarge

from actors.dispatcher import DispatcherHandle
from actors.repository import RepositoryHandle
from actors.router import Router
from actors.stats import StatsHandle
from actors.updater import UpdaterHandle
from smsproxy.compliance import Quota
from smsproxy.tenants import ApiKey
from smsproxy.validation import is_storable_text

__all__ = [
    "ApiSettings", "MalformedJson", "Services", "json_response", "no_content", "parse_json",
    "parse_json_object", "read_body",
]


@dataclass(frozen=True, slots=True)
class Services:
    repository: RepositoryHandle
    dispatcher: DispatcherHandle
    stats: StatsHandle
    updater: UpdaterHandle
    router: Router | None = None
    """With a providers file: the providers, for their webhooks."""


@dataclass(frozen=True, slots=True)
class ApiSettings:
    webhook_secret: str | None = None
    sms_max_bytes: int = 64 * 1024
    webhook_max_bytes: int = 1024 * 1024
    bulk_max_bytes: int = 4 * 1024 * 1024
    bulk_max: int = 1000
    """Messages per bulk request."""
    webhook_wait: float = 2.0
    """Longest a status webhook waits, beyond the updater's linger, for its reports
    to be committed before answering 503."""
    clock: Callable[[], float] = time.time
    """Wall clock, for signature timestamps."""
    api_keys: tuple[ApiKey, ...] = ()
    """Every key, support keys included (--api-keys, --admin-keys)."""
    quotas: Mapping[str, Quota] = field(default_factory=dict)
    """Each key's daily quota, by the key's name (--quota)."""
    rate_limit: float | None = None
    """Messages per second per client; None for no limit."""
    rate_burst: int = 1
    monotonic: Callable[[], float] = time.monotonic
    """For rate limits; tests pass trio.current_time to run on the mock clock."""
    shared_stats: Path | None = None
    """One of a --workers set: where the workers' figures are, for /stats and /metrics."""
    callbacks: bool = False
    """Status callbacks are sent (--callback-secret is set)."""
    callback_url: str | None = None
    """The default callback URL (--callback-url), for messages that name none."""
    callback_allow_private: bool = False
    access_log: bool = False
    """One ``http_request`` event per request (--access-log)."""
    classes: Mapping[str, float] = field(default_factory=dict)
    """Delivery classes (--class): seconds within which their messages must leave."""
    message_ttl: float = 3600.0
    """--message-ttl: a message's own deadline may not be later."""
    phone_region: str | None = None
    """--default-region: where a number without '+' or '00' is read."""
    strict_numbers: bool = False
    """--strict-numbers: refuse numbers the metadata says are not in use."""

    @property
    def numbering(self) -> dict[str, object]:
        """The phone number rules, as the request models' validation context."""
        return {"region": self.phone_region, "strict": self.strict_numbers}


async def read_body(limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to be over ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    body = await request.get_data(as_text=False)
    assert isinstance(body, bytes)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


class MalformedJson(ValueError):
    """The body is not JSON we accept; the message says why, for a 400."""


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, no duplicate keys, no NaN or Infinity, only storable strings.

    Lenient parsers differ on such input (the last of two duplicate keys wins here,
    the first elsewhere), and a string with a lone surrogate cannot be stored or
    logged. Refusing them up front keeps every later step simple.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("Invalid JSON: the body is not valid UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_strict_object, parse_constant=_no_constant,
                          parse_float=_finite_float)
    except RecursionError:
        raise MalformedJson("Invalid JSON: nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and what the hooks raise
        raise MalformedJson(f"Invalid JSON: {error}") from None


def parse_json_object(body: bytes) -> dict[str, Any]:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise MalformedJson(f"the body must be a JSON object, not {_json_kind(data)}")
    return data


def _json_kind(data: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(data), "a number")


def _strict_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        for text in (key, value):
            if isinstance(text, str) and not is_storable_text(text):
                raise ValueError("a string holds a lone surrogate")
        result[key] = value
    return result


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999999: valid JSON syntax, but no number we can hold
        raise ValueError(f"{text[:20]} is too large a number")
    return value


def json_response(body: object, status: int) -> Response:
    # json.dumps straight into quart-trio's response: Quart's JSON provider costs
    # tens of microseconds per answer, a tenth of a small request's budget.
    return TrioResponse(json.dumps(body), status, content_type="application/json")


def no_content() -> Response:
    # quart-trio's own response class: quart's default one iterates bodies with asyncio.
    return TrioResponse(b"", status=204)
