"""Every failure smsproxy names, as one tree::

    SmsProxyError
    ├── InvalidMessage              a submitted message breaks a validation rule
    ├── RepositoryError             a store rule was broken; nothing was changed
    │   ├── DuplicateMessage        save() of an id that exists
    │   ├── UnknownMessage          update() of an id never saved
    │   ├── FinalStatusLocked       update() of a FAILED or DELIVERED message
    │   ├── IdempotencyConflict     an idempotency key reused for a different request
    │   ├── RecipientOptedOut       save() to numbers on the suppression list
    │   └── QuotaExceeded           save() past its key's daily quota
    ├── StoreError                  the store itself failed (disk, database away)
    │   └── StoreUnusable           it cannot be opened at all (not a database, a newer
    │       │                       schema, a folder we may not write): fix and restart
    │       └── StoreLocked         another process holds it
    ├── UnknownProviderStatus       the provider reported a status we cannot map
    ├── QueueFull                   max_queue messages wait already; retry later
    ├── LargerThanQueue             a request holds more messages than the queue ever can
    ├── ShuttingDown                the service no longer takes new messages
    ├── ProviderError               one send attempt to the provider failed
    │   ├── ProviderUnavailable     worth retrying; the provider did not take the batch
    │   │   │                       (refused connection, 408, 500, 503, ...)
    │   │   ├── ProviderThrottled   429: retry, but not before its Retry-After
    │   │   └── ProviderOutcomeUnknown  worth retrying, but the provider may have
    │   │       │                   taken the batch (502/504 from a gateway, a broken
    │   │       │                   answer, a 2xx that cannot be read)
    │   │       └── ProviderTimeout no answer within the per-attempt timeout
    │   └── ProviderRejected        not worth retrying (the provider said no)
    └── ActorError                  an actor could not serve a request
        ├── ActorUnavailable        it has stopped (its inbox is closed)
        └── ActorTimeout            it did not answer in time

The domain raises everything above but ``ActorError``: that branch belongs to the
actor layer and is defined there (:mod:`actors.errors`), below this same root, so
that one ``except SmsProxyError`` still covers every failure smsproxy names.
"""

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DuplicateMessage",
    "FinalStatusLocked",
    "IdempotencyConflict",
    "InvalidMessage",
    "LargerThanQueue",
    "ProviderError",
    "ProviderOutcomeUnknown",
    "ProviderRejected",
    "ProviderThrottled",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QueueFull",
    "QuotaExceeded",
    "RecipientOptedOut",
    "RepositoryError",
    "ShuttingDown",
    "SmsProxyError",
    "StoreError",
    "StoreLocked",
    "StoreUnusable",
    "UnknownMessage",
    "UnknownProviderStatus",
]


class SmsProxyError(Exception):
    """Base of every error smsproxy raises on purpose."""


class InvalidMessage(SmsProxyError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class RepositoryError(SmsProxyError):
    kind = "repository"
    """Short, stable name of the cause, for metric labels."""

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(f"message {message_id}: {reason}")
        self.message_id = message_id
        self.reason = reason


class DuplicateMessage(RepositoryError):
    kind = "duplicate"

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id, "already exists")


class IdempotencyConflict(RepositoryError):
    kind = "idempotency_conflict"

    def __init__(self, key: str) -> None:
        super().__init__(key, "idempotency key was used for a different request")


class UnknownMessage(RepositoryError):
    kind = "unknown_message"

    def __init__(self, message_id: str) -> None:
        super().__init__(message_id, "unknown message")


class FinalStatusLocked(RepositoryError):
    kind = "final_status"

    def __init__(self, message_id: str, status: str) -> None:
        super().__init__(message_id, f"status {status} is final")
        self.status = status


class RecipientOptedOut(RepositoryError):
    kind = "opted_out"

    def __init__(self, indexes: tuple[int, ...], numbers: tuple[str, ...]) -> None:
        super().__init__(",".join(numbers), "the recipient opted out (replied STOP)")
        self.indexes = indexes
        """Of the request's messages, those to a suppressed number."""
        self.numbers = numbers


class QuotaExceeded(RepositoryError):
    kind = "quota_exceeded"

    def __init__(self, tenant: str, limit: int, used: int, retry_after: float) -> None:
        super().__init__(tenant, f"exceeded the daily send limit ({limit} messages a UTC "
                                 f"day; {used} sent today)")
        self.tenant = tenant
        self.limit = limit
        self.used = used
        self.retry_after = retry_after
        """Seconds to the next UTC midnight."""


class StoreError(SmsProxyError):
    """The store failed as a whole; the requests of that transaction changed nothing."""


class StoreUnusable(StoreError):
    """The store cannot be opened; retrying will not help until someone fixes it."""


class StoreLocked(StoreUnusable):
    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"{path!r} is in use by another smsproxy ({holder}); "
                         "one process per SQLite file (several instances need PostgreSQL)")
        self.path = path
        self.holder = holder


class UnknownProviderStatus(SmsProxyError):
    kind = "unknown_status"

    def __init__(self, status: object) -> None:
        super().__init__(f"unknown provider status {status!r}")
        self.status = status


class QueueFull(SmsProxyError):
    def __init__(self, depth: int, retry_after: int) -> None:
        super().__init__(f"{depth} messages are waiting for the provider; retry later")
        self.retry_after = retry_after


class LargerThanQueue(SmsProxyError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} messages in one request, more than the queue holds at all "
                         f"(--max-queue {limit}): split the request")
        self.count = count
        self.limit = limit


class ShuttingDown(SmsProxyError):
    def __init__(self) -> None:
        super().__init__("the service is shutting down and takes no new messages")


class ProviderError(SmsProxyError):
    """One attempt to hand a batch to the provider failed.

    ``taken`` names what of the batch the provider did take before the failure (an
    adapter that needs several requests for one batch), with the provider's ids for
    them (``refs``) and the requests that took them. Behind a router, ``providers``
    names the provider that took each of them, and ``pinned`` the provider that may
    have each message an unknown outcome left (it is resent to that one only)."""

    taken: tuple[str, ...] = ()
    refs: Mapping[str, str] = MappingProxyType({})
    requests_taken: int = 0
    providers: Mapping[str, str] = MappingProxyType({})
    pinned: Mapping[str, str] = MappingProxyType({})


class ProviderUnavailable(ProviderError):
    pass


class ProviderOutcomeUnknown(ProviderUnavailable):
    """The batch may have reached the provider: wait for its status reports before
    failing its messages, and resend only what is still waiting."""


class ProviderTimeout(ProviderOutcomeUnknown):
    pass


class ProviderThrottled(ProviderUnavailable):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    pass

