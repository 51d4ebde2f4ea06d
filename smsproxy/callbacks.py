"""Status callbacks to the shop: which URLs are allowed, what is sent, how it is signed,
what an answer means, and when to try again. (The notifier actor does the sending.)"""

import functools
import ipaddress
import json
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx

from smsproxy.compliance import Inbound
from smsproxy.errors import InvalidMessage
from smsproxy.models import Event
from smsproxy.signing import sign

__all__ = [
    "CHECKED_URLS_KEPT", "MAX_URL_LENGTH", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "Decision",
    "RetrySchedule", "check_url", "decide", "origin", "payload", "refused_address", "reply_payload",
    "rfc3339", "safe_url", "signed_headers",
]

SIGNATURE_HEADER = "X-Smsproxy-Signature"
TIMESTAMP_HEADER = "X-Smsproxy-Timestamp"
MAX_URL_LENGTH = 2048


CHECKED_URLS_KEPT = 1024
"""Valid callback URLs whose checked form is remembered: a shop sends most of its
messages with one or a few URLs, and parsing one (httpx.URL, twice) cost 58 µs a
message of a bulk request that carried it on every item (py-spy, issue 28)."""


@functools.lru_cache(maxsize=CHECKED_URLS_KEPT)
def check_url(url: str) -> str:
    """The URL in the form it is stored and POSTed to, if a callback may go there (http
    or https, a host, a port from 1 to 65535, no credentials): non-ASCII in the path and
    query percent-encoded, an international host in its IDNA (xn--) form. Otherwise
    InvalidMessage saying why: a URL that can never be delivered is refused here,
    not retried for a day. Where it resolves to is checked separately. (A refusal is
    not remembered: it is raised afresh each time.)"""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidMessage("callback_url", f"longer than {MAX_URL_LENGTH} characters")
    if unwanted := next((c for c in url if c.isspace() or not c.isprintable()), None):
        raise InvalidMessage("callback_url", f"must not contain {unwanted!r} (percent-encode it)")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise InvalidMessage("callback_url", f"not a URL: {error}") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidMessage("callback_url", "must be an http or https URL")
    if not parsed.host:
        raise InvalidMessage("callback_url", "has no host")
    if parsed.userinfo:
        raise InvalidMessage("callback_url", "must not carry credentials")
    if parsed.port is not None and not 1 <= parsed.port <= 65_535:
        raise InvalidMessage("callback_url", f"port {parsed.port} is not from 1 to 65535")
    _check_host(parsed.raw_host)
    normalised = str(httpx.URL(str(parsed)))  # twice: a scheme in capitals keeps its
    # default port the first time, and a stored URL must come out of here unchanged
    if len(normalised) > MAX_URL_LENGTH:
        raise InvalidMessage("callback_url", f"longer than {MAX_URL_LENGTH} characters "
                                             "once encoded")
    return normalised


def _check_host(raw_host: bytes) -> None:
    """What DNS takes: labels of 1 to 63 characters, 253 in all (an IP literal passes)."""
    host = raw_host.decode("ascii").rstrip(".")
    if ":" in host:  # an IPv6 literal, which httpx has parsed already
        return
    if len(host) > 253:
        raise InvalidMessage("callback_url", "host name longer than 253 characters")
    if unwanted := next((c for c in host if not (c.isascii() and (c.isalnum() or c in "-_."))),
                        None):
        raise InvalidMessage("callback_url", f"host name must not contain {unwanted!r}")
    if any(not 1 <= len(label) <= 63 for label in host.split(".")):
        raise InvalidMessage("callback_url", "host name label empty or longer than 63 "
                                             "characters")


def origin(url: str) -> str:
    """scheme://host:port, the unit that one slow receiver may hold up."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def safe_url(url: str) -> str:
    """The URL for logs: without its query string, which may carry a token."""
    parts = urlsplit(url)
    return parts._replace(query="", fragment="").geturl()


def refused_address(addresses: Iterable[str]) -> str | None:
    """The first address a callback must not reach (loopback, private, link-local,
    multicast, reserved, unspecified), or None when every one is public."""
    for text in addresses:
        address = ipaddress.ip_address(text)  # a scope (fe80::1%eth0) is taken too
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified):
            return str(address)
    return None


def rfc3339(seconds: float) -> str:
    """Epoch seconds as RFC 3339 in UTC, to the millisecond: 2026-11-28T10:00:00.123Z."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    # Not strftime's %Y: it writes the year 396 as "396", which RFC 3339 does not take.
    return (f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}."
            f"{moment.microsecond // 1000:03d}Z")


def payload(event: Event) -> bytes:
    """The JSON body of an event's callback (docs/design.md, "Status callbacks to the shop")."""
    return json.dumps({
        "event_id": event.event_id, "message_id": event.message_id,
        "status": event.status.value,
        "previous_status": event.previous_status.value if event.previous_status else None,
        "reason": event.reason, "at": rfc3339(event.at), "sequence": event.sequence,
    }, separators=(",", ":")).encode()


def reply_payload(inbound: Inbound) -> bytes:
    """The JSON body of a reply's callback: an ``inbound`` event."""
    return json.dumps({
        "event_id": inbound.id, "type": "inbound", "from": inbound.from_number,
        "to": inbound.to_number, "content": inbound.content,
        "received_at": rfc3339(inbound.received_at), "provider": inbound.provider,
        "keyword": inbound.keyword.value if inbound.keyword else None,
    }, separators=(",", ":")).encode()


def signed_headers(body: bytes, secret: str, now: float) -> dict[str, str]:
    timestamp = int(now)
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(body, secret, timestamp)}


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Literal["delivered", "retry", "abandon"]
    reason: str
    """For logs and the metric's label: 2xx, 4xx, 429, 5xx, 408, timeout, connection."""
    retry_after: float | None = None


def decide(status: int, retry_after: str | None = None) -> Decision:
    """What an HTTP answer means: 2xx delivered; 408, 429 and 5xx try again (429 and
    503 after ``Retry-After`` if given); any other answer gives up at once."""
    if 200 <= status < 300:
        return Decision("delivered", "2xx")
    if status in (408, 429) or status >= 500:
        reason = str(status) if status in (408, 429) else "5xx"
        return Decision("retry", reason, _seconds(retry_after))
    return Decision("abandon", f"{status // 100}xx")


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date is read as absent)."""
    if retry_after is None:
        return None
    try:
        seconds = float(retry_after.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Exponential backoff with full jitter, up to ``max_age`` after the event."""

    initial: float = 1.0
    maximum: float = 3600.0
    max_age: float = 86_400.0

    def next_attempt(self, attempts: int, now: float, event_at: float,
                     retry_after: float | None = None,
                     rng: random.Random | None = None) -> float | None:
        """When to try again after ``attempts`` failed ones, or None: give up (the
        event is older than ``max_age`` by then)."""
        ceiling = min(self.maximum, self.initial * 2 ** max(0, attempts - 1))
        delay = (rng or random).uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.maximum))
        at = now + delay
        return at if at <= event_at + self.max_age else None
