"""The message status model and the mapping from the provider's statuses."""

from enum import StrEnum

from smsproxy.errors import UnknownProviderStatus

__all__ = ["FINAL_STATUSES", "Status", "map_provider_status"]


class Status(StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_FOUND = "NOT_FOUND"
    CONFIRMED = "CONFIRMED"
    FAILED = "FAILED"
    DELIVERED = "DELIVERED"


FINAL_STATUSES = frozenset({Status.FAILED, Status.DELIVERED})

_PROVIDER_STATUSES = {s.value: s for s in (Status.CONFIRMED, Status.FAILED, Status.DELIVERED)}


def map_provider_status(name: str) -> Status:
    """Map a status name reported by the provider; anything unknown is an error."""
    try:
        return _PROVIDER_STATUSES[name]
    except (KeyError, TypeError):
        raise UnknownProviderStatus(name) from None
