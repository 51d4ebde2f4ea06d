"""The repository actor: the only code that touches the message store.

It serves requests in groups: everything waiting in its inbox is applied in one
store transaction (group commit), then every caller in the group gets its reply.
A durable store pays for one commit per group, not one per request. A blocking
store is driven from a worker thread, so the event loop never waits on disk.
"""

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog
import trio

from actors._mailbox import Call, Envelope, Mailbox, receive_ready
from actors.errors import ActorFailed
from smsproxy.errors import RepositoryError, SmsProxyError, StoreError, StoreUnusable
from smsproxy.models import (
    Event,
    Idempotency,
    ListedMessage,
    Message,
    MessageQuery,
    PendingCallback,
    Saved,
    StatusRecord,
    StoreFailed,
)
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores import MessageStore
from smsproxy.stores.protocol import Backlog, CallbackOutcome, Claimed, SharedQueue

__all__ = [
    "AddAttempts", "ApplyInOrder", "Callbacks", "Dispatch", "Feed", "Find", "ForgetIdempotency",
    "Get",
    "History", "ListAccepted",
    "Ping", "RepositoryHandle", "Save", "SharedQueueHandle", "StillAccepted", "UpdateMany",
    "run",
]

log = structlog.get_logger("smsproxy.repository")

MAX_GROUP = 1024
MAX_ROUTED = 1_000_000


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


class RepositoryHandle:
    def __init__(self, mailbox: Mailbox[Request], closed: trio.Event) -> None:
        self._mailbox = mailbox
        self._closed = closed

    async def save(
        self, *messages: Message, idempotency: Idempotency | None = None, at: float = 0.0
    ) -> Saved:
        """Store as ACCEPTED, all or none; returns once the store has committed.

        With a known idempotency key, stores nothing and returns the first ids.
        Shielded: once asked, the store may commit it, so the caller must learn
        the outcome even when its own request is being cancelled.
        """
        return await self._mailbox.call(Save(messages, idempotency, at), shield=True)

    async def get(self, message_id: str) -> StatusRecord:
        return await self._mailbox.call(Get(message_id))

    async def history(self, message_id: str) -> list[Event]:
        """The message's events, oldest first (none for an unknown id)."""
        return await self._mailbox.call(History(message_id))

    async def find(self, query: MessageQuery) -> list[ListedMessage]:
        """Messages matching ``query``, newest first."""
        return await self._mailbox.call(Find(query))

    async def feed(self, after: int, limit: int) -> list[Event]:
        """Every message's events past position ``after``, in commit order."""
        return await self._mailbox.call(Feed(after, limit))

    async def claim_callbacks(self, instance: str, now: float, limit: int, lease: float,
                              per_origin: int, skip_origins: Sequence[str] = (),
                              ) -> list[PendingCallback]:
        """Callbacks due now, each its message's earliest undelivered event, claimed."""
        return await self._callbacks("claim_callbacks", instance, now, limit, lease,  # type: ignore[no-any-return]
                                     per_origin, tuple(skip_origins))

    async def settle_callback(self, message_id: str, sequence: int, outcome: CallbackOutcome,
                              attempts: int, retry_at: float, error: str | None) -> None:
        await self._callbacks("settle_callback", message_id, sequence, outcome, attempts,
                              retry_at, error)

    async def callback_backlog(self) -> tuple[int, float | None]:
        return await self._callbacks("callback_backlog")  # type: ignore[no-any-return]

    async def _callbacks(self, operation: str, *arguments: Any) -> Any:
        return await self._mailbox.call(Callbacks(operation, arguments), shield=True)

    async def update(self, message_id: str, status: Status, reason: str | None = None) -> None:
        refused = await self.update_many({message_id: status}, reason)
        if refused:
            raise refused[message_id]

    async def update_many(
        self, updates: Mapping[str, Status], reason: str | None = None
    ) -> dict[str, RepositoryError]:
        """Apply what the rules allow; the refused updates come back by id."""
        return await self._mailbox.call(UpdateMany(dict(updates), reason))

    async def apply_in_order(
        self, updates: Sequence[tuple[str, Status]]
    ) -> list[tuple[str, Status, RepositoryError]]:
        """Apply updates in order, as one request; the refused ones come back, in order."""
        return await self._mailbox.call(ApplyInOrder(tuple(updates)))

    async def add_attempts(self, message_ids: Sequence[str], attempts: int) -> None:
        """Count provider attempts against messages, so they survive a restart."""
        await self._mailbox.call(AddAttempts(tuple(message_ids), attempts))

    async def still_accepted(self, message_ids: Sequence[str]) -> set[str]:
        """Those of the ids still ACCEPTED: what a resend may carry."""
        return await self._mailbox.call(StillAccepted(tuple(message_ids)))

    async def release_scheduled(self, now: float, limit: int
                                ) -> tuple[list[Message], float | None]:
        """Scheduled messages due at ``now``, released to be queued; when the next is due."""
        return await self._callbacks("release_scheduled", now, limit)  # type: ignore[no-any-return]

    async def accepted(self) -> list[Message]:
        """Every message still ACCEPTED, oldest first: what a restart must send again."""
        return await self._mailbox.call(ListAccepted())

    async def forget_idempotency(self, before: float, limit: int) -> int:
        """Drop up to ``limit`` idempotency keys remembered before ``before`` (wall
        clock); how many."""
        return await self._mailbox.call(ForgetIdempotency(before, limit))

    async def purge(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` final messages accepted before ``before`` (wall clock),
        with their history; how many."""
        return await self._mailbox.call(Purge(before, limit))

    async def ping(self) -> None:
        """Returns once the store answered a transaction; raises when it cannot."""
        await self._mailbox.call(Ping())

    async def ping_saves(self) -> None:
        """The same through the lane that saves wait on: a store whose saves hang (a
        lock, a trigger) answers other requests still, and must not look ready."""
        await self._mailbox.call(Ping(saves=True))

    async def close(self) -> None:
        """Serve what was asked before, close the store, and return once it is closed
        (a restart in the same process can then open it again at once)."""
        await self._mailbox.close()
        await self._closed.wait()

    @property
    def shared_queue(self) -> "SharedQueueHandle":
        """The store's shared queue, for a store that is one (PostgreSQL)."""
        return SharedQueueHandle(self._mailbox)


class SharedQueueHandle:
    """The shared-queue operations of :class:`~smsproxy.stores.protocol.SharedQueue`,
    each one request to the repository actor (and so part of a group commit)."""

    def __init__(self, mailbox: Mailbox[Request]) -> None:
        self._mailbox = mailbox

    async def claim(self, instance: str, batch_size: int, max_delay: float,
                    lease: float) -> Claimed:
        return await self._call("claim", instance, batch_size, max_delay, lease)  # type: ignore[no-any-return]

    async def renew(self, instance: str, message_ids: Sequence[str], lease: float) -> set[str]:
        return await self._call("renew", instance, tuple(message_ids), lease)  # type: ignore[no-any-return]

    async def mark_sent(self, instance: str, message_ids: Sequence[str]) -> None:
        await self._call("mark_sent", instance, tuple(message_ids))

    async def park(self, instance: str, message_ids: Sequence[str], attempts: int, error: str,
                   maybe_taken: bool, requeue_initial: float, requeue_max: float) -> None:
        await self._call("park", instance, tuple(message_ids), attempts, error, maybe_taken,
                         requeue_initial, requeue_max)

    async def expire(self, ttl: float, grace: float, reasons: tuple[str, str]) -> list[str]:
        return await self._call("expire", ttl, grace, reasons)  # type: ignore[no-any-return]

    async def backlog(self) -> Backlog:
        return await self._call("backlog")  # type: ignore[no-any-return]

    async def release(self, instance: str) -> int:
        return await self._call("release", instance)  # type: ignore[no-any-return]

    async def _call(self, operation: str, *arguments: Any) -> Any:
        # Shielded: once asked, the store may carry it out; the caller must learn how.
        return await self._mailbox.call(Dispatch(operation, arguments), shield=True)


async def run(
    open_store: Callable[[], MessageStore],
    *,
    on_store_error: Callable[[StoreFailed], None] = lambda _: None,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[RepositoryHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the store, serve requests until the handle is closed, then close the store.
    ``clock`` (wall clock seconds) dates the events of status changes.

    A store that takes concurrent transactions (PostgreSQL) is opened twice: saves
    commit on a connection of their own, so that a POST never waits behind claims
    and status reports (a save and what follows it never overlap: a message is
    claimed, read or reported only after its save committed and was answered).

    A failed transaction is logged here, once, and reported to ``on_store_error``
    (the stats actor counts it); its callers get the :class:`StoreError`.
    """
    mailbox, inbox = Mailbox[Request].open("repository")
    health = _StoreHealth()
    closed = trio.Event()
    stores: list[MessageStore] = []
    try:
        stores.append(await trio.to_thread.run_sync(open_store))
        if stores[0].concurrent:
            stores.append(await trio.to_thread.run_sync(open_store))
        for notice in stores[0].notices:
            log.warning("store_notice", notice=notice)
        lanes = [_Lane(Repository(store, clock), health, on_store_error) for store in stores]
        async with inbox, trio.open_nursery() as nursery:
            task_status.started(RepositoryHandle(mailbox, closed))
            if len(lanes) == 1:
                await lanes[0].serve(inbox)
                return
            routes = [trio.open_memory_channel[Envelope[Request]](math.inf) for _ in lanes]
            for lane, (_, requests) in zip(lanes, routes, strict=True):
                nursery.start_soon(lane.serve, requests)
            others, saves = (send for send, _ in routes)
            async for first in inbox:
                # All that waits at once, so that each lane sees its whole group.
                for envelope in receive_ready(inbox, first, MAX_ROUTED):
                    request = envelope.request
                    to_saves = isinstance(request, Save) or (isinstance(request, Ping)
                                                             and request.saves)
                    route = saves if to_saves else others
                    route.send_nowait(envelope)
            others.close()
            saves.close()
    finally:
        with trio.CancelScope(shield=True):
            for store in stores:
                await _close(store)
        closed.set()


class _Lane:
    """One store connection, serving its requests in groups, one transaction each."""

    def __init__(self, repository: Repository, health: "_StoreHealth",
                 on_store_error: Callable[[StoreFailed], None]) -> None:
        self._repository = repository
        self._health = health
        self._on_store_error = on_store_error

    async def serve(self, requests: trio.MemoryReceiveChannel[Envelope[Request]]) -> None:
        async for first in requests:
            group = receive_ready(requests, first, MAX_GROUP)
            if self._repository.store.blocking:
                results = await trio.to_thread.run_sync(_apply_group, self._repository, group)
            else:
                results = _apply_group(self._repository, group)
            if isinstance(results, StoreError):
                operations = _operations(group)
                self._health.failed(results, operations, len(group))
                self._on_store_error(StoreFailed(operations))
                results = [results] * len(group)
            else:
                self._health.succeeded()
            _reply_all(group, results)


class _StoreHealth:
    """Logs a failing store without flooding the log: a failure line at most once per
    ``REPEAT_INTERVAL`` (saying how many it left out), and the recovery only of a
    failure that was logged, so that a store flapping between failure and success
    writes no more than that either. (Every failure is still counted, in the metric.)"""

    REPEAT_INTERVAL = 10.0

    def __init__(self) -> None:
        self.failing = False
        self.reported = False
        self.unlogged = 0
        self.next_log = -math.inf

    def failed(self, error: StoreError, operations: tuple[str, ...], requests: int) -> None:
        self.failing = True
        now = trio.current_time()
        if now < self.next_log:
            self.unlogged += 1
            return
        log.error("store_transaction_failed", error=str(error), operations=operations,
                  requests=requests, failures_not_logged=self.unlogged)
        self.unlogged = 0
        self.reported = True
        self.next_log = now + self.REPEAT_INTERVAL

    def succeeded(self) -> None:
        if self.failing and self.reported:
            log.info("store_recovered", failures_not_logged=self.unlogged)
            self.unlogged = 0
        self.failing = self.reported = False


def _operations(group: Sequence[Envelope[Request]]) -> tuple[str, ...]:
    """The distinct operations of a group, by name, for the log and the metric label."""
    return tuple(sorted({OPERATION_NAMES[type(e.request)] for e in group}))


OPERATION_NAMES: dict[type, str] = {
    Save: "save", Get: "get", UpdateMany: "update_many", ApplyInOrder: "apply_in_order",
    AddAttempts: "add_attempts", StillAccepted: "still_accepted", ListAccepted: "list_accepted",
    ForgetIdempotency: "forget_idempotency", Purge: "purge", Ping: "ping", Dispatch: "dispatch",
    History: "history", Feed: "feed", Callbacks: "callbacks", Find: "find",
}


def _apply_group(
    repository: Repository, group: Sequence[Envelope[Request]]
) -> list[Any] | StoreError:
    """Apply a group in one transaction; each slot holds a result or a rule error.

    When the transaction itself fails, nothing of it was stored and the whole
    group gets the :class:`StoreError`; the actor goes on with the next group.
    When a request's work raises anything else (a bug, a value the driver cannot
    bind), the transaction is rolled back and each request is applied again in a
    transaction of its own: the one that raises gets :class:`ActorFailed`, and the
    others are served as if it had never come.
    """
    try:
        return _apply_together(repository, group)
    except StoreError as error:
        return error
    except Exception:
        if len(group) == 1:
            return [_failed(group[0])]
    return [_apply_alone(repository, envelope) for envelope in group]


def _apply_together(repository: Repository, group: Sequence[Envelope[Request]]) -> list[Any]:
    results: list[Any] = [None] * len(group)
    saves = [(i, e.request) for i, e in enumerate(group) if isinstance(e.request, Save)]
    with repository.store.transaction():
        # All the group's saves at once: one insert, not one per caller.
        submissions = [(save.messages, save.idempotency, save.at) for _, save in saves]
        for (i, _), saved in zip(saves, repository.save_all(submissions), strict=True):
            results[i] = saved
        for i, envelope in enumerate(group):
            if not isinstance(envelope.request, Save):
                try:
                    results[i] = _apply(repository, envelope.request)
                except RepositoryError as error:
                    results[i] = error
    return results


def _apply_alone(repository: Repository, envelope: Envelope[Request]) -> Any:
    try:
        [result] = _apply_together(repository, [envelope])
    except StoreError as error:
        return error
    except Exception:
        return _failed(envelope)
    return result


def _failed(envelope: Envelope[Request]) -> ActorFailed:
    """Called in an ``except`` block: the request's error, logged once with its traceback."""
    error = sys.exc_info()[1]
    assert error is not None
    log.exception("repository_request_failed", operation=OPERATION_NAMES[type(envelope.request)])
    return ActorFailed("repository", error)


def _apply(repository: Repository, request: Request) -> Any:
    match request:
        case Get(message_id):
            return repository.get(message_id)
        case UpdateMany(updates, reason):
            return repository.update_many(updates, reason)
        case ApplyInOrder(updates):
            return repository.apply_in_order(updates)
        case AddAttempts(message_ids, attempts):
            return repository.add_attempts(message_ids, attempts)
        case StillAccepted(message_ids):
            return repository.still_accepted(message_ids)
        case ListAccepted():
            return repository.accepted()
        case ForgetIdempotency(before, limit):
            return repository.store.forget_idempotency(before, limit)
        case Purge(before, limit):
            return repository.store.purge(before, limit)
        case Dispatch(operation, arguments):
            return getattr(_shared_queue(repository.store), operation)(*arguments)
        case History(message_id):
            return repository.history(message_id)
        case Feed(after, limit):
            return repository.feed(after, limit)
        case Find(query):
            return repository.find(query)
        case Callbacks(operation, arguments):
            return getattr(repository.store, operation)(*arguments)
        case Ping(_):
            return repository.check()


def _shared_queue(store: MessageStore) -> SharedQueue:
    if not hasattr(store, "claim"):
        raise StoreUnusable(f"{type(store).__name__} is not a shared queue")
    return cast(SharedQueue, store)


def _reply_all(group: Sequence[Envelope[Request]], results: Sequence[Any]) -> None:
    for envelope, result in zip(group, results, strict=True):
        if envelope.reply is None:
            continue
        if isinstance(result, SmsProxyError):
            envelope.reply.fail(result)
        else:
            envelope.reply.set(result)


async def _close(store: MessageStore) -> None:
    if store.blocking:
        await trio.to_thread.run_sync(store.close)
    else:
        store.close()
    log.info("store_closed")
