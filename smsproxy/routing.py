"""Which provider takes the next batch: by priority, by weight, and by health.

Providers are tried in ``priority`` order (lower first); those of equal priority
share the batches by ``weight``, at random. A provider whose attempts fail
``failures_to_down`` times in a row is taken out at once (``down``) and probed
with one message at growing intervals (``probe_initial`` doubling up to
``probe_max``) until it takes one again (``up``).

Weights move with delivery times, by GOV.UK Notify's rule (:mod:`.slow_delivery`):
looked at every ``check_every`` (1 min), when a provider is slow and another of the
same priority is not, ``step`` (10) weight points move from the slow one to the
others, at most once every ``cooldown`` (10 min); when none of a priority is slow,
their weights tend back to the configured ones by the same steps. Trio-free: the
router actor (:mod:`actors.router`) sends, this decides, on the clock it is given.

Instances on one PostgreSQL share each route's health and weight (``shared``): what
changes here goes out (``changes``), what another instance changed later comes in
(``adopt``), and a down route is probed only by the instance the store granted the
probe to (``grant_probe``), so that a dead provider gets one probe, not one each.
Shared times are on the wall clock: ``offset`` is the wall clock less this one.
"""

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from smsproxy.slow_delivery import DeliveryWatch

__all__ = ["Route", "RouteState", "RoutingTable", "SharedRoute", "WeightRule"]


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
    resting_weight: int = -1
    """The configured weight, that a moved weight tends back to (set by the table)."""
    changed_at: float = -math.inf
    probe_granted: bool = False

    @property
    def spend(self) -> float:
        return self.requests * self.price


@dataclass(frozen=True, slots=True)
class SharedRoute:
    """A route's health and weight as the instances share them (wall-clock times)."""

    name: str
    down: bool
    weight: int
    probe_at: float
    probe_interval: float
    changed_at: float


@dataclass(frozen=True, slots=True)
class WeightRule:
    check_every: float = 60.0
    step: int = 10
    cooldown: float = 600.0


class RoutingTable:
    def __init__(
        self, routes: Sequence[Route], clock: Callable[[], float], *,
        rng: random.Random | None = None, failures_to_down: int = 3,
        probe_initial: float = 1.0, probe_max: float = 60.0,
        watch: DeliveryWatch | None = None, weights: WeightRule = WeightRule(),
    ) -> None:
        self.routes = {route.name: route for route in routes}
        for route in routes:
            route.resting_weight = route.weight
        self._clock = clock
        self._rng = rng or random.Random()
        self._failures_to_down = failures_to_down
        self._probe_initial = probe_initial
        self._probe_max = probe_max
        self.watch = watch or DeliveryWatch()
        self._weights = weights
        self._checked_at = clock()
        self._moved_at = -weights.cooldown
        self.shared = False
        """True: a down route is probed only once the store granted this instance it."""
        self._changed: set[str] = set()

    def choose(self, tried: frozenset[str] = frozenset()) -> Route | None:
        """The route for the next attempt, none of ``tried``: a down one whose probe
        is due (it gets one message), else an up one of the lowest priority, by
        weight; None when no route is left."""
        now = self._clock()
        for route in self.routes.values():
            if (route.name not in tried and route.state is RouteState.DOWN
                    and now >= route.probe_at and (route.probe_granted or not self.shared)):
                route.state = RouteState.PROBING
                route.probe_granted = False
                return route
        up = [r for r in self.routes.values() if r.name not in tried and r.state is RouteState.UP]
        if not up:
            return None
        best = min(r.priority for r in up)
        tier = [r for r in up if r.priority == best]
        weights = [r.weight for r in tier]
        return self._rng.choices(tier, weights=weights if any(weights) else None)[0]

    def took(self, name: str, message_ids: Sequence[str], requests: int) -> None:
        """The provider took these messages in ``requests`` paid requests."""
        route = self.routes[name]
        self.watch.taken(name, message_ids, self._clock())
        route.requests += requests
        route.messages += len(message_ids)
        route.outcomes["taken"] = route.outcomes.get("taken", 0) + requests
        route.failures_in_a_row = 0
        if route.state is not RouteState.UP:
            self._note_change(name, self._clock())
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
            self._note_change(name, self._clock())

    def is_up(self, name: str) -> bool:
        return self.routes[name].state is not RouteState.DOWN

    def delivered(self, name: str, message_id: str) -> None:
        """The provider reported the message DELIVERED."""
        self.watch.delivered(name, message_id, self._clock())

    def rebalance(self) -> dict[str, int]:
        """Move weights by the slow-delivery rule, when it is time to look; the new
        weight of each route whose weight moved."""
        now = self._clock()
        if now - self._checked_at < self._weights.check_every:
            return {}
        self._checked_at = now
        if now - self._moved_at < self._weights.cooldown:
            return {}
        moved: dict[str, int] = {}
        for priority in {r.priority for r in self.routes.values()}:
            tier = [r for r in self.routes.values() if r.priority == priority]
            slow = [r for r in tier if self.watch.is_slow(r.name, now)]
            others = [r for r in tier if r not in slow and r.state is not RouteState.DOWN]
            if slow and others:
                moved |= self._shift(slow, others)
            elif not slow:
                moved |= self._tend_back(tier)
        if moved:
            self._moved_at = now
            for name in moved:
                self._note_change(name, now)
        return moved

    def _shift(self, slow: list[Route], others: list[Route]) -> dict[str, int]:
        moved: dict[str, int] = {}
        for route in slow:
            points = min(self._weights.step, route.weight)
            route.weight -= points
            for i, other in enumerate(others):  # the points shared out, the rest first
                other.weight += points // len(others) + (i < points % len(others))
                moved[other.name] = other.weight
            moved[route.name] = route.weight
        return moved

    def _tend_back(self, tier: list[Route]) -> dict[str, int]:
        moved: dict[str, int] = {}
        for route in tier:
            gap = route.resting_weight - route.weight
            if gap:
                route.weight += max(-self._weights.step, min(self._weights.step, gap))
                moved[route.name] = route.weight
        return moved

    def _note_change(self, name: str, at: float) -> None:
        """A change of the route's health or weight here, for ``changes`` to share."""
        self.routes[name].changed_at = at
        self._changed.add(name)

    def changes(self, offset: float) -> list[SharedRoute]:
        """The routes changed here since the last call, to share."""
        changed = [self._shared(self.routes[name], offset) for name in sorted(self._changed)]
        self._changed.clear()
        return changed

    def adopt(self, shared: Sequence[SharedRoute], offset: float) -> list[str]:
        """Take what another instance changed later than this one did; the names taken."""
        adopted = []
        for remote in shared:
            route = self.routes.get(remote.name)
            if route is None or remote.changed_at - offset <= route.changed_at:
                continue
            if remote.down:
                route.state = RouteState.DOWN
                route.probe_at = remote.probe_at - offset
                route.probe_interval = remote.probe_interval
            elif route.state is RouteState.DOWN:
                route.state = RouteState.UP
                route.failures_in_a_row, route.probe_interval = 0, 0.0
            route.weight = remote.weight
            route.changed_at = remote.changed_at - offset
            adopted.append(remote.name)
        return adopted

    def due_probes(self) -> list[Route]:
        """Down routes whose probe is due and not yet granted here."""
        now = self._clock()
        return [r for r in self.routes.values()
                if r.state is RouteState.DOWN and now >= r.probe_at and not r.probe_granted]

    def grant_probe(self, name: str) -> None:
        self.routes[name].probe_granted = True

    @staticmethod
    def _shared(route: Route, offset: float) -> SharedRoute:
        return SharedRoute(route.name, route.state is RouteState.DOWN, route.weight,
                           route.probe_at + offset, route.probe_interval,
                           route.changed_at + offset)
