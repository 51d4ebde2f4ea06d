"""Which provider takes the next batch: by priority, by weight, and by health.

Providers are tried in ``priority`` order (lower first); those of equal priority
share the batches by ``weight``, at random. A provider whose attempts fail
``failures_to_down`` times in a row is taken out at once (``down``) and probed
with one message at growing intervals (``probe_initial`` doubling up to
``probe_max``) until it takes one again (``up``). Trio-free: the router actor
(:mod:`actors.router`) sends, this decides, on the clock it is given.
"""

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Route", "RouteState", "RoutingTable"]


class RouteState(StrEnum):
    UP = "up"
    DOWN = "down"
    PROBING = "probing"


@dataclass
class Route:
    name: str
    priority: float
    weight: int
    price: float
    state: RouteState = RouteState.UP
    failures_in_a_row: int = 0
    probe_at: float = 0.0
    probe_interval: float = 0.0
    requests: int = 0
    messages: int = 0
    failures: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def spend(self) -> float:
        return self.requests * self.price


class RoutingTable:
    def __init__(
        self, routes: Sequence[Route], clock: Callable[[], float], *,
        rng: random.Random | None = None, failures_to_down: int = 3,
        probe_initial: float = 1.0, probe_max: float = 60.0,
    ) -> None:
        self.routes = {route.name: route for route in routes}
        self._clock = clock
        self._rng = rng or random.Random()
        self._failures_to_down = failures_to_down
        self._probe_initial = probe_initial
        self._probe_max = probe_max

    def choose(self, tried: frozenset[str] = frozenset()) -> Route | None:
        """The route for the next attempt, none of ``tried``: a down one whose probe
        is due (it gets one message), else an up one of the lowest priority, by
        weight; None when no route is left."""
        now = self._clock()
        for route in self.routes.values():
            if route.name not in tried and route.state is RouteState.DOWN and now >= route.probe_at:
                route.state = RouteState.PROBING
                return route
        up = [r for r in self.routes.values() if r.name not in tried and r.state is RouteState.UP]
        if not up:
            return None
        best = min(r.priority for r in up)
        tier = [r for r in up if r.priority == best]
        return self._rng.choices(tier, weights=[r.weight for r in tier])[0]

    def took(self, name: str, messages: int, requests: int) -> None:
        """The provider took ``messages`` in ``requests`` paid requests."""
        route = self.routes[name]
        route.requests += requests
        route.messages += messages
        route.outcomes["taken"] = route.outcomes.get("taken", 0) + requests
        route.failures_in_a_row = 0
        route.state = RouteState.UP
        route.probe_interval = 0.0

    def failed(self, name: str, outcome: str) -> None:
        """An attempt failed (``outcome``: refused, unavailable, unknown, throttled)."""
        route = self.routes[name]
        route.failures += 1
        route.outcomes[outcome] = route.outcomes.get(outcome, 0) + 1
        route.failures_in_a_row += 1
        if route.state is RouteState.PROBING or route.failures_in_a_row >= self._failures_to_down:
            route.probe_interval = min(self._probe_max, max(
                self._probe_initial, route.probe_interval * 2))
            route.probe_at = self._clock() + route.probe_interval
            route.state = RouteState.DOWN

    def is_up(self, name: str) -> bool:
        return self.routes[name].state is not RouteState.DOWN
