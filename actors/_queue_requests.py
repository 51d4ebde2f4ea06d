"""The repository actor's requests about the queue: claims with their leases, the
batch's outcome written back (sent, parked), expiry, the backlog's count, and the
claims given back at shutdown (:class:`smsproxy.stores.queue.Queue`)."""

from collections.abc import Mapping
from dataclasses import dataclass

from actors._mailbox import Call
from actors._repository_requests import RepositoryRequest
from smsproxy.dispatching import BatchingRules
from smsproxy.repository import Repository
from smsproxy.stores.protocol import Backlog, Claimed, ClaimRules, Renewal

__all__ = [
    "Claim", "CountBacklog", "Expire", "MarkSent", "Park", "QueueRequest", "Release", "Renew",
]


@dataclass(frozen=True, slots=True)
class Claim(RepositoryRequest, Call[Claimed]):
    name = "claim"
    instance: str
    rules: ClaimRules

    def apply(self, repository: Repository) -> Claimed:
        return repository.store.claim(self.instance, self.rules)


@dataclass(frozen=True, slots=True)
class Renew(RepositoryRequest, Call[Renewal]):
    name = "renew"
    instance: str
    message_ids: tuple[str, ...]
    lease: float

    def apply(self, repository: Repository) -> Renewal:
        return repository.store.renew(self.instance, self.message_ids, self.lease)


@dataclass(frozen=True, slots=True)
class MarkSent(RepositoryRequest, Call[None]):
    name = "mark_sent"
    instance: str
    message_ids: tuple[str, ...]
    attempts: int
    providers: Mapping[str, str]
    refs: Mapping[str, str]

    def apply(self, repository: Repository) -> None:
        repository.store.mark_sent(self.instance, self.message_ids, self.attempts,
                                   self.providers, self.refs)


@dataclass(frozen=True, slots=True)
class Park(RepositoryRequest, Call[None]):
    name = "park"
    instance: str
    message_ids: tuple[str, ...]
    attempts: int
    error: str
    maybe_taken: bool
    requeue_initial: float
    requeue_max: float
    pinned: Mapping[str, str]

    def apply(self, repository: Repository) -> None:
        repository.store.park(self.instance, self.message_ids, self.attempts, self.error,
                              self.maybe_taken, self.requeue_initial, self.requeue_max,
                              self.pinned)


@dataclass(frozen=True, slots=True)
class Expire(RepositoryRequest, Call[dict[str, list[str]]]):
    name = "expire"
    rules: BatchingRules
    limit: int

    def apply(self, repository: Repository) -> dict[str, list[str]]:
        return repository.expire(self.rules, self.limit)


@dataclass(frozen=True, slots=True)
class CountBacklog(RepositoryRequest, Call[Backlog]):
    name = "backlog"

    def apply(self, repository: Repository) -> Backlog:
        return repository.store.backlog()


@dataclass(frozen=True, slots=True)
class Release(RepositoryRequest, Call[int]):
    name = "release"
    instance: str

    def apply(self, repository: Repository) -> int:
        return repository.store.release(self.instance)


QueueRequest = Claim | Renew | MarkSent | Park | Expire | CountBacklog | Release
