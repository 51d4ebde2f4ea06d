"""The in-process provider: confirms, then delivers; fails on demand."""

import pytest
import trio
import trio.testing

from actors import simulator
from smsproxy.errors import ProviderUnavailable
from smsproxy.models import Batch, Message


class RecordingUpdater:
    def __init__(self) -> None:
        self.reports: list[dict[str, str]] = []

    async def submit(self, updates: dict[str, str]) -> None:
        self.reports.append(dict(updates))


BATCH = Batch("b", (Message("m1", "+1", "a", 0.0), Message("m2", "+1", "b", 0.0)))


async def test_confirms_then_delivers_every_message(nursery):
    updates = RecordingUpdater()
    provider = await nursery.start(simulator.run, updates)
    await provider.send(BATCH)
    await trio.testing.wait_all_tasks_blocked()
    assert updates.reports == [
        {"m1": "CONFIRMED", "m2": "CONFIRMED"},
        {"m1": "DELIVERED", "m2": "DELIVERED"},
    ]


async def test_failure_rate_one_always_fails(nursery):
    updates = RecordingUpdater()
    provider = await nursery.start(lambda task_status: simulator.run(
        updates, failure_rate=1.0, task_status=task_status))
    with pytest.raises(ProviderUnavailable):
        await provider.send(BATCH)
    await trio.testing.wait_all_tasks_blocked()
    assert updates.reports == []


async def test_latency_delays_each_call(nursery, autojump_clock):
    provider = await nursery.start(lambda task_status: simulator.run(
        RecordingUpdater(), latency=2.5, task_status=task_status))
    started = trio.current_time()
    await provider.send(BATCH)
    assert trio.current_time() - started == pytest.approx(2.5)


async def test_failure_rate_is_roughly_honoured(nursery):
    provider = await nursery.start(lambda task_status: simulator.run(
        RecordingUpdater(), failure_rate=0.3, seed=7, task_status=task_status))
    failures = 0
    for _ in range(1000):
        try:
            await provider.send(BATCH)
        except ProviderUnavailable:
            failures += 1
    assert 230 <= failures <= 370
