"""The batcher's bookkeeping, with no trio: which batches leave, when parked ones come
back, and when a message expires. Messages carry a realistic wall-clock time, so that
the TTL rules cannot mix up wall-clock and loop time unnoticed."""

import math
import uuid

import pytest

from smsproxy.batching import BatchingRules, BatchQueue, QueueGauge
from smsproxy.models import Batch, Message

WALL = 1_764_180_000.0
"""Wall-clock time when the test's messages were created."""
TTL = 600.0
GRACE = 1800.0
RULES = BatchingRules(batch_size=10, max_delay=1.0, max_in_flight=4, message_ttl=TTL,
                      status_grace=GRACE, requeue_initial=5.0, requeue_max=300.0)


def message(n: int, attempts: int = 0) -> Message:
    return Message(f"m{n}", "+4912345678", "hi", created_at=WALL, attempts=attempts)


def sent(queue: BatchQueue, *messages: Message, now: float = 0.0) -> Batch:
    """Add the messages and take them at once as one batch."""
    queue.add(messages, now)
    queue.draining = True  # takes whatever is pending, full or not
    [batch] = queue.take_batches(now)
    queue.draining = False
    return batch


def parked_until(queue: BatchQueue) -> float:
    return queue.next_wakeup()


# --- the gauge --------------------------------------------------------------------------


def test_the_gauge_admits_up_to_its_limit_and_force_admits_beyond_it():
    gauge = QueueGauge(3)
    assert gauge.try_admit(2)
    assert not gauge.try_admit(2)
    assert gauge.try_admit(1)
    gauge.force_admit(4)  # recovered messages were promised already
    assert gauge.depth == 7
    assert not gauge.try_admit(1)
    gauge.release(7)
    assert gauge.depth == 0


# --- what leaves, and when --------------------------------------------------------------


def test_a_draining_queue_wants_to_run_at_once():
    queue = BatchQueue(RULES)
    assert queue.next_wakeup() == math.inf  # nothing to do
    queue.add((message(1),), now=100.0)
    assert queue.next_wakeup() == 101.0  # max_delay after the oldest
    queue.draining = True
    assert queue.next_wakeup() == -math.inf


def test_every_batch_gets_an_id_of_its_own():
    queue = BatchQueue(RULES)
    queue.add(tuple(message(n) for n in range(25)), now=0.0)
    batches = queue.take_batches(now=5.0)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert len({b.id for b in batches}) == 3
    assert all(uuid.UUID(b.id) for b in batches)


# --- parking and coming back ------------------------------------------------------------


def test_park_delays_start_at_the_initial_delay_and_double_each_round():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1))
    assert queue.exhausted(batch, now=10.0, wall_now=WALL + 10) == []
    assert parked_until(queue) == 15.0  # 5 s
    assert queue.take_due_parked(now=15.0, wall_now=WALL + 15) == []
    [again] = queue.take_batches(now=15.0)
    queue.exhausted(again, now=20.0, wall_now=WALL + 20)
    assert parked_until(queue) == 30.0  # 10 s
    queue.take_due_parked(now=30.0, wall_now=WALL + 30)
    [third] = queue.take_batches(now=30.0)
    queue.exhausted(third, now=31.0, wall_now=WALL + 31)
    assert parked_until(queue) == 51.0  # 20 s


def test_messages_back_from_parking_leave_at_once_ahead_of_newer_ones():
    queue = BatchQueue(RULES)
    old = sent(queue, message(1))
    queue.exhausted(old, now=10.0, wall_now=WALL + 10)
    queue.add((message(2),), now=14.0)
    queue.take_due_parked(now=15.0, wall_now=WALL + 15)
    [batch] = queue.take_batches(now=15.0)  # not full, yet due: it waited its delay already
    assert [m.id for m in batch.messages] == ["m1", "m2"]


def test_a_message_sent_after_parking_starts_its_rounds_afresh():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1))
    queue.exhausted(batch, now=10.0, wall_now=WALL + 10)
    queue.take_due_parked(now=15.0, wall_now=WALL + 15)
    [again] = queue.take_batches(now=15.0)
    queue.succeeded(again)
    assert not queue.was_attempted(again)
    resent = sent(queue, message(1), now=20.0)  # the same id, say after a restart
    queue.exhausted(resent, now=20.0, wall_now=WALL + 20)
    assert parked_until(queue) == 25.0  # 5 s again, not 10


def test_the_park_is_cut_short_by_the_deadline():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1))
    queue.exhausted(batch, now=10.0, wall_now=WALL + TTL - 2)
    assert parked_until(queue) == 12.0  # 2 s left of the TTL, not the 5 s delay
    queue.take_due_parked(now=12.0, wall_now=WALL + TTL - 2)
    [again] = queue.take_batches(now=12.0)
    queue.exhausted(again, now=12.0, wall_now=WALL + TTL - 0.5)
    assert parked_until(queue) == 12.5  # half a second left


# --- expiry ------------------------------------------------------------------------------


def test_a_refused_message_expires_exactly_at_its_ttl():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1))
    assert queue.exhausted(batch, now=0.0, wall_now=WALL + TTL - 0.001) == []
    queue.take_due_parked(now=1.0, wall_now=WALL + TTL - 0.001)
    [again] = queue.take_batches(now=1.0)
    assert queue.exhausted(again, now=1.0, wall_now=WALL + TTL) == [(message(1), False)]


def test_exhausted_without_word_of_an_unknown_outcome_means_refused():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1))
    assert queue.exhausted(batch, now=0.0, wall_now=WALL + TTL) == [(message(1), False)]


def test_a_message_the_provider_may_have_taken_expires_after_the_grace():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1))
    assert queue.exhausted(batch, now=0.0, wall_now=WALL + TTL, maybe_taken=True) == []
    assert parked_until(queue) == 5.0
    expired = queue.take_due_parked(now=GRACE, wall_now=WALL + TTL + GRACE - 0.001)
    assert expired == []
    [again] = queue.take_batches(now=GRACE)
    # a later round that was refused outright does not take the grace back
    assert queue.exhausted(again, now=GRACE, wall_now=WALL + TTL + GRACE) == [(message(1), True)]


def test_parked_messages_expire_when_they_come_back_too_late():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1), message(2))
    queue.exhausted(batch, now=0.0, wall_now=WALL + 10)
    expired = queue.take_due_parked(now=5.0, wall_now=WALL + TTL + 1)
    assert expired == [(message(1), False), (message(2), False)]
    assert queue.take_batches(now=5.0) == []


def test_a_recovered_message_with_attempts_on_record_gets_the_grace():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1, attempts=3))
    assert queue.was_attempted(batch)
    assert queue.exhausted(batch, now=0.0, wall_now=WALL + TTL) == []


def test_a_forgotten_message_loses_its_grace():
    queue = BatchQueue(RULES)
    batch = sent(queue, message(1))
    queue.exhausted(batch, now=0.0, wall_now=WALL + 10, maybe_taken=True)
    queue.take_due_parked(now=5.0, wall_now=WALL + 15)
    [again] = queue.take_batches(now=5.0)
    queue.succeeded(again)  # taken after all
    resent = sent(queue, message(1), now=6.0)
    assert queue.exhausted(resent, now=6.0, wall_now=WALL + TTL) == [(message(1), False)]


@pytest.mark.parametrize("created_ago", [0.0, 1.0, TTL - 1])
def test_the_ttl_counts_from_the_wall_clock_creation_time(created_ago):
    queue = BatchQueue(RULES)
    fresh = Message("m", "+4912345678", "hi", created_at=WALL - created_ago)
    batch = sent(queue, fresh)
    assert queue.exhausted(batch, now=0.0, wall_now=WALL) == []  # younger than the TTL
