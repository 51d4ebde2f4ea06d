"""What every actor shares: an inbox, and calls that wait for a one-time reply.

Modelled on Erlang's gen_server: ``call`` puts a request in the inbox and waits
for the reply; ``cast`` puts it there and goes on. Failures surface as
:class:`~actors.errors.ActorUnavailable` and :class:`~actors.errors.ActorTimeout`
rather than raw trio exceptions.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio

from actors.errors import ActorBusy, ActorTimeout, ActorUnavailable

__all__ = ["Call", "Envelope", "Mailbox", "Reply", "receive_ready", "refuse_waiting"]

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_CALL_TIMEOUT = 30.0


class Call(Generic[R]):
    """Base of requests that expect a reply of type ``R``."""


@dataclass(slots=True, eq=False)
class Reply(Generic[R]):
    """A reply slot filled exactly once by the actor."""

    _done: trio.Event = field(default_factory=trio.Event)
    _value: Any = None
    _error: BaseException | None = None

    def set(self, value: R) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    async def wait(self) -> R:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Envelope(Generic[T]):
    request: T
    reply: Reply[Any] | None


class Mailbox(Generic[T]):
    """The sending side of an actor's inbox, shared by every caller."""

    def __init__(
        self, name: str, send: trio.MemorySendChannel[Envelope[T]], timeout: float
    ) -> None:
        self.name = name
        self._send = send
        self._timeout = timeout

    async def call(self, request: Call[R], *, shield: bool = False,
                   unbounded: bool = False) -> R:
        """Deliver and wait for the reply, at most the mailbox's timeout.

        ``shield``: the caller's cancellation does not cut the wait short, for
        requests the actor carries out whether or not anyone is still waiting.
        ``unbounded``: no timeout either, for a request whose outcome the caller must
        know (an answer "not done" while it may still be done would be a lie).
        """
        reply: Reply[R] = Reply()
        envelope: Envelope[Any] = Envelope(request, reply)
        # A bare cancel scope rather than trio.fail_after, whose generator-based
        # context manager is a measurable cost on every request's path.
        timeout = math.inf if unbounded else self._timeout
        with trio.CancelScope(relative_deadline=timeout, shield=shield):
            try:
                try:
                    # Room is the common case: no trip through the scheduler for it.
                    self._send.send_nowait(envelope)
                except trio.WouldBlock:
                    await self._send.send(envelope)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise ActorUnavailable(self.name) from None
            return await reply.wait()
        raise ActorTimeout(self.name, self._timeout)

    async def cast(self, request: T) -> None:
        """Deliver without waiting for a reply; waits only for room in the inbox."""
        try:
            await self._send.send(Envelope(request, None))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorUnavailable(self.name) from None

    def cast_nowait(self, request: T) -> None:
        """Deliver without waiting at all; :class:`ActorBusy` when the inbox is full."""
        try:
            self._send.send_nowait(Envelope(request, None))
        except trio.WouldBlock:
            raise ActorBusy(self.name) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ActorUnavailable(self.name) from None

    async def close(self) -> None:
        """No more requests: the actor finishes what it holds, then returns."""
        await self._send.aclose()

    @classmethod
    def open(
        cls, name: str, capacity: float = math.inf, timeout: float = DEFAULT_CALL_TIMEOUT
    ) -> "tuple[Mailbox[T], trio.MemoryReceiveChannel[Envelope[T]]]":
        """A new inbox: ``Mailbox[Request].open("name")`` gives (mailbox, receive side)."""
        send, receive = trio.open_memory_channel[Envelope[T]](capacity)
        return cls(name, send, timeout), receive


def receive_ready(inbox: trio.MemoryReceiveChannel[T], first: T, limit: int) -> list[T]:
    """``first`` and whatever else is waiting in the channel, up to ``limit`` in all."""
    group = [first]
    while len(group) < limit:
        try:
            group.append(inbox.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return group


def refuse_waiting(inbox: trio.MemoryReceiveChannel[Envelope[T]], name: str) -> None:
    """When an actor stops: every request still in its inbox is answered
    :class:`ActorUnavailable`, so that no caller waits for a reply that cannot come."""
    while True:
        try:
            envelope = inbox.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return
        if envelope.reply is not None:
            envelope.reply.fail(ActorUnavailable(name))
