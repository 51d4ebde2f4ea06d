"""Slow delivery moves weight, by GOV.UK Notify's rule: the watch's shares, the
table's steps and their pace, and the router under trio's MockClock with one
provider whose reports come six minutes late."""

import random

import trio

from actors.router import Routed, Router
from smsproxy.routing import Route, RoutingTable
from smsproxy.slow_delivery import DeliveryWatch, SlowDeliveryRule
from tests.test_router import Clock, Scripted, batch

RULE = SlowDeliveryRule(threshold=300, window=900, share=0.15, minimum=20)


def ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def test_late_and_missing_reports_count_as_slow_once_past_the_threshold() -> None:
    watch = DeliveryWatch(RULE)
    watch.taken("a", ids("m", 100), at=0.0)
    for message_id in ids("m", 80):
        watch.delivered("a", message_id, at=10.0)
    assert watch.slow_share("a", now=100.0) == 0.0  # 20 unreported, not yet late
    assert watch.slow_share("a", now=360.0) == 0.20  # now they are
    assert watch.is_slow("a", now=360.0)
    watch.delivered("a", "m80", at=400.0)  # a report after 400 s: slow as well
    assert watch.slow_share("a", now=360.0) == 0.20


def test_a_share_under_15_percent_is_not_slow_and_few_messages_say_nothing() -> None:
    watch = DeliveryWatch(RULE)
    watch.taken("a", ids("m", 100), at=0.0)
    for message_id in ids("m", 86):
        watch.delivered("a", message_id, at=1.0)
    assert watch.slow_share("a", now=400.0) == 0.14 and not watch.is_slow("a", now=400.0)
    watch.taken("c", ids("k", 100), at=0.0)
    for message_id in ids("k", 85):
        watch.delivered("c", message_id, at=1.0)
    assert watch.is_slow("c", now=400.0)  # 15 % exactly is slow
    watch.delivered("c", "k85", at=300.0)  # exactly the threshold is not late
    assert watch.slow_share("c", now=400.0) == 0.14
    watch.taken("b", ids("n", 19), at=0.0)
    assert watch.slow_share("b", now=400.0) is None  # 19 < the minimum of 20


def test_only_the_window_counts_and_another_provider_s_report_is_not_its() -> None:
    watch = DeliveryWatch(RULE)
    watch.taken("a", ids("m", 40), at=0.0)
    watch.delivered("b", "m0", at=1.0)  # not b's message: changes nothing
    assert watch.slow_share("a", now=400.0) == 1.0
    assert watch.slow_share("a", now=1000.0) is None  # taken more than 15 minutes ago


def table_of(clock: Clock, *weights: int) -> RoutingTable:
    routes = [Route(name, 1.0, weight, 0.01) for name, weight in zip("ab", weights, strict=True)]
    return RoutingTable(routes, clock, rng=random.Random(3), watch=DeliveryWatch(RULE))


def test_ten_points_move_from_the_slow_provider_at_most_every_ten_minutes() -> None:
    clock = Clock()
    table = table_of(clock, 100, 100)
    table.took("b", ids("m", 50), 1)  # never reported: slow after 5 minutes
    clock.now = 59.0
    assert table.rebalance() == {}  # not a minute yet
    clock.now = 360.0
    assert table.rebalance() == {"b": 90, "a": 110}
    clock.now = 420.0
    assert table.rebalance() == {}  # still slow, but moved within 10 minutes
    clock.now = 960.0
    table.took("b", ids("n", 50), 1)
    clock.now = 1320.0  # counted by the minute: its minute is past the threshold
    assert table.rebalance() == {"b": 80, "a": 120}


def test_no_points_move_when_every_provider_is_slow() -> None:
    clock = Clock()
    table = table_of(clock, 100, 100)
    table.took("a", ids("m", 50), 1)
    table.took("b", ids("n", 50), 1)
    clock.now = 400.0
    assert table.rebalance() == {}


def test_weights_tend_back_to_the_configured_ones_once_nobody_is_slow() -> None:
    clock = Clock()
    routes = [Route("a", 1.0, 115, 0.01), Route("b", 1.0, 85, 0.01),
              Route("x", 2.0, 100, 0.01), Route("y", 2.0, 100, 0.01)]
    table = RoutingTable(routes, clock, watch=DeliveryWatch(RULE))
    table.routes["a"].weight, table.routes["b"].weight = 100, 100  # resting: 115 and 85
    table.routes["x"].weight, table.routes["y"].weight = 120, 80
    clock.now = 60.0
    assert table.rebalance() == {"a": 110, "b": 90, "x": 110, "y": 90}
    clock.now = 660.0
    assert table.rebalance() == {"a": 115, "b": 85, "x": 100, "y": 100}


def test_a_weight_of_zero_still_leaves_a_choice() -> None:
    clock = Clock()
    table = table_of(clock, 0, 0)
    assert table.choose() is not None


async def test_the_router_moves_batches_off_the_provider_whose_reports_come_late(
        autojump_clock: trio.testing.MockClock) -> None:
    fast, slow = Scripted("fast"), Scripted("slow")
    table = RoutingTable([Route("fast", 1.0, 100, 0.01), Route("slow", 1.0, 100, 0.01)],
                         trio.current_time, rng=random.Random(5), watch=DeliveryWatch(RULE))
    router = Router({p.name: Routed(p, None) for p in (fast, slow)}, table)
    delays = {"fast": 20.0, "slow": 400.0}  # seconds from taken to DELIVERED

    async def report_later(provider: str, message_ids: tuple[str, ...]) -> None:
        await trio.sleep(delays[provider])
        router.delivered(provider, message_ids)

    picked: list[str] = []  # the provider of each batch, in order

    async def hour(first: int) -> None:  # a batch of 5 every 10 s
        for n in range(first, first + 360):
            sent = await router.send(batch(5, start=5 * n))
            picked.extend(set(sent.providers.values()))
            for provider in ("fast", "slow"):
                taken = tuple(i for i, p in sent.providers.items() if p == provider)
                if taken:
                    nursery.start_soon(report_later, provider, taken)
            await trio.sleep(10)

    async with trio.open_nursery() as nursery:
        await hour(0)
        weight = table.routes["slow"].weight
        assert 30 <= weight <= 60  # 10 points every 10 minutes once it shows as slow
        assert table.routes["fast"].weight == 200 - weight
        assert picked[:60].count("slow") > 20  # the first 10 minutes: an even share
        assert picked[300:360].count("slow") < 20  # the last 10: by its lower weight
        delays["slow"] = 20.0  # it recovers: once its late ones leave the window, its
        await hour(360)  # weight comes back by 10 points every 10 minutes
        await hour(720)
        nursery.cancel_scope.cancel()
    assert table.routes["slow"].weight == 100  # tended back to its resting weight


def test_every_message_and_report_of_a_minute_counts() -> None:
    watch = DeliveryWatch(RULE, remembered=30)
    watch.taken("a", ids("m", 10), at=0.0)
    watch.taken("a", ids("n", 20), at=1.0)  # the same minute: 30 taken, none forgotten
    watch.delivered("a", "unknown", at=2.0)  # names nothing taken: ignored
    for message_id in [*ids("m", 10), *ids("n", 14)]:
        watch.delivered("a", message_id, at=2.0)
    watch.delivered("a", "n14", at=400.0)
    watch.delivered("a", "n15", at=401.0)  # two late in one minute
    # the late reports count at once; the four unreported once their minute is past 5 min
    assert watch.slow_share("a", now=330.0) == 2 / 30
    assert watch.slow_share("a", now=420.0) == 6 / 30


def test_a_forgotten_message_leaves_the_count() -> None:
    watch = DeliveryWatch(RULE, remembered=30)
    watch.taken("a", ids("m", 40), at=0.0)  # m0..m9 forgotten
    for message_id in ids("m", 40)[10:30]:
        watch.delivered("a", message_id, at=1.0)
    assert watch.slow_share("a", now=400.0) == 10 / 30  # m30..m39, of 30 that count


def test_the_oldest_are_forgotten_first() -> None:
    watch = DeliveryWatch(RULE, remembered=30)
    watch.taken("a", ids("m", 40), at=0.0)
    for message_id in ids("m", 40)[30:]:
        watch.delivered("a", message_id, at=1.0)  # the newest ten, remembered
    assert watch.slow_share("a", now=400.0) == 20 / 30


def test_the_window_and_the_minimum_are_exact() -> None:
    watch = DeliveryWatch(RULE)
    watch.taken("a", ids("m", 20), at=60.0)  # exactly the minimum
    assert watch.slow_share("a", now=420.0) == 1.0
    assert watch.slow_share("a", now=1020.0) is None  # its minute left the window
    watch.taken("c", ids("k", 20), at=120.0)
    assert watch.slow_share("c", now=1079.0) == 1.0  # its minute is the window's first
    watch.taken("b", ids("n", 20), at=36_600.0)  # minute 610
    assert watch.slow_share("b", now=36_960.0) == 1.0


def test_weights_move_in_every_priority_at_once_and_split_among_the_others() -> None:
    clock = Clock()
    clock.now = 1000.0
    routes = [Route("a", 1.0, 100, 0.01), Route("b", 1.0, 100, 0.01),
              Route("c", 1.0, 100, 0.01), Route("d", 1.0, 100, 0.01),
              Route("x", 2.0, 100, 0.02), Route("y", 2.0, 100, 0.02)]
    table = RoutingTable(routes, clock, watch=DeliveryWatch(RULE))
    table.took("a", ids("m", 30), 1)
    table.took("x", ids("n", 30), 1)
    table.routes["b"].weight = 50  # would tend back, if it were time to look
    clock.now = 1059.0
    assert table.rebalance() == {}  # a minute after the table's start, not before
    table.routes["b"].weight = 100
    clock.now = 1400.0
    assert table.rebalance() == {"a": 90, "b": 104, "c": 103, "d": 103, "x": 90, "y": 110}
