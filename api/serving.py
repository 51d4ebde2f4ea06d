"""Serve the service over HTTP with hypercorn until a stop event or SIGTERM/SIGINT.

:func:`serve` is the composition root: it starts every actor under the supervisor
(:func:`actors.supervisor.running`), hands their handles to the HTTP app, and
serves it; on the way out, HTTP stops first and the supervisor stops the actors.
"""

import gc
import logging
import resource
import signal
from functools import partial
from pathlib import Path
from typing import Any

import hypercorn.config
import structlog
import trio

from actors.restarting import restarting
from actors.router import Router
from actors.supervisor import Runtime, running
from api.app import create_app
from api.common import ApiSettings, Services
from api.connections import ConnectionLimits
from api.http_server import serve_http
from api.unread_body import close_when_the_body_is_left_unread
from api.workers import publish
from smsproxy.config import Config

__all__ = [
    "GC_THRESHOLDS", "ListenError", "default_limits", "hypercorn_config", "raise_descriptor_limit",
    "root_cause", "serve", "serve_app", "tune_garbage_collector",
]

log = structlog.get_logger("smsproxy.serving")

GC_THRESHOLDS = (20_000, 20, 20)
"""Allocations before a young collection, and young (then middle) collections
before an older one; Python's defaults are (700, 10, 10)."""


class ListenError(Exception):
    """The listening socket could not be opened (the port is taken, say)."""


def root_cause(error: BaseException) -> BaseException:
    """The first failure inside nested exception groups (nurseries wrap what they carry)."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def tune_garbage_collector() -> None:
    """Fewer, larger garbage collections, for a long-running server process.

    With the defaults, every request's few hundred short-lived objects set off a
    young collection every couple of requests, and the full collections walk every
    long-lived object. Measured on POST /sms: about 10% more requests a second with
    these thresholds. ``gc.freeze`` takes what exists by then (the imported
    modules, the configuration) out of the collector's sight for good. Call it
    once, before serving.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve_app(
    app: Any,
    host: str,
    port: int,
    *,
    grace: float,
    stop: trio.Event,
    handle_signals: bool,
    limits: ConnectionLimits | None = None,
    reuse_port: bool = False,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Returns once ``stop`` is set (or a signal arrived) and open requests are done."""
    async with trio.open_nursery() as nursery:
        watching = trio.CancelScope()
        if handle_signals:
            nursery.start_soon(_set_on_signal, stop, watching)
        limits = limits or default_limits()
        try:
            binds = await nursery.start(partial(
                serve_http, close_when_the_body_is_left_unread(app),
                hypercorn_config(host, port, grace, limits.keep_alive_timeout, reuse_port),
                limits,
                shutdown_trigger=stop.wait,
            ))
        except* OSError as failed:
            error = root_cause(failed)
            reason = error.strerror.lower() if isinstance(error, OSError) and error.strerror \
                else str(error)
            raise ListenError(f"cannot listen on {host}:{port}: {reason}") from error
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


def hypercorn_config(
    host: str, port: int, grace: float, keep_alive_timeout: float = 30.0,
    reuse_port: bool = False,
) -> hypercorn.config.Config:
    """How smsproxy serves: its limits and timeouts (the benchmarks' bare app uses it too)."""
    config = hypercorn.config.Config()
    config.bind = [f"{host}:{port}"]
    # hypercorn binds with SO_REUSEPORT when it is told of several workers; its own
    # worker processes are not used (api.workers starts smsproxy's).
    config.workers = 2 if reuse_port else 1
    config.accesslog = None  # --access-log is the app's, with the route and the duration
    # A logger object, not "-": hypercorn would give "-" a plain-text stderr handler of
    # its own. This one propagates to the root logger, which smsproxy.logs renders.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = grace
    # Longer than common clients' idle pools (httpx: 5 s), so that a client rarely
    # reuses a connection the server is closing at that very moment.
    config.keep_alive_timeout = keep_alive_timeout
    # Headers of at most 16 KiB; bodies are bounded per route. The time limits for a
    # request's head and body are api.connections' (hypercorn has none).
    config.h11_max_incomplete_size = 16 * 1024
    config.h2_max_header_list_size = 16 * 1024
    config.backlog = 1024
    return config


DESCRIPTOR_RESERVE = 128
"""Descriptors kept for the service's own use (store files, the provider's pool,
logs, worker threads) when the connection cap is derived from the limit."""


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one; the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as error:
            log.warning("descriptor_limit_not_raised", soft=soft, hard=hard, error=str(error))
    return soft


def default_limits(
    max_connections: int = 0, keep_alive_timeout: float = 30.0,
    header_timeout: float = 10.0, body_timeout: float = 30.0,
) -> ConnectionLimits:
    """``max_connections`` 0: derived from the descriptor limit, less a reserve."""
    if max_connections <= 0:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        max_connections = max(16, limit - DESCRIPTOR_RESERVE)
    return ConnectionLimits(max_connections, keep_alive_timeout, header_timeout, body_timeout)


async def serve(
    config: Config,
    *,
    stop: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the whole service until ``stop`` is set or SIGTERM/SIGINT arrives."""
    # Every event of this process names the instance (with several, the logs mix).
    structlog.contextvars.bind_contextvars(instance=config.effective_instance_name)
    log.info("starting", config=config.loggable())
    _warn_if_open(config)
    descriptors = raise_descriptor_limit()
    limits = default_limits(config.max_connections, config.keep_alive_timeout,
                            config.header_timeout, config.body_timeout)
    log.info("connection_limits", descriptors=descriptors,
             max_connections=limits.max_connections,
             keep_alive_timeout=limits.keep_alive_timeout,
             header_timeout=limits.header_timeout, body_timeout=limits.body_timeout)
    async with running(config) as runtime, trio.open_nursery() as publishing:
        services = _services(runtime)
        if config.shared_stats:
            publishing.start_soon(_publish_figures, services, Path(config.shared_stats))
        app = create_app(services, _api_settings(config))
        await serve_app(
            app, config.host, config.port, grace=config.shutdown_grace,
            stop=trio.Event() if stop is None else stop, handle_signals=handle_signals,
            limits=limits, reuse_port=config.reuse_port, task_status=task_status,
        )
        publishing.cancel_scope.cancel()


PUBLISH_INTERVAL = 1.0


async def _publish_figures(services: Services, folder: Path) -> None:
    """One of a --workers set: write this worker's figures for the others to sum. A
    side task: a folder that cannot take them is logged (once, and its recovery), and
    any other crash restarts it (``smsproxy_actor_restarts_total``)."""

    async def publish_forever() -> None:
        failing = False
        while True:
            snapshot = await services.stats.snapshot()
            in_flight = services.dispatcher.in_flight
            exposition = await services.stats.exposition(services.dispatcher.queue_depth,
                                                         in_flight)
            try:
                await trio.to_thread.run_sync(publish, folder, snapshot, exposition, in_flight)
            except OSError as error:
                if not failing:
                    log.warning("stats_publish_failed", folder=str(folder), error=str(error))
                failing = True
            else:
                if failing:
                    log.info("stats_publish_recovered", folder=str(folder))
                failing = False
            await trio.sleep(PUBLISH_INTERVAL)

    await restarting("stats_publishing", publish_forever, services.stats.record_restart)


def _services(runtime: Runtime) -> Services:
    router = runtime.provider if isinstance(runtime.provider, Router) else None
    return Services(runtime.repository, runtime.dispatcher, runtime.stats, runtime.updater,
                    router)


def _api_settings(config: Config) -> ApiSettings:
    return ApiSettings(
        shared_stats=Path(config.shared_stats) if config.shared_stats else None,
        webhook_secret=config.webhook_secret,
        api_keys=config.api_key_list,
        quotas=config.quota_by_key,
        rate_limit=config.rate_limit,
        rate_burst=config.effective_rate_burst,
        bulk_max=config.bulk_max,
        callbacks=bool(config.callback_secret),
        callback_url=config.callback_url,
        callback_allow_private=config.callback_allow_private,
        access_log=config.access_log,
        classes=config.delivery_classes,
        message_ttl=config.message_ttl,
        phone_region=config.default_region,
        strict_numbers=config.strict_numbers,
    )


def _warn_if_open(config: Config) -> None:
    if config.provider != "memory" and not config.webhook_secret:
        log.warning(
            "webhook_insecure",
            message="--webhook-insecure: POST /provider/status takes unsigned reports; "
                    "anyone who can reach it can mark any message DELIVERED or FAILED",
        )
    if config.api_keys or config.admin_keys or config.host in _LOOPBACK:
        return
    log.warning(
        "no_api_keys_on_a_public_address",
        host=config.host,
        message="ANYONE WHO CAN REACH THIS ADDRESS CAN SEND SMS ON YOUR BILL: "
                "set --api-keys (SMSPROXY_API_KEYS)",
    )


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
