"""Test doubles that stand where a real part would: a scripted provider, a counting store."""

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import trio

from smsproxy.errors import ProviderError, ProviderUnavailable, StoreError
from smsproxy.models import Batch, Message
from smsproxy.stores import MemoryStore


class ScriptedProvider:
    """Records every batch; fails the first ``failures`` calls; can be slow or hang."""

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

    async def send(self, batch: Batch) -> None:
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

    def sent_ids(self) -> list[list[str]]:
        return [[m.id for m in batch.messages] for batch in self.calls]


class CountingStore(MemoryStore):
    """A memory store that counts its transactions and inserts, to see group commit at work."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0
        self.inserts = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.transactions += 1
        yield

    def insert(self, messages: Sequence[Message]) -> None:
        self.inserts += 1
        super().insert(messages)


class FailingStore(MemoryStore):
    """A memory store whose transactions fail, as on a full disk, while ``failing`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.refused = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.failing:
            self.refused += 1
            raise StoreError("SQLite: database or disk is full")
        yield


def drain_channel(channel: trio.MemoryReceiveChannel) -> list:
    """Everything waiting in a channel now, without waiting for more."""
    items = []
    while True:
        try:
            items.append(channel.receive_nowait())
        except trio.WouldBlock:
            return items
