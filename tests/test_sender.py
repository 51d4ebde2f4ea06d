"""Retries: attempts, backoff, per-attempt timeouts, and what gets recorded."""

import math

import pytest
import trio

from actors.sender import RetryPolicy, deliver
from smsproxy.errors import ProviderRejected, ProviderTimeout
from smsproxy.models import Batch, BatchFailed, BatchSucceeded, Message
from tests.fakes import ScriptedProvider

BATCH = Batch("b1", (Message("m1", "+4912345", "hi", 0.0), Message("m2", "+4912345", "yo", 0.0)))


@pytest.mark.parametrize("max_attempts", [1, 0, -1])
async def test_max_attempts_below_2_means_exactly_one_call(max_attempts, autojump_clock):
    provider = ScriptedProvider(failures=math.inf)
    outcome = await deliver(BATCH, provider, RetryPolicy(max_attempts, 10))
    assert len(provider.calls) == 1
    assert outcome == BatchFailed("b1", 2, 1, "ProviderUnavailable: failure 1")


async def test_two_failures_then_success_takes_three_calls(autojump_clock):
    provider = ScriptedProvider(failures=2)
    outcome = await deliver(BATCH, provider, RetryPolicy(3, 10))
    assert len(provider.calls) == 3
    assert outcome == BatchSucceeded("b1", 2, 3)


async def test_failure_on_every_attempt_carries_the_last_error(autojump_clock):
    provider = ScriptedProvider(failures=math.inf)
    outcome = await deliver(BATCH, provider, RetryPolicy(3, 10))
    assert len(provider.calls) == 3
    assert isinstance(outcome, BatchFailed)
    assert outcome.attempts == 3
    assert outcome.error == "ProviderUnavailable: failure 3"


async def test_rejected_batch_is_not_retried(autojump_clock):
    provider = ScriptedProvider(failures=math.inf, error=ProviderRejected)
    outcome = await deliver(BATCH, provider, RetryPolicy(5, 10))
    assert len(provider.calls) == 1
    assert isinstance(outcome, BatchFailed)
    assert outcome.error.startswith("ProviderRejected")


async def test_backoff_grows_exponentially_between_attempts(autojump_clock):
    provider = ScriptedProvider(failures=math.inf)
    await deliver(BATCH, provider, RetryPolicy(5, 10, backoff_initial=1.0, backoff_max=100))
    gaps = [b - a for a, b in zip(provider.call_times, provider.call_times[1:], strict=False)]
    assert len(gaps) == 4
    for n, gap in enumerate(gaps):
        # initial * 2**n, plus up to one second of jitter
        assert 2**n <= gap <= 2**n + 1


async def test_backoff_is_capped(autojump_clock):
    provider = ScriptedProvider(failures=math.inf)
    await deliver(BATCH, provider, RetryPolicy(8, 10, backoff_initial=1.0, backoff_max=5))
    gaps = [b - a for a, b in zip(provider.call_times, provider.call_times[1:], strict=False)]
    assert max(gaps) <= 5 + 1  # the cap, plus at most backoff_initial of jitter
    assert max(gaps) >= 5


async def test_an_attempt_that_hangs_times_out_and_is_retried(autojump_clock):
    provider = ScriptedProvider(latency=math.inf)
    started = trio.current_time()
    outcome = await deliver(BATCH, provider, RetryPolicy(2, attempt_timeout=7))
    assert len(provider.calls) == 2
    assert isinstance(outcome, BatchFailed)
    assert outcome.error == "ProviderTimeout: no answer within 7 s"
    assert trio.current_time() - started >= 14


async def test_a_resend_carries_only_the_messages_still_waiting(autojump_clock):
    provider = ScriptedProvider(failures=1, error=ProviderTimeout)
    asked: list[list[str]] = []

    async def narrow(batch: Batch) -> Batch:
        asked.append([m.id for m in batch.messages])
        return Batch(batch.id, batch.messages[1:])  # m1 was reported meanwhile

    outcome = await deliver(BATCH, provider, RetryPolicy(3, 10), narrow=narrow)
    assert asked == [["m1", "m2"]]  # not before the first attempt, once before the resend
    assert provider.sent_ids() == [["m1", "m2"], ["m2"]]
    assert outcome == BatchSucceeded("b1", 1, 2)  # what the provider took in the end


async def test_nothing_left_to_resend_is_a_success_without_another_call(autojump_clock):
    provider = ScriptedProvider(failures=math.inf, error=ProviderTimeout)

    async def narrow(batch: Batch) -> Batch:
        return Batch(batch.id, ())

    outcome = await deliver(BATCH, provider, RetryPolicy(3, 10), narrow=narrow)
    assert len(provider.calls) == 1
    assert outcome == BatchSucceeded("b1", 2, 1)


async def test_a_failure_says_whether_the_provider_may_have_taken_the_batch(autojump_clock):
    refused = await deliver(BATCH, ScriptedProvider(failures=math.inf), RetryPolicy(2, 10))
    assert isinstance(refused, BatchFailed)
    assert not refused.maybe_delivered
    unknown = ScriptedProvider(failures=math.inf, error=ProviderTimeout)
    maybe = await deliver(BATCH, unknown, RetryPolicy(2, 10))
    assert isinstance(maybe, BatchFailed)
    assert maybe.maybe_delivered
    hung = await deliver(BATCH, ScriptedProvider(latency=math.inf), RetryPolicy(1, 5))
    assert isinstance(hung, BatchFailed)
    assert hung.maybe_delivered  # our own per-attempt timeout: the request went out
