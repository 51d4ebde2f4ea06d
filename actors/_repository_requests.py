"""The repository actor's requests about messages and the queue: one frozen
dataclass each, carrying the work it does (``apply``) and the name it goes by in logs
and metrics. A save is the exception: a lane applies a group's saves together. (The
compliance requests are :mod:`actors._repository_compliance`; the closed set of both,
:mod:`actors._repository_inbox`.)"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from actors._mailbox import Call
from smsproxy.compliance import Quota
from smsproxy.errors import RepositoryError
from smsproxy.models import (
    CallbackState,
    Event,
    Idempotency,
    ListedMessage,
    Message,
    MessageQuery,
    PendingCallback,
    Saved,
    StatusRecord,
)
from smsproxy.repository import Attributed, Repository
from smsproxy.routing import SharedRoute
from smsproxy.statuses import Status
from smsproxy.stores.protocol import CallbackOutcome

__all__ = [
    "ApplyInOrder",
    "Attribute",
    "Callbacks",
    "ClaimCallbacks",
    "ClaimProbe",
    "CountCallbacks",
    "Feed",
    "Find",
    "ForgetIdempotency",
    "Get",
    "History",
    "ListAccepted",
    "Ping",
    "Purge",
    "Save",
    "SettleCallback",
    "ShareRoutes",
    "SharedRoutes",
    "UpdateMany",
]


class RepositoryRequest:
    """A request the repository actor serves: its work, and its name in logs and metrics."""

    __slots__ = ()
    name: ClassVar[str]

    def apply(self, repository: Repository) -> Any:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Save(RepositoryRequest, Call[Saved]):
    name = "save"
    messages: tuple[Message, ...]
    idempotency: Idempotency | None = None
    at: float = 0.0
    quota: Quota | None = None

    def apply(self, repository: Repository) -> Saved:
        return repository.save(self.messages, self.idempotency, self.at, self.quota)


@dataclass(frozen=True, slots=True)
class Get(RepositoryRequest, Call[StatusRecord]):
    name = "get"
    message_id: str
    viewer: str | None = None

    def apply(self, repository: Repository) -> StatusRecord:
        return repository.get(self.message_id, self.viewer)


@dataclass(frozen=True, slots=True)
class UpdateMany(RepositoryRequest, Call[dict[str, RepositoryError]]):
    name = "update_many"
    updates: Mapping[str, Status]
    reason: str | None = None

    def apply(self, repository: Repository) -> dict[str, RepositoryError]:
        return repository.update_many(self.updates, self.reason)


@dataclass(frozen=True, slots=True)
class ApplyInOrder(RepositoryRequest, Call[list[tuple[str, Status, RepositoryError]]]):
    name = "apply_in_order"
    updates: tuple[tuple[str, Status], ...]

    def apply(self, repository: Repository) -> list[tuple[str, Status, RepositoryError]]:
        return repository.apply_in_order(self.updates)


@dataclass(frozen=True, slots=True)
class Attribute(RepositoryRequest, Call[Attributed]):
    name = "attribute"
    provider: str
    ids: tuple[str, ...]
    refs: tuple[str, ...]

    def apply(self, repository: Repository) -> Attributed:
        return repository.attribute(self.provider, self.ids, self.refs)


@dataclass(frozen=True, slots=True)
class History(RepositoryRequest, Call[list[Event]]):
    name = "history"
    message_id: str
    viewer: str | None = None

    def apply(self, repository: Repository) -> list[Event]:
        return repository.history(self.message_id, self.viewer)


@dataclass(frozen=True, slots=True)
class Callbacks(RepositoryRequest, Call[list[CallbackState]]):
    name = "callbacks"
    message_id: str
    viewer: str | None = None

    def apply(self, repository: Repository) -> list[CallbackState]:
        return repository.callbacks(self.message_id, self.viewer)


@dataclass(frozen=True, slots=True)
class Find(RepositoryRequest, Call[list[ListedMessage]]):
    name = "find"
    query: MessageQuery

    def apply(self, repository: Repository) -> list[ListedMessage]:
        return repository.find(self.query)


@dataclass(frozen=True, slots=True)
class Feed(RepositoryRequest, Call[list[Event]]):
    name = "feed"
    after: int
    limit: int
    viewer: str | None = None

    def apply(self, repository: Repository) -> list[Event]:
        return repository.feed(self.after, self.limit, self.viewer)


@dataclass(frozen=True, slots=True)
class ListAccepted(RepositoryRequest, Call[list[Message]]):
    name = "list_accepted"

    def apply(self, repository: Repository) -> list[Message]:
        return repository.accepted()


@dataclass(frozen=True, slots=True)
class ForgetIdempotency(RepositoryRequest, Call[int]):
    name = "forget_idempotency"
    before: float
    limit: int

    def apply(self, repository: Repository) -> int:
        return repository.store.forget_idempotency(self.before, self.limit)


@dataclass(frozen=True, slots=True)
class Purge(RepositoryRequest, Call[int]):
    name = "purge"
    before: float
    limit: int

    def apply(self, repository: Repository) -> int:
        return repository.store.purge(self.before, self.limit)


@dataclass(frozen=True, slots=True)
class SharedRoutes(RepositoryRequest, Call[list[SharedRoute]]):
    name = "shared_routes"

    def apply(self, repository: Repository) -> list[SharedRoute]:
        return repository.store.shared_routes()


@dataclass(frozen=True, slots=True)
class ShareRoutes(RepositoryRequest, Call[None]):
    name = "share_routes"
    routes: tuple[SharedRoute, ...]

    def apply(self, repository: Repository) -> None:
        repository.store.share_routes(self.routes)


@dataclass(frozen=True, slots=True)
class ClaimProbe(RepositoryRequest, Call[bool]):
    name = "claim_probe"
    route: str
    due: float
    next_probe: float

    def apply(self, repository: Repository) -> bool:
        return repository.store.claim_probe(self.route, self.due, self.next_probe)


@dataclass(frozen=True, slots=True)
class Ping(RepositoryRequest, Call[None]):
    name = "ping"
    saves: bool = False
    """Through the lane that saves take (PostgreSQL has two), not the other."""

    def apply(self, repository: Repository) -> None:
        repository.check()


@dataclass(frozen=True, slots=True)
class ClaimCallbacks(RepositoryRequest, Call[list[PendingCallback]]):
    name = "claim_callbacks"
    instance: str
    now: float
    limit: int
    lease: float
    per_origin: int
    skip_origins: tuple[str, ...] = ()

    def apply(self, repository: Repository) -> list[PendingCallback]:
        return repository.store.claim_callbacks(self.instance, self.now, self.limit,
                                                self.lease, self.per_origin, self.skip_origins)


@dataclass(frozen=True, slots=True)
class SettleCallback(RepositoryRequest, Call[None]):
    name = "settle_callback"
    message_id: str
    sequence: int
    outcome: CallbackOutcome
    attempts: int
    retry_at: float
    error: str | None

    def apply(self, repository: Repository) -> None:
        repository.store.settle_callback(self.message_id, self.sequence, self.outcome,
                                         self.attempts, self.retry_at, self.error)


@dataclass(frozen=True, slots=True)
class CountCallbacks(RepositoryRequest, Call[tuple[int, float | None]]):
    name = "callback_backlog"

    def apply(self, repository: Repository) -> tuple[int, float | None]:
        return repository.store.callback_backlog()









MessageRequest = (
    Save | Get | UpdateMany | ApplyInOrder | Attribute | SharedRoutes | ShareRoutes
    | ClaimProbe | History | Callbacks | Find | Feed | ListAccepted
    | ForgetIdempotency | Purge
    | Ping | ClaimCallbacks | SettleCallback | CountCallbacks)
