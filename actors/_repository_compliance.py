"""The repository actor's compliance requests (the suppression list, replies, the
daily quotas): each one store transaction's work, within a group commit like every
other."""

from dataclasses import dataclass

from actors._mailbox import Call
from actors._repository_requests import RepositoryRequest
from smsproxy.compliance import Inbound, InboundQuery, PendingReply, Suppression
from smsproxy.repository import Repository
from smsproxy.stores.outbox import CallbackOutcome

__all__ = [
    "ClaimReplyCallbacks", "ComplianceRequest", "GetSuppression", "ListInbound",
    "ListSuppressions", "QuotaUsed", "Receive", "SettleReplyCallback", "Suppress",
    "Unsuppress",
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
class Receive(RepositoryRequest, Call[list[tuple[Inbound, list[str]]]]):
    name = "receive"
    inbound: tuple[Inbound, ...]
    callback_url: str | None = None

    def apply(self, repository: Repository) -> list[tuple[Inbound, list[str]]]:
        return [repository.receive(inbound, self.callback_url) for inbound in self.inbound]


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


@dataclass(frozen=True, slots=True)
class ClaimReplyCallbacks(RepositoryRequest, Call[list[PendingReply]]):
    name = "claim_reply_callbacks"
    instance: str
    now: float
    limit: int
    lease: float

    def apply(self, repository: Repository) -> list[PendingReply]:
        return repository.store.claim_reply_callbacks(self.instance, self.now, self.limit,
                                                      self.lease)


@dataclass(frozen=True, slots=True)
class SettleReplyCallback(RepositoryRequest, Call[None]):
    name = "settle_reply_callback"
    inbound_id: str
    outcome: CallbackOutcome
    attempts: int
    retry_at: float
    error: str | None

    def apply(self, repository: Repository) -> None:
        repository.store.settle_reply_callback(self.inbound_id, self.outcome, self.attempts,
                                               self.retry_at, self.error)


ComplianceRequest = (
    Suppress | Unsuppress | GetSuppression | ListSuppressions | Receive | ListInbound | QuotaUsed
    | ClaimReplyCallbacks | SettleReplyCallback
)
