"""The closed set of requests the repository actor serves, and their names (the label
values of the store metrics)."""

from actors._queue_requests import QueueRequest
from actors._repository_compliance import ComplianceRequest
from actors._repository_requests import MessageRequest, RepositoryRequest

__all__ = ["OPERATION_NAMES", "Request"]

Request = MessageRequest | QueueRequest | ComplianceRequest

OPERATION_NAMES: dict[type, str] = {  # every module above is imported: all are known
    kind: kind.name for kind in RepositoryRequest.__subclasses__()}
"""Every request's name, by its type."""
