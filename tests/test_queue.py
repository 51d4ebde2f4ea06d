"""The queue every store is (smsproxy.stores.queue): claims by deadline with leases,
renewal, sending, parking, expiry's facts, the backlog and giving back, on memory,
SQLite and PostgreSQL alike, on a clock the test moves."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsproxy.dispatching import DEADLINE_LEAD, BatchingRules, expiry_reason
from smsproxy.models import Message, new_id
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores import MemoryStore, MessageStore, SqliteStore
from smsproxy.stores.protocol import Backlog, ClaimRules, Lapsed, Renewal
from tests.fakes import MANUAL_CLOCK_AT_START as T0
from tests.fakes import ManualClock


def saved(store: MessageStore, count: int, at: float = T0, **fields) -> list[str]:
    messages = [Message(new_id(), "+4912345678", f"m{n}", created_at=at + n * 0.001, **fields)
                for n in range(count)]
    with store.transaction():
        store.insert(messages)
    return [m.id for m in messages]


def claim(store: MessageStore, instance: str = "a", size: int = 10, lease: float = 30.0,
          max_delay: float = 1.0, ttl: float = 3600.0, lead: float = 0.0, batches: int = 1,
          partial: bool = True):
    with store.transaction():
        return store.claim(instance, ClaimRules(size, max_delay, lease, ttl, lead, batches,
                                                partial))


def in_transaction(store: MessageStore, call, *arguments):
    with store.transaction():
        return call(*arguments)


def test_a_claim_waits_for_a_full_batch_or_the_max_delay(queue, clock):
    saved(queue, 3)
    waiting = claim(queue)
    assert waiting.messages == ()
    assert waiting.next_due == pytest.approx(T0 + 1.0)
    assert waiting.waiting == 3
    clock.now = T0 + 1.0
    taken = claim(queue)
    assert [m.content for m in taken.messages] == ["m0", "m1", "m2"]  # oldest first


def test_a_full_batch_is_claimed_at_once_and_no_message_twice(queue):
    ids = saved(queue, 25)
    first, second = claim(queue, size=10), claim(queue, "b", size=10)
    assert [m.id for m in first.messages] == ids[:10]
    assert [m.id for m in second.messages] == ids[10:20]
    assert claim(queue, "c", size=10).messages == ()  # 5 left: not a batch, not due yet


def test_a_claim_of_several_batches_takes_the_full_ones_and_a_partial_one_when_due(
    queue, clock
):
    ids = saved(queue, 25)
    full = claim(queue, size=10, batches=3)
    assert [m.id for m in full.messages] == ids[:20]  # 5 left: not due yet
    assert claim(queue, "b", size=10, batches=3).messages == ()
    clock.now = T0 + 1.03  # the first of them was saved 20 ms after the first of all
    assert [m.id for m in claim(queue, "b", size=10, batches=3).messages] == ids[20:]


def test_a_claim_ahead_of_the_senders_takes_full_batches_only(queue, clock):
    ids = saved(queue, 15)
    clock.now = T0 + 5.0  # every one is due
    ahead = claim(queue, size=10, batches=2, partial=False)
    assert [m.id for m in ahead.messages] == ids[:10]
    assert claim(queue, size=10, batches=2, partial=False).messages == ()
    assert [m.id for m in claim(queue, size=10, batches=2).messages] == ids[10:]


def test_a_claim_of_several_batches_is_no_wider_than_asked(queue):
    ids = saved(queue, 35)
    assert [m.id for m in claim(queue, size=10, batches=2).messages] == ids[:20]


def test_an_urgent_message_is_claimed_at_its_deadline_less_the_lead_with_others_along(
    queue, clock
):
    relaxed = [saved(queue, 1, at=T0 + n * 0.01, deliver_by=T0 + 600 + n)[0]
               for n in range(4)]
    plain = saved(queue, 4)
    urgent = saved(queue, 1, at=T0 + 0.5, deliver_by=T0 + 2.0)
    waiting = claim(queue, max_delay=10.0, lead=DEADLINE_LEAD)
    assert waiting.messages == ()
    assert waiting.next_due == pytest.approx(T0 + 2.0 - DEADLINE_LEAD)
    clock.now = T0 + 2.0 - DEADLINE_LEAD
    taken = claim(queue, max_delay=10.0, lead=DEADLINE_LEAD)
    # 9 of 10, in deadline order: the urgent one, the plain ones (10 s), then the relaxed
    assert [m.id for m in taken.messages] == urgent + plain + relaxed
    assert taken.messages[0].deliver_by == T0 + 2.0


def test_the_earliest_deadlines_fill_a_batch_and_the_rest_wait_for_theirs(queue, clock):
    late = [saved(queue, 1, deliver_by=T0 + 600 - n)[0] for n in range(12)]
    urgent = saved(queue, 1, deliver_by=T0 + 1)
    taken = claim(queue, max_delay=60.0)
    assert [m.id for m in taken.messages] == urgent + late[::-1][:9]
    waiting = claim(queue, max_delay=60.0)
    assert (waiting.waiting, waiting.next_due) == (3, pytest.approx(T0 + 598))


def test_a_scheduled_message_waits_for_its_send_at_and_its_deadline_counts_from_it(
    queue, clock
):
    [scheduled] = saved(queue, 1, send_at=T0 + 100)
    assert claim(queue, max_delay=5.0).messages == ()
    with queue.transaction():
        assert queue.backlog() == Backlog(0, 0)  # not due: not part of the backlog
    clock.now = T0 + 100
    waiting = claim(queue, max_delay=5.0)
    assert (waiting.waiting, waiting.next_due) == (1, pytest.approx(T0 + 105))
    assert queue.lookup(scheduled).deliver_by is None  # no deadline nobody asked for
    clock.now = T0 + 105
    assert [m.id for m in claim(queue, max_delay=5.0).messages] == [scheduled]


def test_a_lapsed_claim_is_taken_over_and_its_old_holder_loses_it(queue, clock):
    ids = saved(queue, 10)
    assert len(claim(queue, "dead", lease=30).messages) == 10
    clock.now = T0 + 29
    assert claim(queue, "alive").messages == ()  # still held
    clock.now = T0 + 31
    takeover = claim(queue, "alive")
    assert [m.id for m in takeover.messages] == ids
    assert takeover.taken_over == 10
    assert in_transaction(queue, queue.renew, "dead", ids, 30) == Renewal(
        frozenset(), frozenset(ids))
    assert in_transaction(queue, queue.renew, "alive", ids, 30) == Renewal(
        frozenset(ids), frozenset())


def test_a_lease_that_ran_out_is_lost_even_before_another_claim(queue, clock):
    ids = saved(queue, 10)
    claim(queue, lease=30)
    clock.now = T0 + 31
    assert in_transaction(queue, queue.renew, "a", ids, 30).lost == frozenset(ids)


def test_renewal_leaves_out_messages_reported_meanwhile(queue):
    ids = saved(queue, 10)
    claim(queue)
    with queue.transaction():
        queue.set_statuses_unless([(ids[0], Status.CONFIRMED, None)], frozenset())
        assert queue.renew("a", ids, 30) == Renewal(frozenset(ids[1:]), frozenset())


def test_sent_messages_are_never_claimed_again(queue, clock):
    ids = saved(queue, 10)
    claim(queue)
    with queue.transaction():
        queue.mark_sent("a", ids, 1, {}, {})
        assert queue.backlog() == Backlog(unsent=0, claimable=0)
    clock.now = T0 + 3600
    assert claim(queue).messages == ()
    assert [m.attempts for m in queue.accepted()] == [1] * 10  # waiting for their reports


def test_a_parked_claim_comes_back_after_a_growing_delay(queue, clock):
    ids = saved(queue, 10)
    claim(queue)
    in_transaction(queue, queue.park, "a", ids, 3, "down", False, 5, 300, {})
    clock.now = T0 + 4.9
    assert claim(queue, "b").messages == ()
    clock.now = T0 + 5.0
    assert len(claim(queue, "b").messages) == 10  # any instance may take it
    in_transaction(queue, queue.park, "b", ids, 3, "down", False, 5, 300, {})
    clock.now = T0 + 14.9
    assert claim(queue).messages == ()
    clock.now = T0 + 15.0  # 10 s the second time
    assert [m.attempts for m in claim(queue).messages] == [6] * 10


def test_the_requeue_delay_stops_growing_at_its_maximum(queue, clock):
    ids = saved(queue, 1)
    for _ in range(12):
        assert claim(queue, size=1, ttl=1e9).messages
        in_transaction(queue, queue.park, "a", ids, 1, "down", False, 5, 300, {})
        clock.now += 300
    assert claim(queue, size=1, ttl=1e9).messages  # 5 * 2**11 s would be far longer


def test_past_its_ttl_a_message_is_never_claimed(queue, clock):
    saved(queue, 1)
    clock.now = T0 + 600
    assert claim(queue, size=1, ttl=600).messages == ()
    clock.now = T0 + 599.9
    assert claim(queue, size=1, ttl=600).messages


def test_past_its_validity_a_message_is_never_claimed(queue, clock):
    saved(queue, 1, valid_until=T0 + 30)
    clock.now = T0 + 30
    assert claim(queue, size=1).messages == ()


def test_lapsed_reports_the_facts_once_their_time_is_over(queue, clock):
    refused, maybe = saved(queue, 1), saved(queue, 1, at=T0 + 0.1)
    claim(queue, size=1)
    claim(queue, size=1)
    in_transaction(queue, queue.park, "a", refused, 2, "HTTP 500", False, 5, 300, {})
    in_transaction(queue, queue.park, "a", maybe, 2, "timed out", True, 5, 300, {})
    short = saved(queue, 1, at=T0 + 0.2, valid_until=T0 + 30)
    clock.now = T0 + 30
    assert in_transaction(queue, queue.lapsed, 600, 1800, 100) == [
        Lapsed(short[0], False, True, None)]
    clock.now = T0 + 600
    assert in_transaction(queue, queue.lapsed, 600, 1800, 100) == [
        Lapsed(refused[0], False, False, "HTTP 500"), Lapsed(short[0], False, True, None)]
    clock.now = T0 + 2401
    assert [x.message_id for x in in_transaction(queue, queue.lapsed, 600, 1800, 100)] == [
        refused[0], maybe[0], short[0]]


def test_a_claimed_message_has_not_lapsed_while_its_claim_lasts(queue, clock):
    saved(queue, 1)
    claim(queue, size=1, lease=7200)
    clock.now = T0 + 3600
    assert in_transaction(queue, queue.lapsed, 3600, 0, 100) == []


RULES = BatchingRules(batch_size=10, max_delay=1.0, max_in_flight=4, message_ttl=600,
                      status_grace=1800)


def test_expiry_fails_each_late_message_once_through_the_rules(queue, clock):
    refused, maybe = saved(queue, 1), saved(queue, 1)
    claim(queue, size=1)
    claim(queue, size=1)
    in_transaction(queue, queue.park, "a", refused, 2, "HTTP 500", False, 5, 300, {})
    in_transaction(queue, queue.park, "a", maybe, 2, "timed out", True, 5, 300, {})
    repository = Repository(queue, clock)
    clock.now = T0 + 600
    with queue.transaction():
        failed = repository.expire(RULES, 100)
    assert list(failed.values()) == [refused]
    assert in_transaction(queue, repository.expire, RULES, 100) == {}  # once
    record = queue.lookup(refused[0])
    assert record.status is Status.FAILED
    assert record.reason == expiry_reason(Lapsed(refused[0], False, False, "HTTP 500"), RULES)
    assert "within the message TTL of 600 s" in record.reason
    assert record.reason.endswith("last error: HTTP 500")
    [_, expired] = queue.events_of(refused[0])
    assert (expired.status, expired.previous_status) == (Status.FAILED, Status.ACCEPTED)
    clock.now = T0 + 2400
    with queue.transaction():
        assert list(repository.expire(RULES, 100).values()) == [maybe]
    assert "grace of 1800 s" in queue.lookup(maybe[0]).reason


def test_release_gives_back_every_claim_of_an_instance(queue):
    saved(queue, 10)
    claim(queue, "leaving")
    assert in_transaction(queue, queue.release, "leaving") == 10
    assert len(claim(queue, "other").messages) == 10


def test_the_backlog_counts_what_waits_and_what_a_claim_could_take(queue, clock):
    ids = saved(queue, 12)
    assert in_transaction(queue, queue.backlog) == Backlog(unsent=12, claimable=12)
    claim(queue)  # the 10 oldest
    assert in_transaction(queue, queue.backlog) == Backlog(unsent=12, claimable=2)
    in_transaction(queue, queue.park, "a", ids[:10], 1, "down", False, 5, 300, {})
    assert in_transaction(queue, queue.backlog) == Backlog(unsent=12, claimable=2)
    clock.now = T0 + 6
    assert in_transaction(queue, queue.backlog) == Backlog(unsent=12, claimable=12)


def test_a_flush_claims_whatever_waits_at_once(queue):
    ids = saved(queue, 3) + saved(queue, 1, deliver_by=T0 + 600)
    with queue.transaction():
        taken = queue.claim("a", ClaimRules(10, 60.0, 30.0, 3600.0, DEADLINE_LEAD).flushing())
    assert sorted(m.id for m in taken.messages) == sorted(ids)


def test_a_reopened_file_voids_a_dead_process_s_claims_and_keeps_the_row_s_facts(tmp_path,
                                                                                 clock):
    store = SqliteStore(tmp_path / "queue.db", clock)
    ids = saved(store, 2)
    claim(store, size=1, max_delay=0)
    in_transaction(store, store.park, "a", ids[:1], 3, "HTTP 503", False, 5, 300, {})
    claim(store, size=1, max_delay=0)  # the second, in flight when the process dies
    store._db.close()  # kill -9: nothing is released
    store._release_lock()
    reopened = SqliteStore(tmp_path / "queue.db", clock)
    try:
        clock.now = T0 + 5
        taken = claim(reopened, "b", max_delay=0)
        assert sorted(m.id for m in taken.messages) == sorted(ids)
        assert {m.id: m.attempts for m in taken.messages} == {ids[0]: 3, ids[1]: 0}
        clock.now = T0 + 3600
        facts = {x.message_id: x for x in in_transaction(reopened, reopened.lapsed, 600, 0,
                                                         10)}
        assert facts[ids[0]] == Lapsed(ids[0], False, False, "HTTP 503")
        assert facts[ids[1]] == Lapsed(ids[1], True, False, None)  # it may have been sent
    finally:
        reopened.close()


ARRIVALS = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False),  # arrival, seconds into the run
              st.one_of(st.none(), st.floats(0, 120, allow_nan=False))),  # deliver within
    min_size=1, max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(ARRIVALS)
def test_no_message_leaves_late_and_no_batch_leaves_with_room_while_one_waits(arrivals):
    clock = ManualClock()
    store = MemoryStore(clock)
    rules = ClaimRules(batch_size=10, max_delay=60.0, lease=30.0, ttl=3600.0,
                       lead=DEADLINE_LEAD)
    arrivals = sorted(arrivals, key=lambda a: a[0])
    deadline: dict[str, float] = {}
    left: dict[str, float] = {}
    next_due = math.inf
    while arrivals or len(left) < len(deadline):
        clock.now = max(clock.now, min(T0 + arrivals[0][0] if arrivals else math.inf, next_due))
        while arrivals and T0 + arrivals[0][0] <= clock.now:
            at, within = arrivals.pop(0)
            message = Message(new_id(), "+4912345678", "hi", created_at=T0 + at,
                              deliver_by=None if within is None else T0 + at + within)
            deadline[message.id] = T0 + at + (rules.max_delay if within is None else within)
            in_transaction(store, store.insert, [message])
        while True:
            claimed = in_transaction(store, store.claim, "a", rules)
            if not claimed.messages:
                next_due = claimed.next_due if claimed.next_due is not None else math.inf
                break
            for message in claimed.messages:
                left[message.id] = clock.now
            in_transaction(store, store.mark_sent, "a", [m.id for m in claimed.messages], 1,
                           {}, {})
            # room left in a batch while a message still waits: it should have gone along
            waiting = in_transaction(store, store.backlog).claimable
            assert len(claimed.messages) == rules.batch_size or waiting == 0
    store.close()
    assert set(left) == set(deadline)
    for message_id, at in left.items():
        # 1 µs: wall-clock times near 1.7e9 s carry about 0.2 µs of float rounding
        assert at <= deadline[message_id] + 1e-6, (message_id, at, deadline[message_id])
