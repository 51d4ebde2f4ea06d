"""Who may send, and how much: API keys, rate limits, idempotency keys.

Keys are compared in constant time and never logged: a key is known by its name
(its tenant: the messages it sees, its quota and its bill), and its rate limit
and idempotency keys by a short digest of it (``key:1a2b...``); without keys, a
client is known by its address and sees every message.
"""

import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from quart import request
from werkzeug.exceptions import HTTPException

from smsproxy.models import Idempotency
from smsproxy.ratelimit import TokenBuckets
from smsproxy.tenants import ApiKey

__all__ = ["Caller", "Forbidden", "Guard", "RateLimited", "Unauthorized",
           "idempotency_from_request"]

MAX_IDEMPOTENCY_KEY = 255


class Unauthorized(HTTPException):
    code = 401
    description = "missing or invalid API key: send 'Authorization: Bearer <key>'"

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("WWW-Authenticate", "Bearer")]


class Forbidden(HTTPException):
    code = 403
    description = "this needs a support key (--admin-keys)"


@dataclass(frozen=True, slots=True)
class Caller:
    scope: str
    """Whose rate limit and idempotency keys: ``key:<digest>``, or ``addr:<address>``."""
    name: str | None
    """The key's name (None: the service runs without keys)."""
    admin: bool

    @property
    def viewer(self) -> str | None:
        """Whose messages it sees: its own, or every key's (None) for a support key,
        or when the service runs without keys."""
        return None if self.admin else self.name


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
        api_keys: Sequence[ApiKey],
        buckets: TokenBuckets | None,
        monotonic: Callable[[], float],
    ) -> None:
        self._keys = [(key.key.encode(), Caller(_client_of_key(key.key), key.name, key.admin))
                      for key in api_keys]
        self._buckets = buckets
        self._monotonic = monotonic

    @property
    def has_keys(self) -> bool:
        return bool(self._keys)

    def caller(self) -> Caller:
        """Who calls; raises :class:`Unauthorized` when keys are set and none is valid."""
        if not self._keys:
            return Caller(f"addr:{request.remote_addr or 'unknown'}", None, admin=False)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        found = self.holder_of(token.strip() if scheme.lower() == "bearer" else "")
        if found is None:
            raise Unauthorized()
        return found

    def holder_of(self, presented: str) -> Caller | None:
        """The key's holder, or None; every key is compared, in constant time."""
        found = None
        for key, caller in self._keys:  # no early exit
            if hmac.compare_digest(presented.encode(), key):
                found = caller
        return found

    def named(self, name: str) -> Caller | None:
        """The holder of the key with this name (a console session keeps the name only)."""
        return next((caller for _, caller in self._keys if caller.name == name), None)

    def support(self) -> Caller:
        """A caller who may manage the suppression list: a support key, or anyone when
        the service runs without keys; :class:`Forbidden` for other keys."""
        caller = self.caller()
        if self._keys and not caller.admin:
            raise Forbidden()
        return caller

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
