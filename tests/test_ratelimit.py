"""Token buckets: a burst, then the rate; refill over time; clients apart."""

import pytest

from smsproxy.ratelimit import TokenBuckets


def test_burst_then_refused_with_the_wait():
    buckets = TokenBuckets(rate=2, burst=3)
    assert [buckets.take("a", now=0) for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a", now=0) == pytest.approx(0.5)


def test_refills_at_the_rate_and_not_past_the_burst():
    buckets = TokenBuckets(rate=2, burst=3)
    for _ in range(3):
        buckets.take("a", now=0)
    assert buckets.take("a", now=0.5) == 0
    assert buckets.take("a", now=0.5) > 0
    for _ in range(3):
        assert buckets.take("a", now=100) == 0
    assert buckets.take("a", now=100) > 0


def test_clients_have_their_own_buckets():
    buckets = TokenBuckets(rate=1, burst=1)
    assert buckets.take("a", now=0) == 0
    assert buckets.take("b", now=0) == 0
    assert buckets.take("a", now=0) > 0


def test_many_tokens_at_once():
    buckets = TokenBuckets(rate=10, burst=100)
    assert buckets.take("a", now=0, tokens=100) == 0
    assert buckets.take("a", now=0, tokens=50) == pytest.approx(5.0)
    assert buckets.take("a", now=0, tokens=101) == float("inf")


def test_idle_clients_are_forgotten_when_room_is_needed():
    buckets = TokenBuckets(rate=1, burst=1, max_clients=2)
    buckets.take("a", now=0)
    buckets.take("b", now=0)
    buckets.take("c", now=10)  # a and b have refilled long ago: dropped
    assert len(buckets._buckets) == 1
