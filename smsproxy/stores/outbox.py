"""What a store offers for its outbox: each message's events (its history), every
event in commit order (the feed), and the callbacks the events owe the shop."""

from collections.abc import Sequence
from typing import Literal, Protocol

from smsproxy.models import CallbackState, Event, PendingCallback

__all__ = ["CallbackOutcome", "Outbox"]

CallbackOutcome = Literal["delivered", "abandoned", "retry"]


class Outbox(Protocol):
    def append_events(self, events: Sequence[Event]) -> None:
        """Record status steps (their statuses are written by set_statuses_unless)."""
        ...

    def events_of(self, message_id: str) -> list[Event]:
        """A message's events, oldest first; the ACCEPTED one is written by insert."""
        ...

    def feed(self, after: int, limit: int, tenant: str | None = None) -> list[Event]:
        """Every message's events in the order they committed: up to ``limit`` of them
        past ``position`` ``after`` (of ``tenant``'s messages only, when named). A
        position, once seen, is never filled later."""
        ...

    def claim_callbacks(
        self, instance: str, now: float, limit: int, lease: float, per_origin: int,
        skip_origins: Sequence[str] = (),
    ) -> list[PendingCallback]:
        """Up to ``limit`` callbacks due at ``now``, oldest due first, each its message's
        earliest undelivered event (so a message's events go out in order), claimed
        by ``instance`` until ``now + lease``: at most ``per_origin`` for one receiver
        (``origin()``), and none for those in ``skip_origins``, which have enough on
        their way."""
        ...

    def settle_callback(
        self, message_id: str, sequence: int, outcome: CallbackOutcome, attempts: int,
        retry_at: float, error: str | None,
    ) -> None:
        """Record an attempt: the event is delivered, abandoned, or due again at
        ``retry_at``; its claim ends either way."""
        ...

    def callbacks_of(self, message_id: str) -> list[CallbackState]:
        """Each of the message's events that owes a callback, in order, with where it
        stands."""
        ...

    def callback_backlog(self) -> tuple[int, float | None]:
        """(callbacks not yet delivered or abandoned, the time of the oldest one's event)."""
        ...
