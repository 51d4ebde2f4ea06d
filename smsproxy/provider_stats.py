"""The bill, visible: each provider's requests, messages, failures, state and spend,
for ``/stats`` (``providers``) and ``/metrics``."""

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from smsproxy.routing import Route, RouteState

__all__ = ["provider_exposition", "provider_stats"]

OUTCOMES = ("taken", "refused", "unavailable", "unknown", "throttled")


def provider_stats(routes: Mapping[str, Route]) -> dict[str, dict[str, Any]]:
    return {name: {"requests": r.requests, "messages": r.messages, "failures": r.failures,
                   "state": r.state.value, "weight": r.weight, "price": r.price,
                   "spend": round(r.spend, 6)}
            for name, r in routes.items()}


class _Routes(Collector):
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self._routes = routes

    def collect(self) -> Any:
        requests = CounterMetricFamily("smsproxy_provider_requests",
                                       "Requests to each provider, by outcome",
                                       labels=["provider", "outcome"])
        spend = CounterMetricFamily("smsproxy_provider_spend",
                                    "What the requests each provider took cost (requests x price)",
                                    labels=["provider"])
        up = GaugeMetricFamily("smsproxy_provider_up",
                               "1 while the provider takes batches (up or being probed)",
                               labels=["provider"])
        weight = GaugeMetricFamily("smsproxy_provider_weight",
                                   "The provider's routing weight", labels=["provider"])
        for name, route in self._routes.items():
            for outcome in OUTCOMES:
                requests.add_metric([name, outcome], route.outcomes.get(outcome, 0))
            spend.add_metric([name], route.spend)
            up.add_metric([name], 0 if route.state is RouteState.DOWN else 1)
            weight.add_metric([name], route.weight)
        yield from (requests, spend, up, weight)


def provider_exposition(routes: Mapping[str, Route]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Routes(routes))
    return generate_latest(registry).decode()
