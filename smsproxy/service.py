"""App assembly: start the actors in dependency order, serve HTTP, shut down in order.

Each actor runs in its own nested nursery, outermost first: repository, stats,
updater, provider, batcher. Shutdown unwinds the same nesting from the inside,
so every actor outlives the actors that call it:

1. HTTP stops taking requests (hypercorn's graceful shutdown);
2. the batcher refuses new messages, flushes, waits for in-flight batches for up
   to ``shutdown_grace`` seconds, then its senders are cancelled;
3. the provider delivers the status reports it holds, the updater applies them;
4. the stats actor stops, and the repository closes the store.

At start, before HTTP opens, every message still ACCEPTED in the store is queued
again: a 202 from a previous run is a promise this run keeps.
"""

import math
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import hypercorn.config
import hypercorn.trio
import structlog
import trio

from actors import batcher, repository, simulator, stats, updater
from actors.batcher import WallClock
from actors.sender import RetryPolicy
from api import Services, create_app
from smsproxy.batching import BatchingRules
from smsproxy.config import Config
from smsproxy.models import UpdateRejected
from smsproxy.sqlite_store import SqliteStore
from smsproxy.store import MemoryStore, MessageStore

__all__ = ["Runtime", "running", "serve", "store_factory"]

log = structlog.get_logger("smsproxy.service")


@dataclass(frozen=True, slots=True)
class Runtime:
    repository: repository.RepositoryHandle
    stats: stats.StatsHandle
    updater: updater.UpdaterHandle
    provider: simulator.SimulatedProvider
    batcher: batcher.BatcherHandle

    @property
    def services(self) -> Services:
        return Services(self.repository, self.batcher, self.stats)


def store_factory(url: str) -> Callable[[], MessageStore]:
    """How to open the store that ``url`` names; the repository actor opens it in a thread.

    ``sqlite:///smsproxy.db`` is relative to the working directory,
    ``sqlite:////var/lib/smsproxy.db`` absolute.
    """
    if url.startswith("memory://"):
        return MemoryStore
    if url.startswith("sqlite:///"):
        return partial(SqliteStore, url.removeprefix("sqlite:///"))
    raise ValueError(f"unsupported store {url!r}")


@asynccontextmanager
async def running(config: Config, *, wall_clock: WallClock = time.time) -> AsyncIterator[Runtime]:
    """Every actor, started and ready; on exit, the orderly shutdown above."""
    errors_in, errors_out = trio.open_memory_channel[UpdateRejected](math.inf)
    async with trio.open_nursery() as outer:
        repo = await outer.start(repository.run, store_factory(config.store))
        async with trio.open_nursery() as stats_layer:
            counts = await stats_layer.start(stats.run)
            async with trio.open_nursery() as updater_layer:
                updater_layer.start_soon(updater.report_errors, errors_out, counts)
                updates = await updater_layer.start(updater.run, repo, errors_in)
                async with trio.open_nursery() as provider_layer:
                    provider = await provider_layer.start(partial(
                        simulator.run, updates,
                        latency=config.sim_latency, failure_rate=config.sim_failure_rate,
                    ))
                    async with trio.open_nursery() as batcher_layer:
                        batches = await batcher_layer.start(partial(
                            batcher.run, repo, provider, counts, _batching_rules(config),
                            _retry_policy(config), config.max_queue, clock=wall_clock,
                        ))
                        await _recover(repo, batches)
                        try:
                            yield Runtime(repo, counts, updates, provider, batches)
                        finally:
                            await _drain(batches, config.shutdown_grace, batcher_layer)
                    await provider.close()
                await updates.close()
            await counts.close()
        await repo.close()
    log.info("stopped")


async def _recover(repo: repository.RepositoryHandle, batches: batcher.BatcherHandle) -> None:
    """Queue again every message a previous run acknowledged but did not see through."""
    waiting = await repo.accepted()
    batches.requeue(waiting)
    log.info("recovered", messages=len(waiting))


async def _drain(batches: batcher.BatcherHandle, grace: float, layer: trio.Nursery) -> None:
    with trio.move_on_after(grace) as waited:
        await batches.drain()
    if waited.cancelled_caught:
        log.warning("shutdown_grace_exceeded", grace=grace, queue_depth=batches.queue_depth)
        layer.cancel_scope.cancel()


def _batching_rules(config: Config) -> BatchingRules:
    return BatchingRules(
        batch_size=config.effective_batch_size,
        max_delay=config.max_delay,
        max_in_flight=config.max_in_flight,
        message_ttl=config.message_ttl,
    )


def _retry_policy(config: Config) -> RetryPolicy:
    return RetryPolicy(config.effective_max_attempts, config.provider_timeout)


async def serve(
    config: Config,
    *,
    stop: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the whole service until ``stop`` is set or SIGTERM/SIGINT arrives."""
    stop = trio.Event() if stop is None else stop
    log.info("starting", config=_loggable(config))
    async with running(config) as runtime:
        app = create_app(runtime.services)
        async with trio.open_nursery() as nursery:
            watching = trio.CancelScope()
            if handle_signals:
                nursery.start_soon(_set_on_signal, stop, watching)
            binds = await nursery.start(partial(
                hypercorn.trio.serve, app, _hypercorn_config(config), shutdown_trigger=stop.wait
            ))
            log.info("listening", binds=binds)
            task_status.started(binds)
            await stop.wait()
            watching.cancel()
            log.info("stopping")


async def _set_on_signal(stop: trio.Event, scope: trio.CancelScope) -> None:
    with scope, trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("signal_received", signal=signal.Signals(signum).name)
            stop.set()
            return


def _hypercorn_config(config: Config) -> hypercorn.config.Config:
    hc = hypercorn.config.Config()
    hc.bind = [f"{config.host}:{config.port}"]
    hc.accesslog = None
    hc.graceful_timeout = config.shutdown_grace
    return hc


def _loggable(config: Config) -> dict[str, object]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}
