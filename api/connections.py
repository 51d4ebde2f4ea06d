"""Client connections, held to time limits and a cap, and accepted by a loop of ours.

hypercorn serves each connection well once it has one, but it bounds neither how
long a request's head or body may take to arrive, nor how many connections are
open; and trio's ``serve_listeners`` logs a traceback for every ``accept`` that
fails for want of file descriptors. So smsproxy accepts connections itself and
hands each to :class:`Connection`, hypercorn's ``TCPServer`` with these changes:

- a request's head must arrive within ``header_timeout`` of its first byte, and
  its body within ``body_timeout`` of its head (an idle keep-alive connection is
  closed after ``keep_alive_timeout``, as hypercorn does);
- closing is shielded from cancellation: when the app answers before the body has
  arrived (a 401, 404, 413), quart-trio cancels the request's task in the middle of
  closing, and the socket was left half-open (CLOSE-WAIT) until the client left;
- a connection that ends (the client left, a time limit passed) is closed at once:
  hypercorn's keep-alive timer, a task per connection that held its descriptor until
  it ran out, is replaced by the read loop's own deadline;
- the :class:`Connections` registry knows which connections are idle, so that at
  the cap the idle ones make room first;
- hypercorn's protocol (a task group, h11's state, the app's wrapper) is built only
  once a connection's first bytes arrive, so that a flood of connections that send
  nothing costs a task and a read each, and a probe behind it is answered in time;
- slow clients cut off are logged as counts, one line per interval, not one each;
- an answer leaves in one write, its head with its first body bytes (hypercorn
  writes the head, each chunk and the end apart, each behind a lock and a shielded
  scope, with a system call of its own).

Built on hypercorn 0.18's ``TCPServer`` and ``ProtocolWrapper``; the version is
pinned in ``pyproject.toml`` for that reason.
"""

import errno
import math
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import h11
import structlog
import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer

__all__ = [
    "Connection", "ConnectionLimits", "Connections", "accept_connections",
]

log = structlog.get_logger("smsproxy.connections")

OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

_REFUSAL_BODY = b'{"error": "too many connections; retry in a while"}'
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\n"
    + f"content-length: {len(_REFUSAL_BODY)}\r\n\r\n".encode() + _REFUSAL_BODY
)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    keep_alive_timeout: float
    header_timeout: float
    body_timeout: float
    warn_interval: float = 10.0
    """At most one warning per interval about refusals or running out of descriptors."""


class Connections:
    """The open connections, which of them are idle, and the refusals not yet logged."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: dict[Connection, None] = {}  # insertion order: oldest first
        self._unreported = 0
        self._next_warning = -math.inf
        self._timeouts: Counter[str] = Counter()
        self._next_timeout_log = -math.inf

    @property
    def full(self) -> bool:
        return len(self.open) >= self.limits.max_connections

    def close_idle(self, count: int) -> int:
        """Close up to ``count`` idle connections, oldest first; how many it closed."""
        closed = 0
        for connection in list(self.open):
            if closed >= count:
                break
            if connection.idle:
                connection.evict()
                closed += 1
        return closed

    def note_refusal(self, why: str) -> None:
        self._unreported += 1
        now = trio.current_time()
        if now >= self._next_warning:
            log.warning("connections_refused", reason=why, count=self._unreported,
                        open=len(self.open), max_connections=self.limits.max_connections)
            self._unreported = 0
            self._next_warning = now + self.limits.warn_interval


    def note_timeout(self, phase: str) -> None:
        """A slow client cut off: one line per interval with the counts by phase, not a
        line per connection (500 slowloris clients time out in the same instant, and
        500 log writes then hold up everyone else's answers)."""
        self._timeouts[phase] += 1
        now = trio.current_time()
        if now >= self._next_timeout_log:
            log.info("connections_timed_out", **self._timeouts)
            self._timeouts.clear()
            self._next_timeout_log = now + self.limits.warn_interval


class Connection(TCPServer):
    """One client connection: hypercorn's, with deadlines for the head and the body."""

    def __init__(self, registry: Connections, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.registry = registry
        self.idle = True
        self.idle_since = trio.current_time()
        self.request_started: float | None = None
        self.head_received = 0.0
        self._held = b""
        self._in_body = False
        self._reading = trio.CancelScope()
        self._first = b""

    async def run(self) -> None:
        """Serve it; the accept loop has counted it in the registry already.

        hypercorn's protocol (a task group, h11's state, the app's wrapper) is built
        once the first bytes have come: a flood of connections that send nothing costs
        a task and a read each, and the probe behind them is answered sooner."""
        try:
            self._first = await self._first_bytes()
            if self._first:
                await super().run()
            else:
                with trio.CancelScope(shield=True), suppress(OSError, trio.BrokenResourceError):
                    await self.stream.aclose()
        finally:
            self.registry.open.pop(self, None)

    async def _first_bytes(self) -> bytes:
        """What the client sent first, or nothing: it left, was evicted, or sent
        nothing within the keep-alive timeout."""
        with trio.move_on_at(self.idle_since + self.registry.limits.keep_alive_timeout):
            try:
                data = bytes(await self.stream.receive_some(MAX_RECV))
            except (OSError, trio.ClosedResourceError, trio.BrokenResourceError):
                return b""
            if data:
                self.request_started = trio.current_time()
            return data
        return b""

    def evict(self) -> None:
        """Close it now (it is idle): its reading task sees the socket closed and ends.

        It leaves the count at once, since its descriptor is free at once."""
        self.registry.open.pop(self, None)
        self.idle = False
        self.stream.socket.close()

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            await self._write(event.data)
        elif isinstance(event, Updated):
            # hypercorn restarts its idle timer task here; ours is the read deadline
            self.idle = event.idle
            if event.idle:  # the answer is out: the next request starts afresh
                self.idle_since = trio.current_time()
                self.request_started = None
                # The read in progress began while the app was answering, with no
                # deadline: from now on the keep-alive timeout bounds it.
                self._reading.deadline = self._read_deadline()
            else:
                self.head_received = trio.current_time()
        else:
            await self._write(b"")
            await super().protocol_send(event)

    async def _write(self, data: bytes) -> None:
        """Send ``data``, an answer's head held back to go out with its first body bytes.

        hypercorn hands over the head, each body chunk and the (empty) end of the
        message one at a time, each a lock, a shielded scope and a system call; an
        answer in one write costs a third of that, and leaves as one packet."""
        in_body = self._our_state() is h11.SEND_BODY
        if in_body and not self._in_body:  # the head: its body follows at once
            self._in_body = True
            self._held = data
            return
        self._in_body = in_body
        data, self._held = self._held + data, b""
        if data:
            await super().protocol_send(RawData(data))

    async def _close(self) -> None:
        with trio.CancelScope(shield=True):
            await super()._close()

    async def _idle_timeout(self) -> None:
        """Nothing: ``_read_data`` keeps the keep-alive deadline itself, and the server
        closes idle connections at shutdown (``Connections.close_idle``). hypercorn's
        timer is a sleeping task per connection: memory that 2,000 idle ones add up."""

    async def _read_data(self) -> None:
        # One scope for the connection, its deadline moved before each read: a scope
        # per read costs more than the read's own system call.
        with self._reading as reading:
            while True:
                reading.deadline = self._read_deadline()
                try:
                    data = self._first or await self.stream.receive_some(MAX_RECV)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    break
                self._first = b""
                if reading.cancel_called:  # the deadline passed as the bytes came
                    break
                if data and self.request_started is None and self._their_state() is h11.IDLE:
                    self.request_started = trio.current_time()
                reading.deadline = math.inf  # the deadlines bound the reads, not the app
                await self.protocol.handle(RawData(bytes(data)))
                if data == b"":
                    break
        if reading.cancel_called:
            self._timed_out()
        await self.protocol.handle(Closed())

    def _their_state(self) -> object:
        """h11's state of the client's side; None for HTTP/2."""
        connection = self._h11()
        return connection.their_state if connection is not None else None

    def _our_state(self) -> object:
        """h11's state of our side; None for HTTP/2."""
        connection = self._h11()
        return connection.our_state if connection is not None else None

    def _h11(self) -> h11.Connection | None:
        connection = getattr(self.protocol.protocol, "connection", None)
        return connection if isinstance(connection, h11.Connection) else None

    def _read_deadline(self) -> float:
        limits = self.registry.limits
        state = self._their_state()
        if state is h11.SEND_BODY:
            return self.head_received + limits.body_timeout
        if state is h11.IDLE:
            if self.request_started is not None:
                return self.request_started + limits.header_timeout
            return self.idle_since + limits.keep_alive_timeout
        if state is None:  # HTTP/2: no per-request phases to see here
            return trio.current_time() + limits.body_timeout
        return math.inf  # the request is in; the app is answering

    def _timed_out(self) -> None:
        phase = "body" if self._their_state() is h11.SEND_BODY else "header"
        if self.request_started is not None or phase == "body":  # not a mere idle end
            self.registry.note_timeout(phase)


async def accept_connections(
    listener: trio.SocketListener,
    registry: Connections,
    connection_for: Callable[[trio.SocketStream], Connection],
    nursery: trio.Nursery,
) -> None:
    """Accept forever; at the cap, close idle connections first, then refuse at once.

    Out of file descriptors, ``accept`` fails: idle connections are closed to make
    room, the failure is counted (one warning per interval, never a traceback per
    accept), and accepting goes on as soon as a descriptor is free.
    """
    while True:
        try:
            stream = await listener.accept()
        except OSError as error:
            if error.errno not in OUT_OF_DESCRIPTORS:
                raise
            registry.note_refusal("descriptors")
            registry.close_idle(max(1, len(registry.open) // 10))
            await trio.sleep(0.01)
            continue
        if registry.full and not registry.close_idle(1):
            registry.note_refusal("max_connections")
            nursery.start_soon(_refuse, stream)
            continue
        connection = connection_for(stream)
        # Counted now, not when its task first runs: a burst of accepts must see it.
        registry.open[connection] = None
        nursery.start_soon(connection.run)


async def _refuse(stream: trio.SocketStream) -> None:
    with trio.move_on_after(1), suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(_REFUSAL)
    await stream.aclose()
