"""Who may send, and how much: API keys, rate limits, idempotency keys.

Keys are compared in constant time and never logged: a client is known by a
short digest of its key (``key:1a2b...``), or by its address when the service
runs without keys.
"""

import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from quart import request
from werkzeug.exceptions import HTTPException

from smsproxy.models import Idempotency
from smsproxy.ratelimit import TokenBuckets

__all__ = ["Guard", "RateLimited", "Unauthorized", "idempotency_from_request"]

MAX_IDEMPOTENCY_KEY = 255


class Unauthorized(HTTPException):
    code = 401
    description = "missing or invalid API key: send 'Authorization: Bearer <key>'"

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("WWW-Authenticate", "Bearer")]


class RateLimited(HTTPException):
    code = 429

    def __init__(self, retry_after: float, description: str) -> None:
        super().__init__(description)
        self.retry_after = retry_after

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        seconds = str(max(1, math.ceil(self.retry_after)))
        return [*super().get_headers(*args, **kwargs), ("Retry-After", seconds)]


class Guard:
    def __init__(
        self,
        api_keys: Sequence[str],
        buckets: TokenBuckets | None,
        monotonic: Callable[[], float],
    ) -> None:
        self._keys = [(key.encode(), _client_of_key(key)) for key in api_keys]
        self._buckets = buckets
        self._monotonic = monotonic

    def client(self) -> str:
        """The calling client's name; raises :class:`Unauthorized` when keys are set."""
        if not self._keys:
            return f"addr:{request.remote_addr or 'unknown'}"
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        presented = token.strip().encode() if scheme.lower() == "bearer" else b""
        found = None
        for key, client in self._keys:  # every key, no early exit: constant time
            if hmac.compare_digest(presented, key):
                found = client
        if found is None:
            raise Unauthorized()
        return found

    def admit(self, client: str, messages: int) -> None:
        """Take ``messages`` from the client's bucket, or raise :class:`RateLimited`."""
        if self._buckets is None:
            return
        wait = self._buckets.take(client, self._monotonic(), messages)
        if wait == math.inf:
            raise RateLimited(1, f"{messages} messages at once exceed the burst of "
                                 f"{self._buckets.burst}; send fewer per request")
        if wait > 0:
            raise RateLimited(wait, f"rate limit of {self._buckets.rate:g} messages per second "
                                    "exceeded; retry later")


def idempotency_from_request(
    client: str, fingerprint_of: Callable[[], Iterable[str]]
) -> Idempotency | None:
    """The request's Idempotency-Key, if any; a malformed one is a 400.

    ``fingerprint_of`` gives the parts that make two requests the same; it is called
    only when there is a key (a bulk's worth of parts is a cost of its own)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise BadIdempotencyKey()
    digest = hashlib.sha256("\x00".join(fingerprint_of()).encode()).hexdigest()
    return Idempotency(scope=client, key=key, fingerprint=digest)


class BadIdempotencyKey(HTTPException):
    code = 400
    description = f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"


def _client_of_key(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
