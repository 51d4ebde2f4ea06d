"""The routing table: priority first, weight within a priority, a failing provider
taken out at once and probed at growing intervals until it takes a message again."""

import random
from collections import Counter

from smsproxy.routing import Route, RouteState, RoutingTable, SharedRoute


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def table(*routes: Route, clock: Clock | None = None) -> RoutingTable:
    return RoutingTable(routes, clock or Clock(), rng=random.Random(7), failures_to_down=3,
                        probe_initial=1.0, probe_max=8.0)


def test_the_lowest_priority_takes_every_batch_while_it_is_up() -> None:
    routes = table(Route("cheap", 0.01, 100, 0.01), Route("dear", 0.05, 100, 0.05))
    assert Counter(routes.choose().name for _ in range(200)) == {"cheap": 200}


def test_equal_priorities_share_by_weight() -> None:
    routes = table(Route("a", 1, 300, 0.01), Route("b", 1, 100, 0.01))
    shares = Counter(routes.choose().name for _ in range(4000))
    assert 0.70 < shares["a"] / 4000 < 0.80


def test_a_tried_route_is_passed_over_for_the_next() -> None:
    routes = table(Route("cheap", 0, 100, 0.01), Route("dear", 1, 100, 0.05))
    assert routes.choose(frozenset({"cheap"})).name == "dear"
    assert routes.choose(frozenset({"cheap", "dear"})) is None


def test_a_run_of_failures_takes_a_route_out_and_probes_it_at_growing_intervals() -> None:
    clock = Clock()
    routes = table(Route("cheap", 0, 100, 0.01), Route("dear", 1, 100, 0.05), clock=clock)
    for _ in range(2):
        routes.failed("cheap", "unavailable")
        assert routes.choose().name == "cheap"  # two failures: still up
    routes.failed("cheap", "unavailable")
    assert routes.routes["cheap"].state is RouteState.DOWN
    assert routes.choose().name == "dear"
    intervals = []
    for _ in range(5):
        start = clock.now
        while routes.choose().name != "cheap":
            clock.now += 0.25
        assert routes.routes["cheap"].state is RouteState.PROBING
        intervals.append(clock.now - start)
        routes.failed("cheap", "unavailable")  # the probe failed too
    assert intervals == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert routes.routes["cheap"].failures == 8
    assert routes.routes["cheap"].outcomes == {"unavailable": 8}
    clock.now += 8
    assert routes.choose().name == "cheap"
    routes.took("cheap", ["m1"], 1)  # the probe was taken: up again, first again
    assert routes.routes["cheap"].state is RouteState.UP
    assert Counter(routes.choose().name for _ in range(50)) == {"cheap": 50}
    routes.failed("cheap", "unavailable")
    routes.failed("cheap", "unavailable")
    routes.failed("cheap", "unavailable")
    assert routes.routes["cheap"].probe_interval == 1.0  # the backoff starts over


def test_the_bill_is_requests_times_price() -> None:
    routes = table(Route("a", 0, 100, 0.25))
    routes.took("a", [f"m{i}" for i in range(1000)], 2)
    routes.took("a", ["m1000"], 1)
    routes.failed("a", "refused")
    route = routes.routes["a"]
    assert (route.requests, route.messages, route.failures, route.spend) == (3, 1001, 1, 0.75)
    assert route.outcomes == {"taken": 3, "refused": 1}


def test_by_default_three_failures_in_a_row_take_a_route_out() -> None:
    routes = RoutingTable([Route("a", 0, 100, 0.01), Route("b", 0, 100, 0.01)], Clock())
    assert routes.choose() is not None  # equal priorities: by weight, at random
    for _ in range(2):
        routes.failed("a", "unavailable")
    assert routes.is_up("a")
    routes.failed("a", "unavailable")
    assert not routes.is_up("a")


def test_shared_changes_go_out_and_later_ones_come_in() -> None:
    clock = Clock()
    clock.now = 100.0
    here = table(Route("ib", 0, 100, 0.01), Route("tw", 1, 100, 0.05), clock=clock)
    there = table(Route("ib", 0, 100, 0.01), Route("tw", 1, 100, 0.05), clock=clock)
    here.shared = there.shared = True
    for _ in range(3):
        here.failed("ib", "unavailable")
    [shared] = here.changes(offset=1000.0)  # wall clock = this one + 1000
    assert shared == SharedRoute("ib", True, 100, 1101.0, 1.0, 1100.0)
    assert here.changes(offset=1000.0) == []  # each change goes out once
    assert there.adopt([shared], offset=1000.0) == ["ib"]
    assert not there.is_up("ib") and there.choose().name == "tw"
    assert there.adopt([shared], offset=1000.0) == []  # not later than what it has
    clock.now = 102.0
    assert [r.name for r in there.due_probes()] == ["ib"]
    assert there.choose().name == "tw"  # due, but not granted: another instance probes
    there.grant_probe("ib")
    assert there.due_probes() == []
    assert there.choose().name == "ib"  # granted: this one probes
    there.took("ib", ["m1"], 1)
    [back] = there.changes(offset=1000.0)
    assert not back.down and back.changed_at == 1102.0
    assert here.adopt([back], offset=1000.0) == ["ib"] and here.is_up("ib")
