"""The in-process provider simulator, the default provider.

Like the original in-memory client it takes batches, then confirms and delivers
every message through the status feed. ``latency`` and ``failure_rate`` make it
slow or unreliable on purpose. Reports go out from the simulator's own task, so a
slow updater never makes a send attempt slow (and so never causes a retry).
"""

import math
import random
from collections.abc import Sequence

import structlog
import trio

from actors.updater import UpdaterHandle
from smsproxy.errors import ProviderUnavailable
from smsproxy.models import Batch
from smsproxy.providers.protocol import Sent
from smsproxy.statuses import Status

__all__ = ["SimulatedProvider", "run"]

log = structlog.get_logger("smsproxy.simulator")


class SimulatedProvider:
    name = "simulator"
    max_batch: int | None = None

    def __init__(
        self,
        reports: trio.MemorySendChannel[Sequence[str]],
        latency: float,
        failure_rate: float,
        rng: random.Random,
    ) -> None:
        self._reports = reports
        self._latency = latency
        self._failure_rate = failure_rate
        self._rng = rng
        self.calls = 0

    async def send(self, batch: Batch) -> Sent:
        self.calls += 1
        if self._latency:
            await trio.sleep(self._latency)
        if self._rng.random() < self._failure_rate:
            raise ProviderUnavailable("simulated provider failure")
        self._reports.send_nowait([m.id for m in batch.messages])
        return Sent(tuple(m.id for m in batch.messages))

    async def close(self) -> None:
        """Stop taking batches; reports already queued are still delivered."""
        await self._reports.aclose()


async def run(
    updater: UpdaterHandle,
    *,
    latency: float = 0.0,
    failure_rate: float = 0.0,
    seed: int | None = None,
    task_status: trio.TaskStatus[SimulatedProvider] = trio.TASK_STATUS_IGNORED,
) -> None:
    send, receive = trio.open_memory_channel[Sequence[str]](math.inf)
    async with receive:
        task_status.started(SimulatedProvider(send, latency, failure_rate, random.Random(seed)))
        async for message_ids in receive:
            await updater.submit(dict.fromkeys(message_ids, Status.CONFIRMED.value))
            await updater.submit(dict.fromkeys(message_ids, Status.DELIVERED.value))
