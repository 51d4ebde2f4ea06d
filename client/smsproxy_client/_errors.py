"""Every failure the client raises, as one tree::

    SmsProxyError
    ├── TransportError          no answer: the connection failed or timed out (after retries)
    ├── InvalidSignature        a callback's signature is missing, wrong or too old
    └── ApiError                the server answered with an error (``status``, ``message``)
        ├── InvalidRequest      400: the message breaks a rule (the message says which)
        ├── Unauthorized        401: a missing or wrong API key
        ├── Forbidden           403: the route is for support keys
        ├── NotFound            404
        ├── PayloadTooLarge     413
        ├── Rejected            422
        │   ├── OptedOut        the recipient replied STOP (``indexes`` of the items)
        │   └── IdempotencyConflict  the Idempotency-Key was used for another request
        ├── RateLimited         429 (``retry_after``), after the retries
        │   └── QuotaExceeded   the key's daily quota is spent (until midnight UTC)
        └── Unavailable         503 (``retry_after``), after the retries; or any 5xx
"""

from typing import Any

import httpx

__all__ = [
    "ApiError", "Forbidden", "IdempotencyConflict", "InvalidRequest", "InvalidSignature",
    "NotFound", "OptedOut", "PayloadTooLarge", "QuotaExceeded", "RateLimited", "Rejected",
    "SmsProxyError", "TransportError", "Unauthorized", "Unavailable", "error_for",
    "retry_after_of",
]


class SmsProxyError(Exception):
    """Base of every error this client raises."""

    accepted: "list[Any]"
    """From ``send_many``: what the requests before the failing one accepted."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.accepted = []


class TransportError(SmsProxyError):
    """No answer came: the connection failed or timed out, on every try."""


class InvalidSignature(SmsProxyError):
    """A callback that did not come from the smsproxy that shares the secret."""


class ApiError(SmsProxyError):
    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.body = body or {}


class InvalidRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class Rejected(ApiError):
    pass


class OptedOut(Rejected):
    @property
    def indexes(self) -> list[int]:
        """The items of the request whose recipients opted out (0 for a single send)."""
        return [int(item["index"]) for item in self.body.get("opted_out", [])]


class IdempotencyConflict(Rejected):
    pass


class _WaitAsked(ApiError):
    """An answer that may say how long to wait (``Retry-After``, seconds)."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(status, message, body)
        self.retry_after = retry_after


class RateLimited(_WaitAsked):
    pass


class QuotaExceeded(RateLimited):
    pass


class Unavailable(_WaitAsked):
    pass


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound,
    405: InvalidRequest, 413: PayloadTooLarge, 422: Rejected,
}


def retry_after_of(response: httpx.Response) -> float | None:
    """Seconds the server asks us to wait (``Retry-After`` in seconds), if it says."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def error_for(response: httpx.Response) -> ApiError:
    """The error an answer that is not a success stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("error") or response.reason_phrase or "error")
    status = response.status_code
    if status == 422:
        kind: type[ApiError] = OptedOut if "opted_out" in body else (
            IdempotencyConflict if "Idempotency-Key" in message else Rejected)
        return kind(status, message, body)
    if status == 429:
        limited = QuotaExceeded if message.startswith("Exceeded send limits") else RateLimited
        return limited(status, message, body, retry_after_of(response))
    if status >= 500:
        return Unavailable(status, message, body, retry_after_of(response))
    return _BY_STATUS.get(status, ApiError)(status, message, body)
