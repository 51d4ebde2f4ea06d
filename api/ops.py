"""What operations watch: ``/stats``, ``/metrics``, ``/healthz`` and ``/readyz``."""

from collections import Counter, defaultdict
from collections.abc import Awaitable
from dataclasses import asdict
from pathlib import Path

import trio
from quart import Blueprint, Response
from quart_schema import document_response
from quart_trio.wrappers import TrioResponse

from actors.stats import StatsHandle
from api.common import Services, json_response
from api.ops_schemas import Health, Readiness, StatsBody
from api.workers import merge_expositions, merge_snapshots, read_shared
from smsproxy.errors import SmsProxyError
from smsproxy.metrics import CONTENT_TYPE
from smsproxy.provider_stats import provider_exposition, provider_stats
from smsproxy.records import HttpServed

__all__ = ["HttpCounts", "ops_routes"]

READY_CHECK_SECONDS = 2.0


class HttpCounts:
    """HTTP answers, counted here and handed to the stats actor in batches.

    A record per request would wake the stats actor once per request, a cost
    a small request notices. The counts go over every ``FLUSH_EVERY`` answers,
    and always before /stats or /metrics reads them.
    """

    FLUSH_EVERY = 256

    def __init__(self, stats: StatsHandle) -> None:
        self._stats = stats
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._durations: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
        self._unsent = 0

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        self._counts[(route, method, status)] += 1
        self._durations[(route, method)].append(seconds)
        self._unsent += 1
        if self._unsent >= self.FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._counts:
            self._stats.record(HttpServed(dict(self._counts), dict(self._durations)))
            self._counts.clear()
            self._durations = defaultdict(list)
            self._unsent = 0


def ops_routes(
    services: Services, http_counts: HttpCounts, shared_stats: Path | None = None
) -> Blueprint:
    """``shared_stats``: one of a --workers set; /stats and /metrics answer for all."""
    routes = Blueprint("ops", __name__)

    @routes.get("/stats")
    @document_response(StatsBody, 200)
    async def stats() -> Response:
        """Delivery statistics, as the stats actor counted them."""
        http_counts.flush()
        snapshot = await services.stats.snapshot()
        in_flight = services.dispatcher.in_flight
        if shared_stats is not None:
            files, _ = await trio.to_thread.run_sync(read_shared, shared_stats)
            snapshot, in_flight = merge_snapshots(files)
        body = asdict(snapshot) | {
            "batches_sent": snapshot.batches_sent,
            "success_percentage": snapshot.success_percentage,
            "provider_calls_saved": snapshot.provider_calls_saved,
            "queue_depth": services.dispatcher.queue_depth,
            "batches_in_flight": in_flight,
        }
        if services.router is not None:
            body["providers"] = provider_stats(services.router.table.routes)
        return json_response(body, 200)

    @routes.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition."""
        http_counts.flush()
        text = await services.stats.exposition(
            services.dispatcher.queue_depth, services.dispatcher.in_flight
        )
        if shared_stats is not None:
            _, texts = await trio.to_thread.run_sync(read_shared, shared_stats)
            text = merge_expositions(texts)
        routes = services.router.table.routes if services.router is not None else {}
        text += provider_exposition(routes).encode()  # declared with no providers too
        return TrioResponse(text, 200, content_type=CONTENT_TYPE)

    @routes.get("/healthz")
    @document_response(Health, 200)
    async def healthz() -> Response:
        """The process is alive and serving HTTP."""
        return json_response({"status": "ok"}, 200)

    @routes.get("/readyz")
    @document_response(Readiness, 200)
    @document_response(Readiness, 503)
    async def readyz() -> Response:
        """Ready for traffic: the store answers on every lane a request can wait on
        (saves have their own on PostgreSQL), and every actor runs."""
        checks = {
            "store": await _check(services.repository.ping()),
            "store_saves": await _check(services.repository.ping_saves()),
            "stats": await _check(services.stats.snapshot()),
            "updater": await _check(services.updater.flush()),
            "dispatcher": "ok" if services.dispatcher.accepting else "not accepting messages",
        }
        ready = all(result == "ok" for result in checks.values())
        body = {"status": "ready" if ready else "unavailable", "checks": checks}
        return json_response(body, 200 if ready else 503)

    return routes


async def _check(call: Awaitable[object]) -> str:
    with trio.move_on_after(READY_CHECK_SECONDS):
        try:
            await call
        except SmsProxyError as error:
            return str(error)
        return "ok"
    return f"no answer within {READY_CHECK_SECONDS:g} s"
