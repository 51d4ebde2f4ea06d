"""The notifier actor: POSTs each status event to its message's callback URL, and
each reply (an ``inbound`` event) to the shop's ``--callback-url``.

Pending callbacks are rows of the store (written with the status change itself),
not memory: they survive a restart and a ``kill -9``, and with several instances
each is claimed by one of them for a lease. Every ``poll`` seconds the notifier
claims what is due and sends each in its own task; a message's next event is not
due before the previous one is delivered or given up, so the events of one message
arrive in order, while different messages and receivers go in parallel, at most
``per_origin`` at once per (scheme, host, port), so that one slow receiver holds up
only itself.

A 2xx ends an event. A timeout, a connection error, 408, 429 or 5xx is tried again
with exponential backoff and jitter (``Retry-After`` honoured), until the event is
``max_age`` old; any other answer gives up at once. A receiver that is down never
makes the service unready: this actor only counts and logs.
"""

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import structlog
import trio

from actors._callback_http import CallbackTransport, Unreachable
from actors.errors import ActorError
from actors.repository import RepositoryHandle
from actors.stats import StatsHandle
from smsproxy.callbacks import (
    Decision,
    RetrySchedule,
    decide,
    origin,
    payload,
    reply_payload,
    safe_url,
    signed_headers,
)
from smsproxy.compliance import PendingReply
from smsproxy.errors import StoreError
from smsproxy.models import PendingCallback
from smsproxy.records import CallbackAttempted, CallbackBacklog
from smsproxy.stores.protocol import CallbackOutcome

__all__ = ["INTERNAL_ERROR", "INTERNAL_ERROR_TRIES", "NotifierSettings", "run"]

log = structlog.get_logger("smsproxy.notifier")

INTERNAL_ERROR = "internal error"
INTERNAL_ERROR_TRIES = 3
"""A crash gives the callback up once it has had this many attempts of any kind, and
is retried before: the attempts count lives in its row, so a callback that crashes
every time is given up after three, across restarts too."""
NEVER_REACHABLE = frozenset({"refused_address", "invalid_url"})
"""Why a callback cannot get through at any later try: given up at once."""

Pending = PendingCallback | PendingReply
"""A callback to send: a message's status event, or a reply."""

_STORED: dict[str, CallbackOutcome] = {
    "delivered": "delivered", "retry": "retry", "abandon": "abandoned"}


@dataclass(frozen=True, slots=True)
class NotifierSettings:
    secret: str
    instance: str = "local"
    schedule: RetrySchedule = field(default_factory=RetrySchedule)
    timeout: float = 5.0
    """Seconds a receiver has to answer one POST."""
    per_origin: int = 4
    in_flight: int = 64
    """Callbacks being sent at once, in all."""
    poll: float = 0.2
    """Seconds between looks for due callbacks."""
    backlog_every: float = 5.0
    """Seconds between counts of pending callbacks (for the metrics)."""

    @property
    def lease(self) -> float:
        """A claim outlasts one attempt, so that no two instances send one event at once."""
        return self.timeout * 3 + 10


async def run(
    repository: RepositoryHandle,
    stats: StatsHandle,
    transport: CallbackTransport,
    settings: NotifierSettings,
    *,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    notifier = _Notifier(repository, stats, transport, settings, clock)
    async with trio.open_nursery() as senders:
        notifier.senders = senders
        task_status.started()
        await notifier.serve()


class _Notifier:
    def __init__(self, repository: RepositoryHandle, stats: StatsHandle,
                 transport: CallbackTransport, settings: NotifierSettings,
                 clock: Callable[[], float]) -> None:
        self.repository = repository
        self.stats = stats
        self.transport = transport
        self.settings = settings
        self.clock = clock
        self.senders: trio.Nursery
        self.in_flight = 0
        self.origins: defaultdict[str, trio.CapacityLimiter] = defaultdict(
            lambda: trio.CapacityLimiter(settings.per_origin))
        self.outstanding: Counter[str] = Counter()
        """Callbacks claimed and not yet settled, by receiver."""
        self.wake = trio.Event()

    async def serve(self) -> None:
        next_count = -math.inf
        while True:
            await self.claim()
            if trio.current_time() >= next_count:
                await self.count()
                next_count = trio.current_time() + self.settings.backlog_every
            self.wake = trio.Event()
            with trio.move_on_after(self.settings.poll):
                await self.wake.wait()

    async def claim(self) -> None:
        room = self.settings.in_flight - self.in_flight
        if room <= 0:
            return
        # A receiver with twice its share on the way gets no more until some return:
        # its callbacks would only wait here, holding slots (and claims) others could use.
        full = [receiver for receiver, count in self.outstanding.items()
                if count >= 2 * self.settings.per_origin]
        try:
            due = await self.repository.claim_callbacks(
                self.settings.instance, self.clock(), room, self.settings.lease,
                2 * self.settings.per_origin, full)
        except (StoreError, ActorError):
            return  # the repository logged it; the next look tries again
        replies: list[PendingReply] = []
        if room > len(due):
            with suppress(StoreError, ActorError):  # logged by the repository
                replies = await self.repository.compliance.claim_reply_callbacks(
                    self.settings.instance, self.clock(), room - len(due), self.settings.lease)
        pending: list[Pending] = [*due, *replies]
        for callback in pending:
            self.in_flight += 1
            self.senders.start_soon(self.deliver, callback)

    async def deliver(self, callback: Pending) -> None:
        receiver = origin(callback.url)
        self.outstanding[receiver] += 1
        try:
            async with self.origins[receiver]:
                decision = await self.attempt(callback)
            await self.settle(callback, decision)
        finally:
            self.in_flight -= 1
            self.outstanding[receiver] -= 1
            if not self.outstanding[receiver]:
                del self.outstanding[receiver], self.origins[receiver]
            self.wake.set()  # the message's next event may be due now

    async def attempt(self, callback: Pending) -> Decision:
        try:
            body = (payload(callback.event) if isinstance(callback, PendingCallback)
                    else reply_payload(callback.inbound))
            headers = signed_headers(body, self.settings.secret, self.clock())
            status, retry_after = await self.transport.post(callback.url, body, headers)
        except Unreachable as error:
            if error.reason in NEVER_REACHABLE:
                return Decision("abandon", error.reason)
            return Decision("retry", error.reason)
        except Exception:
            # A bug, or an input nothing mapped: this callback's failure, not the
            # notifier's. Tried a few times (it may be passing), then given up.
            log.exception("callback_attempt_crashed", **_named(callback),
                          attempts=callback.attempts + 1)
            if callback.attempts + 1 >= INTERNAL_ERROR_TRIES:
                return Decision("abandon", INTERNAL_ERROR)
            return Decision("retry", INTERNAL_ERROR)
        return decide(status, retry_after)

    async def settle(self, callback: Pending, decision: Decision) -> None:
        attempts = callback.attempts + 1
        happened = (callback.event.at if isinstance(callback, PendingCallback)
                    else callback.stored_at)
        now = self.clock()
        retry_at = -1.0
        outcome = decision.outcome
        if outcome == "retry":
            next_at = self.settings.schedule.next_attempt(attempts, now, happened,
                                                          decision.retry_after)
            outcome = "abandon" if next_at is None else "retry"
            retry_at = next_at if next_at is not None else -1.0
        self.stats.record(CallbackAttempted(outcome, decision.reason))
        stored = _STORED[outcome]
        fields = {**_named(callback), "url": safe_url(callback.url), "attempts": attempts,
                  "reason": decision.reason}
        if outcome == "abandon":
            log.warning("callback_abandoned", **fields)
        elif outcome == "retry":
            log.info("callback_attempt_failed", retry_in=round(retry_at - now, 1), **fields)
        # When this fails, the claim runs out and the event goes again: receivers drop
        # repeats by event_id.
        with suppress(StoreError, ActorError):
            if isinstance(callback, PendingCallback):
                await self.repository.settle_callback(
                    callback.event.message_id, callback.event.sequence, stored, attempts,
                    retry_at, decision.reason)
            else:
                await self.repository.compliance.settle_reply_callback(
                    callback.inbound.id, stored, attempts, retry_at, decision.reason)

    async def count(self) -> None:
        try:
            pending, oldest = await self.repository.callback_backlog()
        except (StoreError, ActorError):
            return
        age = max(0.0, self.clock() - oldest) if oldest is not None else 0.0
        self.stats.record(CallbackBacklog(pending, age))


def _named(callback: Pending) -> dict[str, object]:
    """What names a callback in the log."""
    if isinstance(callback, PendingCallback):
        return {"message_id": callback.event.message_id, "sequence": callback.event.sequence}
    return {"inbound_id": callback.inbound.id}
