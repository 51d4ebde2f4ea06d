"""Hands one batch to the provider: retries with exponential backoff and jitter.

Each attempt has its own timeout. Only :class:`ProviderUnavailable` is retried; a
:class:`ProviderRejected` ends the batch at once. Before every resend, the batch
is narrowed to the messages still waiting (``narrow``): a message the provider
has meanwhile reported on was taken by an attempt whose answer was lost, and
sending it again would be paid for twice. When ``narrow`` finds the batch is no
longer this instance's to send (:class:`Withdrawn`: its lease was lost), it stops
there, neither sent nor failed. Anything else raised is a bug and propagates to
the dispatcher's nursery.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
import tenacity
import trio

from smsproxy.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderThrottled,
    ProviderTimeout,
    ProviderUnavailable,
)
from smsproxy.models import Batch, BatchFailed, BatchLeaseLost, BatchOutcome, BatchSucceeded
from smsproxy.providers import Provider
from smsproxy.providers.protocol import NOTHING, Sent
from smsproxy.records import AttemptFinished

__all__ = ["Narrow", "RetryPolicy", "Withdrawn", "deliver"]

log = structlog.get_logger("smsproxy.sender")

Narrow = Callable[[Batch], Awaitable[Batch]]
"""The batch less the messages that no longer wait to be sent; raises Withdrawn when
what still waits is no longer this sender's."""


class Withdrawn(Exception):
    """The rest of the batch is no longer this sender's to send (its lease was lost)."""


async def _unchanged(batch: Batch) -> Batch:
    return batch


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    """Values below 1 mean one attempt."""
    attempt_timeout: float
    backoff_initial: float = 0.5
    """The first wait; each next one doubles. Jitter adds up to this much again."""
    backoff_max: float = 30.0
    """Cap on the doubling part of the wait."""
    retry_after_max: float = 60.0
    """Longest Retry-After honoured; a longer one ends the round and the batch is parked."""


async def deliver(
    batch: Batch,
    provider: Provider,
    policy: RetryPolicy,
    observe: Callable[[AttemptFinished], None] = lambda _: None,
    narrow: Narrow = _unchanged,
) -> BatchOutcome:
    """Try the batch up to ``policy.max_attempts`` times; report how it ended.

    ``observe`` hears of every attempt, for latency metrics. When ``narrow`` leaves
    nothing to resend, the provider has taken every message: that is a success;
    when it raises :class:`Withdrawn`, the batch ends as :class:`BatchLeaseLost`.
    """
    attempt_number = 0
    maybe_delivered = False
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(max(1, policy.max_attempts)),
        wait=_wait_between_attempts(policy),
        retry=tenacity.retry_if_exception_type(ProviderUnavailable),
        sleep=trio.sleep,
        reraise=True,
    )
    sending = batch
    took = NOTHING  # by earlier attempts' requests, before each failed
    pinned: dict[str, str] = {}
    try:
        async for attempt in retrying:
            with attempt:
                attempt_number = attempt.retry_state.attempt_number
                if attempt_number > 1:
                    try:
                        sending = await narrow(sending)
                    except Withdrawn:
                        log.warning("batch_lease_lost", batch_id=batch.id,
                                    attempts=attempt_number - 1, messages=len(sending))
                        return BatchLeaseLost(batch.id, len(sending), attempt_number - 1)
                    if not sending.messages:
                        log.info("batch_taken_before_resend", batch_id=batch.id,
                                 attempts=attempt_number - 1, messages=len(batch))
                        # reported on meanwhile: taken, by the provider each was left with
                        return BatchSucceeded(batch.id, len(batch), attempt_number - 1,
                                              took.taken, {**pinned, **took.providers},
                                              took.refs)
                try:
                    sent = await _attempt(sending, provider, policy.attempt_timeout,
                                          attempt_number, observe)
                except ProviderError as error:
                    if error.taken:  # never sent again: the provider has them
                        took += Sent.of(error)
                        sending = _without(sending, error.taken)
                    pinned.update(error.pinned)
                    maybe_delivered |= isinstance(error, ProviderOutcomeUnknown)
                    raise
    except ProviderError as error:
        reason = f"{type(error).__name__}: {error}"
        log.warning("batch_failed", batch_id=batch.id, attempts=attempt_number,
                    messages=len(batch), error=reason, maybe_delivered=maybe_delivered,
                    taken=len(took.taken))
        taken = set(took.taken)
        return BatchFailed(batch.id, len(batch), attempt_number, reason, maybe_delivered,
                           took.taken, took.providers, took.refs,
                           {i: p for i, p in pinned.items() if i not in taken})
    log.info("batch_sent", batch_id=batch.id, attempts=attempt_number, messages=len(sending))
    everything = took + sent
    return BatchSucceeded(batch.id, len(sending) + len(took.taken), attempt_number,
                          took.taken, everything.providers, everything.refs)


def _without(batch: Batch, taken: Sequence[str]) -> Batch:
    gone = set(taken)
    return Batch(batch.id, tuple(m for m in batch.messages if m.id not in gone))


def _wait_between_attempts(policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
    """Exponential backoff with jitter; after a 429, at least the provider's Retry-After."""
    backoff = tenacity.wait_exponential(
        multiplier=policy.backoff_initial, max=policy.backoff_max
    ) + tenacity.wait_random(0, policy.backoff_initial)

    def wait(state: tenacity.RetryCallState) -> float:
        delay = backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ProviderThrottled) and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, policy.retry_after_max))
        return delay

    return wait


async def _attempt(
    batch: Batch,
    provider: Provider,
    time_limit: float,
    attempt: int,
    observe: Callable[[AttemptFinished], None],
) -> Sent:
    started = trio.current_time()
    try:
        with trio.fail_after(time_limit):
            sent = await provider.send(batch)
    except trio.TooSlowError:
        error: ProviderError = ProviderTimeout(f"no answer within {time_limit:g} s")
    except ProviderError as raised:
        error = raised
    else:
        observe(AttemptFinished(batch.id, trio.current_time() - started, ok=True))
        return sent
    seconds = trio.current_time() - started
    observe(AttemptFinished(batch.id, seconds, ok=False))
    log.info("batch_attempt_failed", batch_id=batch.id, attempt=attempt, messages=len(batch),
             seconds=round(seconds, 3), error=str(error))
    raise error
