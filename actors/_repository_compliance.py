"""The repository actor's compliance requests (the suppression list, replies, the
daily quotas): each one store transaction's work, within a group commit like every
other."""

from dataclasses import dataclass

from actors._mailbox import Call
from actors._repository_requests import RepositoryRequest
from smsproxy.compliance import Inbound, InboundQuery, Suppression
from smsproxy.repository import Repository

__all__ = [
    "ComplianceRequest", "GetSuppression", "ListInbound",
    "ListSuppressions", "QuotaUsed", "Receive", "Suppress", "Unsuppress",
]


@dataclass(frozen=True, slots=True)
class Suppress(RepositoryRequest, Call[tuple[bool, list[str]]]):
    name = "suppress"
    entry: Suppression

    def apply(self, repository: Repository) -> tuple[bool, list[str]]:
        return repository.suppress(self.entry)


@dataclass(frozen=True, slots=True)
class Unsuppress(RepositoryRequest, Call[bool]):
    name = "unsuppress"
    number: str

    def apply(self, repository: Repository) -> bool:
        return repository.store.unsuppress(self.number)


@dataclass(frozen=True, slots=True)
class GetSuppression(RepositoryRequest, Call[Suppression | None]):
    name = "get_suppression"
    number: str

    def apply(self, repository: Repository) -> Suppression | None:
        return repository.store.suppression(self.number)


@dataclass(frozen=True, slots=True)
class ListSuppressions(RepositoryRequest, Call[list[Suppression]]):
    name = "list_suppressions"
    after: str
    limit: int

    def apply(self, repository: Repository) -> list[Suppression]:
        return repository.store.suppressions(self.after, self.limit)


@dataclass(frozen=True, slots=True)
class Receive(RepositoryRequest, Call[tuple[Inbound, list[str]]]):
    name = "receive"
    inbound: Inbound

    def apply(self, repository: Repository) -> tuple[Inbound, list[str]]:
        return repository.receive(self.inbound)


@dataclass(frozen=True, slots=True)
class ListInbound(RepositoryRequest, Call[list[Inbound]]):
    name = "list_inbound"
    query: InboundQuery

    def apply(self, repository: Repository) -> list[Inbound]:
        return repository.store.inbound(self.query)


@dataclass(frozen=True, slots=True)
class QuotaUsed(RepositoryRequest, Call[int]):
    name = "quota_used"
    tenant: str
    day: int

    def apply(self, repository: Repository) -> int:
        return repository.store.quota_used(self.tenant, self.day)


ComplianceRequest = (
    Suppress | Unsuppress | GetSuppression | ListSuppressions | Receive | ListInbound | QuotaUsed
)
