"""Test doubles that stand where a real part would: a scripted provider, a counting store."""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import trio

from smsproxy.errors import ProviderError, ProviderUnavailable, StoreError
from smsproxy.models import Batch, Message
from smsproxy.providers.protocol import Sent
from smsproxy.stores import MemoryStore, PostgresStore, SqliteStore

WALL_CLOCK_AT_START = 1_764_180_000.0
"""Messages are stamped with a realistic wall-clock time, so that a rule that mixes
up wall-clock and elapsed time (``wall_now + created_at``) cannot pass."""


def wall_clock() -> float:
    """Wall-clock time that moves with trio's clock, so that MockClock drives the TTL
    and the queue's leases; also from a store's worker thread (a blocking store)."""
    try:
        return WALL_CLOCK_AT_START + trio.current_time()
    except RuntimeError:
        return WALL_CLOCK_AT_START + trio.from_thread.run_sync(trio.current_time)


MANUAL_CLOCK_AT_START = 1_764_180_000.0


class ManualClock:
    """Wall-clock seconds that move only when a test sets ``now``."""

    def __init__(self) -> None:
        self.now = MANUAL_CLOCK_AT_START

    def __call__(self) -> float:
        return self.now


class InlineSqliteStore(SqliteStore):
    """SQLite driven on the event loop's thread, for tests on trio's MockClock.

    Under an autojump clock a task waiting on a worker thread looks blocked, so
    the clock would jump past every timeout while the thread works.
    """

    blocking = False


class InlinePostgresStore(PostgresStore):
    """PostgreSQL driven on the event loop's thread, for the same reason."""

    blocking = False


class ScriptedProvider:
    """Records every batch; fails the first ``failures`` calls; can be slow or hang."""

    name = "scripted"
    max_batch: int | None = None

    def __init__(
        self,
        failures: int | float = 0,
        error: type[ProviderError] = ProviderUnavailable,
        latency: float = 0.0,
    ) -> None:
        self.calls: list[Batch] = []
        self.call_times: list[float] = []
        self.failures_left = failures
        self.error = error
        self.latency = latency
        self.concurrent = 0
        self.max_concurrent = 0
        self.released = trio.Event()

    async def send(self, batch: Batch) -> Sent:
        self.calls.append(batch)
        self.call_times.append(trio.current_time())
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.latency == math.inf:
                await self.released.wait()
            elif self.latency:
                await trio.sleep(self.latency)
            if self.failures_left > 0:
                self.failures_left -= 1
                raise self.error(f"failure {len(self.calls)}")
        finally:
            self.concurrent -= 1
        return Sent(tuple(m.id for m in batch.messages))

    def sent_ids(self) -> list[list[str]]:
        return [[m.id for m in batch.messages] for batch in self.calls]

    def sent_sets(self) -> list[set[str]]:
        """What each call carried, in call order; within a batch, messages accepted in
        the same instant come in id order, not the order they were posted."""
        return [{m.id for m in batch.messages} for batch in self.calls]


class CountingStore(MemoryStore):
    """A memory store that counts its transactions and inserts, to see group commit at work."""

    def __init__(self) -> None:
        super().__init__(wall_clock)
        self.transactions = 0
        self.inserts = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.transactions += 1
        with super().transaction():
            yield

    def insert(self, messages: Sequence[Message]) -> None:
        self.inserts += 1
        super().insert(messages)


class FailingStore(MemoryStore):
    """A memory store whose transactions fail, as on a full disk, while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__(wall_clock)
        self.failing = False
        self.refused = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.failing:
            self.refused += 1
            raise StoreError("SQLite: database or disk is full")
        with super().transaction():
            yield


def drain_channel(channel: trio.MemoryReceiveChannel) -> list:
    """Everything waiting in a channel now, without waiting for more."""
    items = []
    while True:
        try:
            items.append(channel.receive_nowait())
        except trio.WouldBlock:
            return items
