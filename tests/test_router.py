"""The router over scripted providers: failover within an attempt, a probe of one
message, messages pinned to the provider that may have them, partial takes never
sent twice (through the sender's retries too)."""

import random

import pytest

from actors.router import Routed, Router
from actors.sender import RetryPolicy, deliver
from smsproxy.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderUnavailable,
)
from smsproxy.models import Batch, BatchSucceeded, Message
from smsproxy.providers.protocol import Sent
from smsproxy.records import KeySpent
from smsproxy.routing import Route, RoutingTable


class Scripted:
    """Takes batches, or raises what is scripted for its next calls."""

    max_batch = None

    def __init__(self, name: str) -> None:
        self.name = name
        self.script: list[ProviderError | int] = []
        self.sent: list[list[str]] = []

    async def send(self, batch: Batch) -> Sent:
        ids = [m.id for m in batch.messages]
        step = self.script.pop(0) if self.script else None
        if isinstance(step, int):  # takes the first ``step``, then fails
            error = ProviderUnavailable("failed after some")
            error.taken, error.requests_taken = tuple(ids[:step]), 1
            self.sent.append(ids[:step])
            raise error
        if step is not None:
            raise step
        self.sent.append(ids)
        return Sent(tuple(ids), 1)

    async def close(self) -> None:
        pass


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def batch(count: int, start: int = 0, pinned: dict[str, str] | None = None) -> Batch:
    """Messages m<start>...; those in ``pinned`` come pinned, as a claim returns them."""
    return Batch("b", tuple(Message(f"m{i}", "+4915", "x", 0.0,
                                    provider=(pinned or {}).get(f"m{i}"))
                            for i in range(start, start + count)))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def providers() -> tuple[Scripted, Scripted]:
    return Scripted("cheap"), Scripted("dear")


@pytest.fixture
def router(providers: tuple[Scripted, Scripted], clock: Clock) -> Router:
    table = RoutingTable([Route("cheap", 0.01, 100, 0.01), Route("dear", 0.05, 100, 0.05)],
                         clock, rng=random.Random(1), failures_to_down=2, probe_initial=5.0)
    return Router({p.name: Routed(p, None) for p in providers}, table)


async def test_a_refused_batch_goes_to_the_next_provider_in_the_same_attempt(
        router: Router, providers: tuple[Scripted, Scripted]) -> None:
    cheap, dear = providers
    cheap.script.append(ProviderRejected("no"))
    sent = await router.send(batch(3))
    assert sent.taken == ("m0", "m1", "m2")
    assert dear.sent == [["m0", "m1", "m2"]] and cheap.sent == []
    assert sent.providers == dict.fromkeys(["m0", "m1", "m2"], "dear")


async def test_when_every_provider_refuses_the_last_error_is_raised(
        router: Router, providers: tuple[Scripted, Scripted]) -> None:
    cheap, dear = providers
    cheap.script.append(ProviderUnavailable("cheap down"))
    dear.script.append(ProviderRejected("dear says no"))
    with pytest.raises(ProviderRejected, match="dear says no"):
        await router.send(batch(2))


async def test_an_unknown_outcome_pins_the_messages_to_that_provider(
        router: Router, providers: tuple[Scripted, Scripted]) -> None:
    cheap, dear = providers
    cheap.script.append(ProviderOutcomeUnknown("gateway 502"))
    with pytest.raises(ProviderOutcomeUnknown) as unknown:
        await router.send(batch(2))
    assert dear.sent == []  # never elsewhere: it could text the phone twice
    pins = dict(unknown.value.pinned)
    assert pins == {"m0": "cheap", "m1": "cheap"}  # the store keeps them with the row
    cheap.script.append(ProviderUnavailable("still down"))
    with pytest.raises(ProviderUnavailable):
        await router.send(batch(2, pinned=pins))  # the resend goes to cheap only
    assert dear.sent == [] and len(cheap.sent) == 0
    assert router.table.routes["cheap"].state == "down"
    with pytest.raises(ProviderUnavailable, match="down") as raised:
        await router.send(batch(3, pinned=pins))  # m2 is free; m0 and m1 wait for cheap
    assert dear.sent == [["m2"]] and raised.value.taken == ("m2",)
    assert raised.value.providers == {"m2": "dear"}
    assert cheap.sent == []


async def test_a_pinned_message_goes_to_its_provider_once_it_is_up(
        router: Router, providers: tuple[Scripted, Scripted]) -> None:
    cheap, dear = providers
    sent = await router.send(batch(3, pinned={"m1": "dear"}))
    assert cheap.sent == [["m0", "m2"]] and dear.sent == [["m1"]]
    assert sent.providers == {"m0": "cheap", "m2": "cheap", "m1": "dear"}


async def test_a_down_provider_is_probed_with_one_message(
        router: Router, providers: tuple[Scripted, Scripted], clock: Clock) -> None:
    cheap, _ = providers
    cheap.script.extend([ProviderUnavailable("down")] * 2)
    await router.send(batch(2))
    await router.send(batch(2, 2))
    assert router.table.routes["cheap"].state == "down"
    clock.now += 5  # the probe is due
    await router.send(batch(4, 10))
    assert cheap.sent[0] == ["m10"]  # one message to the probe; it took it
    assert router.table.routes["cheap"].requests == 2  # then the rest, cheapest first
    assert cheap.sent[1] == ["m11", "m12", "m13"]
    assert router.table.routes["cheap"].state == "up"


async def test_what_a_failed_request_left_taken_is_never_sent_again(
        router: Router, providers: tuple[Scripted, Scripted]) -> None:
    cheap, dear = providers
    cheap.script.append(2)  # takes m0 and m1, then fails
    sent = await router.send(batch(4))
    assert cheap.sent == [["m0", "m1"]] and dear.sent == [["m2", "m3"]]
    assert sent.taken == ("m0", "m1", "m2", "m3")


async def test_the_sender_retries_only_what_a_partial_take_left(autojump_clock) -> None:
    provider = Scripted("only")
    provider.script.append(2)
    outcome = await deliver(batch(4), provider, RetryPolicy(max_attempts=3, attempt_timeout=5))
    assert provider.sent == [["m0", "m1"], ["m2", "m3"]]
    assert isinstance(outcome, BatchSucceeded)
    assert outcome.taken == ("m0", "m1") and outcome.size == 4


async def test_a_provider_s_max_batch_caps_each_request(
        router: Router, providers: tuple[Scripted, Scripted]) -> None:
    cheap, dear = providers
    cheap.max_batch = 2
    sent = await router.send(batch(5))
    assert cheap.sent == [["m0", "m1"], ["m2", "m3"], ["m4"]] and dear.sent == []
    assert sent.requests == 3


async def test_a_batch_reported_on_before_its_resend_names_the_provider_it_was_left_with(
        router: Router, providers: tuple[Scripted, Scripted], autojump_clock) -> None:
    cheap, _ = providers
    cheap.script.append(ProviderOutcomeUnknown("gateway 504"))

    async def all_reported(left: Batch) -> Batch:
        return Batch(left.id, ())  # its reports came meanwhile: nothing to resend

    outcome = await deliver(batch(2), router, RetryPolicy(max_attempts=3, attempt_timeout=5),
                            narrow=all_reported)
    assert isinstance(outcome, BatchSucceeded)
    assert outcome.providers == {"m0": "cheap", "m1": "cheap"}


async def test_each_keys_bill_adds_up_to_the_providers_spend(
        providers: tuple[Scripted, Scripted], clock: Clock) -> None:
    cheap, _ = providers
    table = RoutingTable([Route("cheap", 0.01, 100, 0.01), Route("dear", 0.05, 100, 0.05)],
                         clock, rng=random.Random(1), failures_to_down=9)
    bills: list[KeySpent] = []
    router = Router({p.name: Routed(p, None) for p in providers}, table,
                    paid=lambda messages, cost: bills.append(KeySpent.of(messages, cost)))
    tenants = ["shop", "shop", "warehouse", "shop", "warehouse"]
    messages = tuple(Message(f"m{i}", "+4915", "x", 0.0, tenant=t)
                     for i, t in enumerate(tenants))
    await router.send(Batch("b1", messages))  # one request at the cheap one
    cheap.script.append(2)  # takes two in one request, then fails over to the dear one
    await router.send(Batch("b2", messages))
    by_key: dict[str, float] = {}
    for bill in bills:
        for key, amount in bill.spend.items():
            by_key[key] = by_key.get(key, 0.0) + amount
    spend = sum(route.spend for route in table.routes.values())
    assert spend == pytest.approx(0.01 + 0.01 + 0.05)
    assert sum(by_key.values()) == pytest.approx(spend)
    # b1: 0.01 over five (3 shop, 2 warehouse); b2: 0.01 over m0, m1 (shop), 0.05 over
    # m2..m4 (warehouse, shop, warehouse).
    assert by_key["shop"] == pytest.approx(0.01 * 3 / 5 + 0.01 + 0.05 / 3)
    assert by_key["warehouse"] == pytest.approx(0.01 * 2 / 5 + 0.05 * 2 / 3)
