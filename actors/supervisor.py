"""The top supervisor: start the actors in dependency order, and stop them in reverse.

Two kinds of children, as in OTP. The core (repository, dispatcher, updater, the
provider's task, stats) shares the state every request depends on: a crash there
ends the process with one clear line and exit 1 (``api.cli``), and a process
manager starts it again. A request's failure is not a crash: each actor answers it
with an error and serves the next. The side tasks (notifier, housekeeping, route
sharing on PostgreSQL, and with ``--workers`` the statistics publishing) do work that
can wait: one that crashes is logged with its traceback, counted in
``smsproxy_actor_restarts_total{actor}``, and restarted one-for-one with a doubling pause
(``actors.restarting``).

Each actor runs in its own nested nursery, outermost first: stats, repository,
updater, provider (the simulator's task, or the FastSMSing client's connection
pool), dispatcher. Shutdown unwinds the same nesting from the inside, so every
actor outlives the actors that call it:

1. the door that serves them stops taking requests (``api.serving``);
2. the dispatcher refuses new messages, flushes what waits, waits for in-flight
   batches for up to ``shutdown_grace`` seconds (then its senders are cancelled),
   and gives back what it still holds;
3. the provider delivers the status reports it holds, the updater applies them;
4. the repository closes the store, and the stats actor stops.

The notifier (status callbacks, with ``--callback-secret``) runs beside the
dispatcher and stops when shutdown begins: what it held is sent again after a
restart. On every store the table is the queue: a restart has nothing to queue
again, since every unsent message is still there and a dead process's claims are void.
"""

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import structlog
import trio

from actors import dispatcher, notifier, repository, simulator, stats, updater
from actors._callback_http import HttpCallbackTransport
from actors.dispatcher import WallClock
from actors.errors import ActorError
from actors.restarting import restarting
from actors.route_sharing import share_routes
from actors.router import Routed, Router
from actors.sender import RetryPolicy
from smsproxy.callbacks import RetrySchedule
from smsproxy.config import Config
from smsproxy.dispatching import BatchingRules
from smsproxy.errors import StoreError
from smsproxy.models import Message
from smsproxy.providers import FastSmsClient, Provider, open_http_client
from smsproxy.providers.factory import open_adapter
from smsproxy.records import KeySpent, MessagesPurged, UpdateRejected
from smsproxy.routing import Route, RoutingTable
from smsproxy.stores import POSTGRES_SCHEMES, store_factory

__all__ = ["Runtime", "running"]


log = structlog.get_logger("smsproxy.supervisor")


@dataclass(frozen=True, slots=True)
class Runtime:
    repository: repository.RepositoryHandle
    stats: stats.StatsHandle
    updater: updater.UpdaterHandle
    provider: Provider
    dispatcher: dispatcher.DispatcherHandle


@asynccontextmanager
async def running(config: Config, *, wall_clock: WallClock = time.time) -> AsyncIterator[Runtime]:
    """Every actor, started and ready; on exit, the orderly shutdown above."""
    errors_in, errors_out = trio.open_memory_channel[UpdateRejected](math.inf)
    async with trio.open_nursery() as outer:
        counts = await outer.start(partial(
            stats.run, instance=config.effective_instance_name,
            max_attempts=config.max_attempts, store_operations=repository.OPERATION_NAMES.values(),
            max_queue=config.max_queue, classes=config.delivery_classes,
        ))
        async with trio.open_nursery() as repository_layer:
            repo = await repository_layer.start(partial(
                repository.run, store_factory(config.store, _store_clock(wall_clock)),
                on_store_error=counts.record,
                clock=wall_clock,
                call_timeout=config.store_timeout,
            ))
            async with trio.open_nursery() as updater_layer:
                updater_layer.start_soon(updater.report_errors, errors_out, counts)
                updates = await updater_layer.start(partial(
                    updater.run, repo, counts, errors_in, linger=config.status_linger,
                ))
                async with (
                    _provider(config, updates, counts) as provider,
                    trio.open_nursery() as dispatcher_layer,
                ):
                    dispatch = await dispatcher_layer.start(partial(
                        dispatcher.run, repo, provider, counts, _batching_rules(config),
                        _retry_policy(config), config.max_queue,
                        _dispatch_settings(config), clock=wall_clock,
                    ))
                    restarted = counts.record_restart
                    housekeeping = trio.CancelScope()
                    dispatcher_layer.start_soon(_side_task, "housekeeping", housekeeping, partial(
                        _keep_house, repo, counts, config, wall_clock), restarted)
                    notifying = trio.CancelScope()
                    if config.callback_secret:
                        dispatcher_layer.start_soon(_side_task, "notifier", notifying, partial(
                            _notify, repo, counts, config, wall_clock), restarted)
                    sharing = trio.CancelScope()
                    if isinstance(provider, Router) and config.store.startswith(POSTGRES_SCHEMES):
                        dispatcher_layer.start_soon(_side_task, "route_sharing", sharing, partial(
                            share_routes, provider, repo, wall_clock=wall_clock), restarted)
                    try:
                        yield Runtime(repo, counts, updates, provider, dispatch)
                    finally:
                        housekeeping.cancel()
                        notifying.cancel()
                        sharing.cancel()
                        await _drain(dispatch, config.shutdown_grace, dispatcher_layer)
                await updates.close()
            await repo.close()
        await counts.close()
    log.info("stopped")


@asynccontextmanager
async def _provider(config: Config, updates: updater.UpdaterHandle, counts: stats.StatsHandle,
                    ) -> AsyncIterator[Provider]:
    """The providers file's router, the simulator, or the FastSMSing client; closed once
    no batch can use it."""
    if config.providers is not None:
        router = open_router(config, paid=lambda messages, cost: counts.record(
            KeySpent.of(messages, cost)))
        try:
            yield router
        finally:
            await router.close()
    elif config.provider == "memory":
        async with trio.open_nursery() as nursery:
            sim = await nursery.start(partial(
                simulator.run, updates,
                latency=config.sim_latency, failure_rate=config.sim_failure_rate,
            ))
            try:
                yield sim
            finally:
                await sim.close()  # its task delivers the reports it holds, then ends
    else:
        http = open_http_client(config.provider, config.provider_api_key, config.provider_timeout)
        client = FastSmsClient(http, sender=config.default_sender)
        try:
            yield client
        finally:
            await client.close()


def open_router(config: Config, clock: Callable[[], float] = trio.current_time,
                paid: Callable[[Sequence[Message], float], None] = lambda _m, _c: None,
                ) -> Router:
    """The providers file's adapters behind one router (their clients open lazily);
    ``paid`` is told what each provider's requests cost, for the keys' bills."""
    entries = config.provider_entries()
    routed = {}
    for entry in entries:
        adapter = open_adapter(entry, config.provider_timeout, config.default_sender)
        routed[entry.name] = Routed(adapter, adapter)
    table = RoutingTable([Route(e.name, e.routing_priority, e.weight, e.price) for e in entries],
                         clock)
    return Router(routed, table, paid)


async def _side_task(name: str, scope: trio.CancelScope, task: Callable[[], Awaitable[None]],
                     restarted: Callable[[str], None]) -> None:
    with scope:
        await restarting(name, task, restarted)


async def _keep_house(
    repo: repository.RepositoryHandle,
    counts: stats.StatsHandle,
    config: Config,
    wall_clock: WallClock,
) -> None:
    """Housekeeping: delete the final messages older than ``--retention`` (with their
    history) and the idempotency keys older than their TTL, a hundred at a time in
    short transactions, so that the POSTs in between never wait behind a long delete."""

    async def purge(before: float, limit: int) -> int:
        purged = await repo.purge(before, limit)
        counts.record(MessagesPurged(purged))
        return purged

    interval = max(0.1, min(HOUSEKEEPING_INTERVAL, config.retention / 10))
    while True:
        try:
            purged = await _in_batches(purge, wall_clock() - config.retention)
            forgotten = await _in_batches(repo.forget_idempotency,
                                          wall_clock() - config.idempotency_ttl)
        except (StoreError, ActorError) as error:
            # The repository logged the store's failure; the next round tries again.
            log.warning("housekeeping_failed", error=str(error))
        else:
            if purged or forgotten:
                log.info("housekeeping_done", messages_purged=purged,
                         idempotency_keys_forgotten=forgotten)
        await trio.sleep(interval)


async def _in_batches(delete: Callable[[float, int], Awaitable[int]], before: float) -> int:
    """Call ``delete`` until it deletes less than a batch; how many it deleted. Between
    two batches it rests ``HOUSEKEEPING_REST`` times as long as the last one took, so
    that deleting holds the store a bounded share of the time on any machine."""
    total = 0
    while True:
        started = trio.current_time()
        deleted = await delete(before, HOUSEKEEPING_BATCH)
        total += deleted
        if deleted < HOUSEKEEPING_BATCH:
            return total
        await trio.sleep(max(0.001, HOUSEKEEPING_REST * (trio.current_time() - started)))


HOUSEKEEPING_INTERVAL = 60.0
"""Seconds between rounds at most (a tenth of --retention when that is shorter)."""
HOUSEKEEPING_BATCH = 100
"""Messages (with their events) or keys deleted per transaction."""
HOUSEKEEPING_REST = 2.0
"""Rest after a batch, in multiples of its time (queueing for the store included):
deletes take at most a third of the store's time while a backlog is worked off."""


async def _notify(repo: repository.RepositoryHandle, counts: stats.StatsHandle, config: Config,
                  wall_clock: WallClock) -> None:
    """The notifier, until shutdown begins: what it holds then goes again after a
    restart (its claims run out), and receivers drop what they saw twice."""
    transport = HttpCallbackTransport(timeout=config.callback_timeout,
                                      allow_private=config.callback_allow_private)
    settings = notifier.NotifierSettings(
        secret=config.callback_secret or "", instance=config.effective_instance_name,
        schedule=RetrySchedule(maximum=config.callback_retry_max,
                               max_age=config.callback_max_age),
        timeout=config.callback_timeout)
    try:
        await notifier.run(repo, counts, transport, settings, clock=wall_clock)
    finally:
        with trio.CancelScope(shield=True):
            await transport.aclose()


async def _drain(dispatch: dispatcher.DispatcherHandle, grace: float, layer: trio.Nursery
                 ) -> None:
    with trio.move_on_after(grace) as waited:
        await dispatch.drain()
    if waited.cancelled_caught:
        log.warning("shutdown_grace_exceeded", grace=grace, queue_depth=dispatch.queue_depth)
        layer.cancel_scope.cancel()


def _store_clock(wall_clock: WallClock) -> WallClock | None:
    """The store's clock: the process's own only when a test replaced it (by default
    each store keeps its own: this machine's, or the PostgreSQL server's)."""
    return None if wall_clock is time.time else wall_clock


def _batching_rules(config: Config) -> BatchingRules:
    return BatchingRules(
        batch_size=config.effective_batch_size,
        max_delay=config.max_delay,
        max_in_flight=config.max_in_flight,
        message_ttl=config.message_ttl,
        status_grace=config.status_grace,
    )


def _dispatch_settings(config: Config) -> dispatcher.DispatchSettings:
    return dispatcher.DispatchSettings(
        instance=config.effective_instance_name, lease=config.claim_lease,
        poll=min(0.25, max(0.01, config.max_delay / 4)),
    )


def _retry_policy(config: Config) -> RetryPolicy:
    return RetryPolicy(config.effective_max_attempts, config.provider_timeout)
