"""Per-message deadlines in the batcher's bookkeeping: an urgent message flushes at its
deadline and takes the waiting later-deadline ones along, up to the batch size; for
any arrival sequence, none leaves late and no batch leaves with room to spare while a
message waits."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from smsproxy.batching import BatchingRules, BatchQueue
from smsproxy.models import Message

WALL = 1_764_180_000.0
BATCH = 10
RULES = BatchingRules(batch_size=BATCH, max_delay=60.0, max_in_flight=1_000_000,
                      message_ttl=3600.0)


def message(n: int, within: float | None = None, accepted: float = WALL) -> Message:
    return Message(f"m{n}", "+4912345678", "hi", created_at=accepted,
                   deliver_by=None if within is None else accepted + within)


def test_an_urgent_message_leaves_at_its_deadline_with_the_others_riding_along():
    queue = BatchQueue(RULES)
    queue.add(tuple(message(n, within=600) for n in range(5)), now=0.0, wall_now=WALL)
    queue.add((message(99, within=0.5, accepted=WALL + 2),), now=2.0, wall_now=WALL + 2)
    assert queue.next_wakeup() == 2.5
    assert queue.take_batches(2.4) == []
    [batch] = queue.take_batches(2.5)
    assert [m.id for m in batch.messages] == ["m99", "m0", "m1", "m2", "m3", "m4"]


def test_the_earliest_deadlines_fill_a_batch_and_the_rest_wait_for_theirs():
    queue = BatchQueue(RULES)
    queue.add(tuple(message(n, within=600 - n) for n in range(12)), now=0.0, wall_now=WALL)
    queue.add((message(99, within=1),), now=0.0, wall_now=WALL)
    [batch] = queue.take_batches(0.0)  # 13 waiting: a full batch leaves at once
    assert [m.id for m in batch.messages] == ["m99", "m11", "m10", "m9", "m8", "m7", "m6",
                                              "m5", "m4", "m3"]
    assert queue.waiting == 3 and queue.next_wakeup() == 598.0  # m2


def test_without_a_deadline_a_message_waits_the_max_delay():
    queue = BatchQueue(RULES)
    queue.add((message(1),), now=10.0, wall_now=WALL)
    assert queue.next_wakeup() == 70.0


def test_a_recovered_message_keeps_its_deadline_on_the_wall_clock():
    queue = BatchQueue(RULES)
    queue.add((message(1, within=30.0),), now=500.0, wall_now=WALL + 20.0)
    assert queue.next_wakeup() == 510.0  # 10 s of its 30 were left at the restart
    late = BatchQueue(RULES)
    late.add((message(2, within=30.0),), now=500.0, wall_now=WALL + 40.0)
    assert late.next_wakeup() == 500.0  # past it: at once


ARRIVALS = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False),  # arrival, seconds into the run
              st.one_of(st.none(), st.floats(0, 120, allow_nan=False))),  # deliver within
    min_size=1, max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ARRIVALS)
def test_no_message_leaves_late_and_no_batch_leaves_with_room_while_one_waits(arrivals):
    queue = BatchQueue(RULES)
    arrivals = sorted(arrivals, key=lambda a: a[0])
    deadline: dict[str, float] = {}
    left: dict[str, float] = {}
    pending = list(enumerate(arrivals))
    now = 0.0
    while pending or queue.waiting:
        next_arrival = pending[0][1][0] if pending else math.inf
        now = max(now, min(next_arrival, queue.next_wakeup()))
        while pending and pending[0][1][0] <= now:
            n, (at, within) = pending.pop(0)
            queued = message(n, within, accepted=WALL + at)
            deadline[queued.id] = at + (RULES.max_delay if within is None else within)
            queue.add((queued,), now=now, wall_now=WALL + now)
        for batch in queue.take_batches(now):
            for sent in batch.messages:
                left[sent.id] = now
            # room left in a batch while a message still waits: it should have gone along
            assert len(batch.messages) == BATCH or queue.waiting == 0
            queue.succeeded(batch)
    assert set(left) == set(deadline)
    for message_id, at in left.items():
        # 1 µs: wall-clock times near 1.7e9 s carry about 0.2 µs of float rounding
        assert at <= deadline[message_id] + 1e-6, (message_id, at, deadline[message_id])


# --- the same rules where the table is the queue (PostgreSQL), and across restarts ------


def test_claims_take_the_earliest_deadlines_when_the_earliest_comes(postgres_url):
    from smsproxy.models import new_id
    from smsproxy.stores.postgres import PostgresStore
    from tests.test_postgres_store import FakeClock

    clock = FakeClock()
    clock.now = WALL
    store = PostgresStore(postgres_url, clock=clock)
    try:
        relaxed = [Message(new_id(), "+4912345678", f"r{n}", WALL + n * 0.001,
                           deliver_by=WALL + 600 + n) for n in range(4)]
        plain = [Message(new_id(), "+4912345678", f"p{n}", WALL + n * 0.001) for n in range(4)]
        urgent = Message(new_id(), "+4912345678", "otp", WALL + 0.5, deliver_by=WALL + 2.0)
        with store.transaction():
            store.insert([*relaxed, *plain, urgent])
        with store.transaction():
            waiting = store.claim("a", 10, max_delay=10.0, lease=30.0)
        assert waiting.messages == () and waiting.next_due == WALL + 2.0
        clock.now = WALL + 2.0
        with store.transaction():
            taken = store.claim("a", 10, max_delay=10.0, lease=30.0)
        # 9 of 10: the OTP's deadline releases them, in deadline order: the OTP, the
        # plain ones (--max-delay, 10 s), then those that could wait 600 s
        assert [m.content for m in taken.messages] == [
            "otp", "p0", "p1", "p2", "p3", "r0", "r1", "r2", "r3"]
        assert taken.messages[0].deliver_by == WALL + 2.0
    finally:
        store.close()


def test_a_deadline_survives_a_restart(tmp_path):
    from smsproxy.stores.sqlite import SqliteStore

    path = tmp_path / "deadlines.db"
    store = SqliteStore(path)
    with store.transaction():
        store.insert([message(1, within=30.0), message(2)])
    store.close()
    store = SqliteStore(path)
    try:
        assert [(m.id, m.deliver_by) for m in store.accepted()] == [
            ("m1", WALL + 30.0), ("m2", None)]
        assert store.lookup("m1").deliver_by == WALL + 30.0
    finally:
        store.close()
