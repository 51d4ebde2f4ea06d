"""The repository actor's requests: a closed set of messages, one frozen dataclass
each, with the name each goes by in logs and metrics."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from actors._mailbox import Call
from smsproxy.errors import RepositoryError
from smsproxy.models import (
    Event,
    Idempotency,
    ListedMessage,
    Message,
    MessageQuery,
    Saved,
    StatusRecord,
)
from smsproxy.statuses import Status

__all__ = [
    "OPERATION_NAMES", "AddAttempts", "ApplyInOrder", "Callbacks", "Dispatch", "Feed", "Find",
    "ForgetIdempotency", "Get", "History", "ListAccepted", "Ping", "Purge", "Request", "Save",
    "StillAccepted", "UpdateMany",
]


@dataclass(frozen=True, slots=True)
class Save(Call[Saved]):
    messages: tuple[Message, ...]
    idempotency: Idempotency | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Get(Call[StatusRecord]):
    message_id: str


@dataclass(frozen=True, slots=True)
class UpdateMany(Call[dict[str, RepositoryError]]):
    updates: Mapping[str, Status]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyInOrder(Call[list[tuple[str, Status, RepositoryError]]]):
    updates: tuple[tuple[str, Status], ...]


@dataclass(frozen=True, slots=True)
class AddAttempts(Call[None]):
    message_ids: tuple[str, ...]
    attempts: int


@dataclass(frozen=True, slots=True)
class StillAccepted(Call[set[str]]):
    message_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListAccepted(Call[list[Message]]):
    pass


@dataclass(frozen=True, slots=True)
class Dispatch(Call[Any]):
    """A shared-queue operation (PostgreSQL): the method's name and its arguments."""

    operation: str
    arguments: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class History(Call[list[Event]]):
    message_id: str


@dataclass(frozen=True, slots=True)
class Find(Call[list[ListedMessage]]):
    query: MessageQuery


@dataclass(frozen=True, slots=True)
class Feed(Call[list[Event]]):
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class Callbacks(Call[Any]):
    """A status-callback operation of the store: the method's name and its arguments."""

    operation: str
    arguments: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ForgetIdempotency(Call[int]):
    before: float
    limit: int


@dataclass(frozen=True, slots=True)
class Purge(Call[int]):
    before: float
    limit: int


@dataclass(frozen=True, slots=True)
class Ping(Call[None]):
    saves: bool = False
    """Through the lane that saves take (PostgreSQL has two), not the other."""


Request = (
    Save | Get | UpdateMany | ApplyInOrder | AddAttempts | StillAccepted | ListAccepted
    | ForgetIdempotency | Purge | Ping | Dispatch | History | Feed | Callbacks | Find
)


OPERATION_NAMES: dict[type, str] = {
    Save: "save", Get: "get", UpdateMany: "update_many", ApplyInOrder: "apply_in_order",
    AddAttempts: "add_attempts", StillAccepted: "still_accepted", ListAccepted: "list_accepted",
    ForgetIdempotency: "forget_idempotency", Purge: "purge", Ping: "ping", Dispatch: "dispatch",
    History: "history", Feed: "feed", Callbacks: "callbacks", Find: "find",
}
