"""Serve the service over HTTP with hypercorn until a stop event or SIGTERM/SIGINT.

:func:`serve` is the composition root: it starts every actor under the supervisor
(:func:`actors.supervisor.running`), hands their handles to the HTTP app, and
serves it; on the way out, HTTP stops first and the supervisor stops the actors.
"""

import gc
import signal
from functools import partial
from typing import Any

import hypercorn.config
import hypercorn.trio
import structlog
import trio

from actors.supervisor import Runtime, running
from api.app import create_app
from api.common import ApiSettings, Services
from smsproxy.config import Config

__all__ = [
    "GC_THRESHOLDS", "ListenError", "hypercorn_config", "root_cause", "serve", "serve_app",
    "tune_garbage_collector",
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
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Returns once ``stop`` is set (or a signal arrived) and open requests are done."""
    async with trio.open_nursery() as nursery:
        watching = trio.CancelScope()
        if handle_signals:
            nursery.start_soon(_set_on_signal, stop, watching)
        try:
            binds = await nursery.start(partial(
                hypercorn.trio.serve, app, hypercorn_config(host, port, grace),
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


def hypercorn_config(host: str, port: int, grace: float) -> hypercorn.config.Config:
    """How smsproxy serves: its limits and timeouts (the benchmarks' bare app uses it too)."""
    config = hypercorn.config.Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.graceful_timeout = grace
    # Longer than any client's idle pool (httpx: 5 s), so a client never reuses a
    # connection the server is closing at that very moment.
    config.keep_alive_timeout = 75
    # Bounds for hostile clients: headers of at most 16 KiB, and a connection that
    # sends nothing for 30 s is closed (slow-loris); bodies are bounded per route.
    config.h11_max_incomplete_size = 16 * 1024
    config.h2_max_header_list_size = 16 * 1024
    config.read_timeout = 30
    return config


async def serve(
    config: Config,
    *,
    stop: trio.Event | None = None,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the whole service until ``stop`` is set or SIGTERM/SIGINT arrives."""
    log.info("starting", config=config.loggable())
    _warn_if_open(config)
    async with running(config) as runtime:
        app = create_app(_services(runtime), _api_settings(config))
        await serve_app(
            app, config.host, config.port, grace=config.shutdown_grace,
            stop=trio.Event() if stop is None else stop, handle_signals=handle_signals,
            task_status=task_status,
        )


def _services(runtime: Runtime) -> Services:
    return Services(runtime.repository, runtime.batcher, runtime.stats, runtime.updater)


def _api_settings(config: Config) -> ApiSettings:
    return ApiSettings(
        webhook_secret=config.webhook_secret,
        api_keys=config.api_key_list,
        rate_limit=config.rate_limit,
        rate_burst=config.effective_rate_burst,
        bulk_max=config.bulk_max,
    )


def _warn_if_open(config: Config) -> None:
    if config.provider != "memory" and not config.webhook_secret:
        log.warning(
            "webhook_insecure",
            message="--webhook-insecure: POST /provider/status takes unsigned reports; "
                    "anyone who can reach it can mark any message DELIVERED or FAILED",
        )
    if config.api_keys or config.host in _LOOPBACK:
        return
    log.warning(
        "no_api_keys_on_a_public_address",
        host=config.host,
        message="ANYONE WHO CAN REACH THIS ADDRESS CAN SEND SMS ON YOUR BILL: "
                "set --api-keys (SMSPROXY_API_KEYS)",
    )


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
