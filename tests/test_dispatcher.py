"""The dispatcher on every store (memory, SQLite, PostgreSQL), on trio's MockClock: when
batches leave, how many at once, what a failure, a lost lease, expiry and a shutdown do.
(The queue's own rules: test_queue.py; several instances at once: test_instances.py.)"""

import math
import threading
from collections.abc import Callable
from functools import partial

import pytest
import trio
import trio.testing

from smsproxy.errors import ProviderTimeout, QueueFull, ShuttingDown
from smsproxy.models import Outgoing
from smsproxy.statuses import Status
from smsproxy.stores import MemoryStore, MessageStore
from tests.fakes import (
    FailingStore,
    InlinePostgresStore,
    InlineSqliteStore,
    ScriptedProvider,
    wall_clock,
)

PHONE = "+4912345678"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def open_engine_store(request, tmp_path) -> Callable[[], MessageStore]:
    """Each store in turn, on the wall clock that follows trio's (the pipeline's), driven
    on the event loop's thread (see InlineSqliteStore)."""
    if request.param == "memory":
        return partial(MemoryStore, wall_clock)
    if request.param == "sqlite":
        return partial(InlineSqliteStore, tmp_path / "dispatch.db", wall_clock)
    return partial(InlinePostgresStore, request.getfixturevalue("postgres_url"), wall_clock)


@pytest.fixture
def start_pipeline(start_pipeline, open_engine_store):
    """The pipeline of conftest, on each store unless a test brings its own."""

    async def start(*arguments, store=None, **options):
        if store is not None:
            return await start_pipeline(*arguments, store=store, **options)
        return await start_pipeline(*arguments, open_store=open_engine_store, **options)

    return start


async def submit(pipeline, count: int) -> list[str]:
    return await pipeline.accept(count)


@pytest.mark.parametrize("batch_size", [0, 1])
async def test_batch_size_0_or_1_sends_each_message_at_once(
    start_pipeline, batch_size, autojump_clock
):
    pipeline = await start_pipeline(batch_size=batch_size, max_delay=60)
    ids = await submit(pipeline, 3)
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(pipeline.provider.sent_ids()) == sorted([i] for i in ids)  # in flight at once
    assert trio.current_time() == 0


async def test_batch_size_2_waits_for_the_second_message(start_pipeline):
    pipeline = await start_pipeline(batch_size=2, max_delay=60)
    first = await submit(pipeline, 1)
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.calls == []
    second = await submit(pipeline, 1)
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.sent_sets() == [{*first, *second}]


async def test_independent_batches_stay_independent(start_pipeline):
    pipeline = await start_pipeline(batch_size=2, max_delay=60)
    ids = await submit(pipeline, 5)
    await trio.testing.wait_all_tasks_blocked()
    assert sorted(map(sorted, pipeline.provider.sent_ids())) == sorted([sorted(ids[0:2]),
                                                                    sorted(ids[2:4])])


async def test_lone_message_is_flushed_after_max_delay_not_before(start_pipeline, autojump_clock):
    pipeline = await start_pipeline(batch_size=10, max_delay=1.0)
    ids = await submit(pipeline, 1)
    await trio.sleep(0.999)
    assert pipeline.provider.calls == []
    await trio.sleep(0.002)
    assert pipeline.provider.sent_sets() == [set(ids)]
    assert pipeline.provider.call_times == [pytest.approx(1.0)]


async def test_max_delay_counts_from_the_oldest_pending_message(start_pipeline, autojump_clock):
    pipeline = await start_pipeline(batch_size=10, max_delay=1.0)
    ids = await submit(pipeline, 1)
    await trio.sleep(0.5)
    ids += await submit(pipeline, 1)
    await trio.sleep(0.6)
    assert pipeline.provider.sent_sets() == [set(ids)]
    assert pipeline.provider.call_times == [pytest.approx(1.0)]


async def test_at_most_max_in_flight_batches_at_once(start_pipeline, autojump_clock):
    provider = ScriptedProvider(latency=1.0)
    pipeline = await start_pipeline(provider, batch_size=1, max_in_flight=2)
    await submit(pipeline, 6)
    await trio.sleep(10)
    assert len(provider.calls) == 6
    assert provider.max_concurrent == 2


async def test_messages_arriving_while_all_slots_are_busy_fill_the_next_batch(
    start_pipeline, autojump_clock
):
    provider = ScriptedProvider(latency=1.0)
    pipeline = await start_pipeline(provider, batch_size=3, max_delay=0.1, max_in_flight=1)
    ids = await submit(pipeline, 1)
    await trio.sleep(0.2)  # the first batch is in flight, alone
    ids += await submit(pipeline, 3)
    await trio.sleep(5)
    assert provider.sent_sets() == [set(ids[:1]), set(ids[1:])]


async def test_submit_returns_before_the_provider_answers(start_pipeline):
    provider = ScriptedProvider(latency=math.inf)
    pipeline = await start_pipeline(provider, batch_size=1)
    [message_id] = await pipeline.accept()
    await trio.testing.wait_all_tasks_blocked()
    assert len(provider.calls) == 1  # in flight, and it never answers
    assert (await pipeline.repository.get(message_id)).status is Status.ACCEPTED
    assert pipeline.dispatcher.queue_depth == 1


async def test_full_queue_refuses_then_drains(start_pipeline, autojump_clock):
    provider = ScriptedProvider(latency=math.inf)
    pipeline = await start_pipeline(provider, batch_size=2, max_queue=4)
    await submit(pipeline, 4)
    with pytest.raises(QueueFull) as refused:
        await submit(pipeline, 1)
    assert refused.value.retry_after >= 1
    provider.released.set()
    await trio.sleep(2)
    assert pipeline.dispatcher.queue_depth == 0
    await submit(pipeline, 1)


async def test_refused_message_is_not_stored(start_pipeline):
    pipeline = await start_pipeline(ScriptedProvider(latency=math.inf), max_queue=1)
    await submit(pipeline, 1)
    with pytest.raises(QueueFull):
        await submit(pipeline, 1)
    assert len(await pipeline.repository.accepted()) == 1


async def test_drain_flushes_a_half_full_batch_at_once(start_pipeline, autojump_clock):
    pipeline = await start_pipeline(batch_size=10, max_delay=60)
    ids = await submit(pipeline, 3)
    await pipeline.dispatcher.drain()
    assert pipeline.provider.sent_sets() == [set(ids)]
    assert trio.current_time() < 1
    with pytest.raises(ShuttingDown):
        await submit(pipeline, 1)


async def test_drain_waits_for_batches_in_flight(start_pipeline, autojump_clock):
    provider = ScriptedProvider(latency=3.0)
    pipeline = await start_pipeline(provider, batch_size=1)
    await submit(pipeline, 2)
    await pipeline.dispatcher.drain()
    assert trio.current_time() == pytest.approx(3.0)
    assert (await pipeline.stats.snapshot()).success == 2


async def test_exhausted_batch_is_retried_later_not_dropped(start_pipeline, autojump_clock):
    provider = ScriptedProvider(failures=4)
    pipeline = await start_pipeline(provider, batch_size=1, max_attempts=3)
    ids = await submit(pipeline, 1)
    await trio.sleep(120)
    assert provider.sent_sets() == [set(ids)] * 5  # 3 attempts, parked, then 2 more
    snapshot = await pipeline.stats.snapshot()
    assert (snapshot.failed, snapshot.success) == (1, 1)
    assert pipeline.dispatcher.queue_depth == 0


async def test_messages_past_their_ttl_fail_with_a_reason(start_pipeline, autojump_clock):
    provider = ScriptedProvider(failures=math.inf)
    pipeline = await start_pipeline(provider, batch_size=1, max_attempts=2, message_ttl=600)
    ids = await submit(pipeline, 1)
    await trio.sleep(599)
    assert (await pipeline.repository.get(ids[0])).status is Status.ACCEPTED
    await trio.sleep(60)
    record = await pipeline.repository.get(ids[0])
    assert record.status is Status.FAILED
    assert "TTL" in (record.reason or "")
    assert pipeline.dispatcher.queue_depth == 0
    calls = len(provider.calls)
    await trio.sleep(4 * 300)  # four of the longest parking delays (requeue_max)
    assert len(provider.calls) == calls  # given up for good


async def test_a_submit_cancelled_while_saving_still_queues_what_was_stored(
    start_pipeline, autojump_clock
):
    pipeline = await start_pipeline(batch_size=1)
    with trio.CancelScope() as client_hung_up:
        client_hung_up.cancel()
        saved = await pipeline.dispatcher.submit("+4912345678", "hello")
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.sent_sets() == [set(saved.message_ids)]


async def test_a_message_the_provider_may_have_taken_gets_the_status_grace(
    start_pipeline, autojump_clock
):
    provider = ScriptedProvider(failures=math.inf, error=ProviderTimeout)
    pipeline = await start_pipeline(provider, batch_size=1, max_attempts=2, message_ttl=600,
                                    status_grace=1800)
    [message_id] = await submit(pipeline, 1)
    await trio.sleep(600 + 1800 - 60)
    assert (await pipeline.repository.get(message_id)).status is Status.ACCEPTED
    await trio.sleep(120)
    record = await pipeline.repository.get(message_id)
    assert record.status is Status.FAILED
    assert "may have reached it" in (record.reason or "")
    assert "grace of 1800 s" in (record.reason or "")


async def test_a_refused_message_fails_at_the_ttl_and_says_no_attempt_reached_it(
    start_pipeline, autojump_clock
):
    provider = ScriptedProvider(failures=math.inf)  # ProviderUnavailable: it did not take it
    pipeline = await start_pipeline(provider, batch_size=1, max_attempts=2, message_ttl=600,
                                    status_grace=1800)
    [message_id] = await submit(pipeline, 1)
    await trio.sleep(660)
    record = await pipeline.repository.get(message_id)
    assert record.status is Status.FAILED
    assert "no attempt reached it" in (record.reason or "")


async def test_a_late_report_within_the_grace_is_kept_and_nothing_counts_as_expired(
    start_pipeline, autojump_clock
):
    provider = ScriptedProvider(failures=math.inf, error=ProviderTimeout)
    pipeline = await start_pipeline(provider, batch_size=1, max_attempts=2, message_ttl=600,
                                    status_grace=1800)
    [message_id] = await submit(pipeline, 1)
    await trio.sleep(900)  # past the TTL, within the grace
    await pipeline.updater.apply({message_id: "DELIVERED"})
    await trio.sleep(3600)
    assert (await pipeline.repository.get(message_id)).status is Status.DELIVERED
    assert (await pipeline.stats.snapshot()).messages_expired == 0


async def test_expiry_counts_only_the_messages_it_changed(start_pipeline, autojump_clock):
    provider = ScriptedProvider(failures=math.inf)
    pipeline = await start_pipeline(provider, batch_size=2, max_attempts=1, message_ttl=600)
    reported, silent = await submit(pipeline, 2)
    await trio.sleep(500)  # the last resend before the TTL was at 316 s
    calls = len(provider.calls)
    await pipeline.updater.apply({reported: "DELIVERED"})
    await trio.sleep(200)
    assert len(provider.calls) == calls  # no resend saw the report before the expiry
    assert (await pipeline.repository.get(silent)).status is Status.FAILED
    assert (await pipeline.repository.get(reported)).status is Status.DELIVERED
    assert (await pipeline.stats.snapshot()).messages_expired == 1
    assert pipeline.dispatcher.queue_depth == 0


async def test_a_parked_batch_resends_only_the_messages_still_accepted(
    start_pipeline, autojump_clock
):
    provider = ScriptedProvider(failures=3)
    pipeline = await start_pipeline(provider, batch_size=2, max_attempts=3)
    taken, waiting = await submit(pipeline, 2)
    await trio.sleep(1 + 0.5 + 1 + 3)  # max delay, then two backoffs: parked now
    assert provider.sent_sets() == [{taken, waiting}] * 3
    await pipeline.updater.apply({taken: "CONFIRMED"})  # an answer lost, a report not
    await trio.sleep(10)
    assert provider.sent_sets()[3:] == [{waiting}]
    assert pipeline.dispatcher.queue_depth == 0


async def test_a_batch_whose_messages_were_all_reported_is_not_sent_again(
    start_pipeline, autojump_clock
):
    provider = ScriptedProvider(failures=3)
    pipeline = await start_pipeline(provider, batch_size=2, max_attempts=3)
    ids = await submit(pipeline, 2)
    await trio.sleep(6)
    await pipeline.updater.apply(dict.fromkeys(ids, "DELIVERED"))
    await trio.sleep(60)
    assert len(provider.calls) == 3
    assert pipeline.dispatcher.queue_depth == 0
    assert pipeline.dispatcher.in_flight == 0


class SlowInsertStore(MemoryStore):
    """Blocks each insert until ``go_on`` is set: a save still running when shutdown ends."""

    blocking = True

    def __init__(self) -> None:
        super().__init__(wall_clock)
        self.inserting = threading.Event()
        self.go_on = threading.Event()

    def insert(self, messages):
        self.inserting.set()
        self.go_on.wait(60)
        super().insert(messages)


async def test_a_message_stored_while_shutdown_finishes_is_still_answered_202(
    start_pipeline, nursery
):
    store = SlowInsertStore()
    pipeline = await start_pipeline(store=store)
    answers = []
    answered = trio.Event()

    async def post() -> None:
        answers.append(await pipeline.dispatcher.submit("+4912345678", "hello"))
        answered.set()

    nursery.start_soon(post)
    await trio.to_thread.run_sync(store.inserting.wait)
    async with trio.open_nursery() as stopping:
        stopping.start_soon(pipeline.dispatcher.drain)  # shutdown begins during the save
        await trio.testing.wait_all_tasks_blocked()
        assert not pipeline.dispatcher.accepting
        store.go_on.set()
    with trio.fail_after(5):
        await answered.wait()
    [saved] = answers
    assert not saved.replayed
    [message_id] = saved.message_ids
    # In the table either way: flushed to the provider, or waiting for the next start.
    assert (await pipeline.repository.get(message_id)).status is Status.ACCEPTED


async def test_expiry_waits_out_a_failing_store_and_the_batcher_goes_on(
    start_pipeline, autojump_clock
):
    store = FailingStore()
    provider = ScriptedProvider(failures=math.inf)
    pipeline = await start_pipeline(provider, batch_size=1, max_attempts=1, message_ttl=600,
                                    store=store)
    [message_id] = await submit(pipeline, 1)
    await trio.sleep(590)
    store.failing = True  # the disk fills before the TTL runs out
    await trio.sleep(110)
    assert store.refused > 1  # tried, and tried again
    store.failing = False
    await trio.sleep(120)
    record = await pipeline.repository.get(message_id)
    assert record.status is Status.FAILED
    assert (await pipeline.stats.snapshot()).messages_expired == 1
    assert pipeline.dispatcher.queue_depth == 0
    assert (await pipeline.dispatcher.submit(PHONE, "still serving")).message_ids


async def test_a_save_that_outlasts_the_call_timeout_is_answered_once_committed_never_503(
    start_pipeline, nursery, autojump_clock
):
    """A 503 tells the client to retry: said while the row may still commit, the retry
    would text twice under two ids. The POST waits for the commit instead."""
    store = SlowInsertStore()
    # the mock clock races on while the thread waits: no TTL may end meanwhile
    pipeline = await start_pipeline(store=store, message_ttl=1e9)
    answers: list = []
    answered = trio.Event()

    async def post() -> None:
        try:
            answers.append(await pipeline.dispatcher.submit(PHONE, "hello"))
        except Exception as error:
            answers.append(error)
        answered.set()

    nursery.start_soon(post)
    await trio.to_thread.run_sync(store.inserting.wait)
    await trio.sleep(45)  # past the mailbox's 30 s call timeout, on the mock clock
    assert answers == []  # still waiting for the commit
    store.go_on.set()
    await answered.wait()  # (no deadline: the mock clock jumps while the thread works)
    [saved] = answers
    assert not isinstance(saved, Exception), saved
    # read from the store itself: through the actor's thread, the mock clock would jump
    assert store.lookup(saved.message_ids[0]).status is Status.ACCEPTED


class ClaimCountingStore(MemoryStore):
    """Counts the claims that took messages, and how many each took."""

    def __init__(self) -> None:
        super().__init__(wall_clock)
        self.taken: list[int] = []

    def claim(self, instance, rules):
        claimed = super().claim(instance, rules)
        if claimed.messages:
            self.taken.append(len(claimed.messages))
        return claimed


async def test_one_claim_takes_a_batch_for_each_free_sender(start_pipeline, autojump_clock):
    store = ClaimCountingStore()
    provider = ScriptedProvider(latency=1.0)
    pipeline = await start_pipeline(provider, store=store, batch_size=2, max_in_flight=3,
                                    max_delay=60)
    await pipeline.dispatcher.submit_many([Outgoing(PHONE, f"m{n}") for n in range(6)])
    await trio.testing.wait_all_tasks_blocked()
    assert store.taken == [6]
    assert provider.max_concurrent == 3


async def test_the_next_round_is_claimed_while_this_one_is_sent(start_pipeline, autojump_clock):
    store = ClaimCountingStore()
    provider = ScriptedProvider(latency=1.0)
    pipeline = await start_pipeline(provider, store=store, batch_size=2, max_in_flight=1,
                                    max_delay=60)
    await pipeline.dispatcher.submit_many([Outgoing(PHONE, f"m{n}") for n in range(6)])
    await trio.sleep(10)
    assert store.taken == [4, 2]  # a round ahead, no further
    assert len(provider.calls) == 3
    assert provider.max_concurrent == 1
