"""smsproxy's Python client: sync (:class:`Client`) and async (:class:`AsyncClient`,
under trio or asyncio), typed results, one exception per failure kind, retries on
429, 503 and connection errors that honour ``Retry-After`` and never text twice (an
``Idempotency-Key`` made once per logical send, kept across its retries), and
:func:`verify_callback` for the status callbacks a shop receives.

    from smsproxy_client import Client
    with Client("http://127.0.0.1:8080", api_key="...") as sms:
        sent = sms.send("+491511234567", "Your order has shipped")
        print(sms.status(sent.id).status)
"""

from smsproxy_client._async import AsyncClient
from smsproxy_client._core import RetryPolicy
from smsproxy_client._errors import (
    ApiError,
    Forbidden,
    IdempotencyConflict,
    InvalidRequest,
    InvalidSignature,
    NotFound,
    OptedOut,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    Rejected,
    SmsProxyError,
    TransportError,
    Unauthorized,
    Unavailable,
)
from smsproxy_client._models import (
    Accepted,
    Event,
    ListedMessage,
    MessageStatus,
    Outgoing,
    Page,
    Status,
)
from smsproxy_client._sync import Client
from smsproxy_client.callbacks import verify_callback

__all__ = [
    "Accepted", "ApiError", "AsyncClient", "Client", "Event", "Forbidden",
    "IdempotencyConflict", "InvalidRequest", "InvalidSignature", "ListedMessage",
    "MessageStatus", "NotFound", "OptedOut", "Outgoing", "Page", "PayloadTooLarge",
    "QuotaExceeded", "RateLimited", "Rejected", "RetryPolicy", "SmsProxyError", "Status",
    "TransportError", "Unauthorized", "Unavailable", "verify_callback",
]
