"""The repository actor: the only code that touches the message store.

It serves requests in groups: everything waiting in its inbox is applied in one
store transaction (group commit), then every caller in the group gets its reply.
A durable store pays for one commit per group, not one per request. A blocking
store is driven from a worker thread, so the event loop never waits on disk.

This module is the actor's door (the handle) and its start; its closed set of
requests is ``actors._repository_requests``, and how a lane serves a group (and a
request whose work raises fails alone) is ``actors._repository_lanes``.
"""

import math
import time
from collections.abc import Callable, Mapping, Sequence

import structlog
import trio

from actors._mailbox import (
    DEFAULT_CALL_TIMEOUT,
    Envelope,
    Mailbox,
    receive_ready,
    refuse_waiting,
)
from actors._repository_facets import ComplianceHandle, QueueHandle
from actors._repository_inbox import OPERATION_NAMES, Request
from actors._repository_lanes import Lane, StoreHealth, close_store
from actors._repository_requests import (
    ApplyInOrder,
    Attribute,
    Callbacks,
    ClaimCallbacks,
    ClaimProbe,
    CountCallbacks,
    Feed,
    Find,
    ForgetIdempotency,
    Get,
    History,
    ListAccepted,
    Ping,
    Purge,
    Save,
    SettleCallback,
    SharedRoutes,
    ShareRoutes,
    UpdateMany,
)
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
from smsproxy.records import StoreFailed
from smsproxy.repository import Attributed, Repository
from smsproxy.routing import SharedRoute
from smsproxy.statuses import Status
from smsproxy.stores import MessageStore
from smsproxy.stores.protocol import CallbackOutcome

__all__ = ["OPERATION_NAMES", "RepositoryHandle", "run"]

log = structlog.get_logger("smsproxy.repository")

MAX_ROUTED = 1_000_000


class RepositoryHandle:
    def __init__(self, mailbox: Mailbox[Request], closed: trio.Event) -> None:
        self._mailbox = mailbox
        self._closed = closed

    async def save(
        self, *messages: Message, idempotency: Idempotency | None = None, at: float = 0.0,
        quota: Quota | None = None,
    ) -> Saved:
        """Store as ACCEPTED, all or none; returns once the store has committed.

        With a known idempotency key, stores nothing and returns the first ids.
        Shielded, and without a time limit: once asked, the store may commit it, so
        the caller learns the outcome, however long the store takes (a hanging
        store is the readiness check's to report), even when its own request is
        being cancelled. An answer that the message was not stored is then true.
        """
        return await self._mailbox.call(Save(messages, idempotency, at, quota), shield=True,
                                        unbounded=True)

    async def get(self, message_id: str, viewer: str | None = None) -> StatusRecord:
        """The status; NOT_FOUND for an unknown id, or another key's when ``viewer``
        names a key."""
        return await self._mailbox.call(Get(message_id, viewer))

    async def attribute(self, provider: str, ids: Sequence[str],
                        refs: Sequence[str]) -> Attributed:
        """Which of a provider's reports are its to make (see ``Repository.attribute``)."""
        return await self._mailbox.call(Attribute(provider, tuple(ids), tuple(refs)))

    async def shared_routes(self) -> list[SharedRoute]:
        """Each provider's health and weight as the instances last shared them."""
        return await self._mailbox.call(SharedRoutes())

    async def share_routes(self, routes: Sequence[SharedRoute]) -> None:
        await self._mailbox.call(ShareRoutes(tuple(routes)))

    async def claim_probe(self, route: str, due: float, next_probe: float) -> bool:
        """Whether this instance may probe the down provider (see ``Routes.claim_probe``)."""
        return await self._mailbox.call(ClaimProbe(route, due, next_probe))

    async def history(self, message_id: str, viewer: str | None = None) -> list[Event]:
        """The message's events, oldest first (none for an unknown id, or another
        key's)."""
        return await self._mailbox.call(History(message_id, viewer))

    async def callbacks(self, message_id: str, viewer: str | None = None
                        ) -> list[CallbackState]:
        """Where each of the message's callbacks stands (none for an unknown id, or
        another key's)."""
        return await self._mailbox.call(Callbacks(message_id, viewer))

    async def find(self, query: MessageQuery) -> list[ListedMessage]:
        """Messages matching ``query``, newest first."""
        return await self._mailbox.call(Find(query))

    async def feed(self, after: int, limit: int, viewer: str | None = None) -> list[Event]:
        """Every message's events past position ``after``, in commit order (of the
        ``viewer`` key's messages only, when named)."""
        return await self._mailbox.call(Feed(after, limit, viewer))

    async def claim_callbacks(self, instance: str, now: float, limit: int, lease: float,
                              per_origin: int, skip_origins: Sequence[str] = (),
                              ) -> list[PendingCallback]:
        """Callbacks due now, each its message's earliest undelivered event, claimed."""
        return await self._mailbox.call(ClaimCallbacks(
            instance, now, limit, lease, per_origin, tuple(skip_origins)), shield=True)

    async def settle_callback(self, message_id: str, sequence: int, outcome: CallbackOutcome,
                              attempts: int, retry_at: float, error: str | None) -> None:
        await self._mailbox.call(SettleCallback(message_id, sequence, outcome, attempts,
                                                retry_at, error), shield=True)

    async def callback_backlog(self) -> tuple[int, float | None]:
        return await self._mailbox.call(CountCallbacks(), shield=True)

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

    async def accepted(self) -> list[Message]:
        """Every message still ACCEPTED (sent or not), oldest first: what waits."""
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
    def compliance(self) -> ComplianceHandle:
        """The suppression list, replies and quotas."""
        return ComplianceHandle(self._mailbox)

    @property
    def queue(self) -> QueueHandle:
        """The store as the queue (:class:`~smsproxy.stores.queue.Queue`)."""
        return QueueHandle(self._mailbox)


async def run(
    open_store: Callable[[], MessageStore],
    *,
    on_store_error: Callable[[StoreFailed], None] = lambda _: None,
    clock: Callable[[], float] = time.time,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
    task_status: trio.TaskStatus[RepositoryHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Open the store, serve requests until the handle is closed, then close the store.
    ``clock`` (wall clock seconds) dates the events of status changes; ``call_timeout``
    is how long a caller waits for an answer (``--store-timeout``).

    A store that takes concurrent transactions (PostgreSQL) is opened twice: saves
    commit on a connection of their own, so that a POST never waits behind claims
    and status reports (a save and what follows it never overlap: a message is
    claimed, read or reported only after its save committed and was answered).

    A failed transaction is logged here, once, and reported to ``on_store_error``
    (the stats actor counts it); its callers get the :class:`StoreError`.
    """
    mailbox, inbox = Mailbox[Request].open("repository", timeout=call_timeout)
    health = StoreHealth()
    closed = trio.Event()
    stores: list[MessageStore] = []
    routes: list[tuple[trio.MemorySendChannel[Envelope[Request]],
                       trio.MemoryReceiveChannel[Envelope[Request]]]] = []
    try:
        stores.append(await trio.to_thread.run_sync(open_store))
        if stores[0].concurrent:
            stores.append(await trio.to_thread.run_sync(open_store))
        for notice in stores[0].notices:
            log.warning("store_notice", notice=notice)
        lanes = [Lane(Repository(store, clock), health, on_store_error) for store in stores]
        async with trio.open_nursery() as nursery:
            task_status.started(RepositoryHandle(mailbox, closed))
            if len(lanes) == 1:
                await lanes[0].serve(inbox)
                return
            routes += [trio.open_memory_channel[Envelope[Request]](math.inf) for _ in lanes]
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
        for waiting in (inbox, *(requests for _, requests in routes)):
            refuse_waiting(waiting, "repository")
            waiting.close()
        with trio.CancelScope(shield=True):
            for store in stores:
                await close_store(store)
        closed.set()
