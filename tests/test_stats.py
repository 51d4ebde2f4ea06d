"""Statistics: per-batch counting as the original did, and never in the POST's way."""

import trio
import trio.testing

from actors._mailbox import Mailbox
from actors.stats import StatsHandle
from smsproxy.models import BatchFailed, BatchSucceeded
from smsproxy.records import StoreFailed, UpdateRejected
from tests.fakes import ScriptedProvider


async def test_counts_per_batch_and_percentage(stats_handle):
    stats_handle.record(BatchSucceeded("a", 10, 1))
    stats_handle.record(BatchSucceeded("b", 5, 2))
    stats_handle.record(BatchSucceeded("c", 1, 1))
    stats_handle.record(BatchFailed("d", 7, 3, "boom"))
    stats_handle.record(UpdateRejected("x", "BOGUS", "unknown status"))
    snapshot = await stats_handle.snapshot()
    assert (snapshot.success, snapshot.failed) == (3, 1)
    assert snapshot.success_percentage == 75.0
    assert snapshot.batches_sent == 3
    assert snapshot.messages_sent == 16
    assert snapshot.messages_parked == 7
    assert snapshot.attempts == 1 + 2 + 1 + 3
    assert snapshot.success_by_attempt == {1: 2, 2: 1}
    assert snapshot.last_error == "boom"
    assert snapshot.updates_rejected == 1
    assert snapshot.provider_calls_saved == 16 - 3


async def test_no_batches_means_zero_percent(stats_handle):
    snapshot = await stats_handle.snapshot()
    assert (snapshot.success, snapshot.failed, snapshot.success_percentage) == (0, 0, 0.0)


async def test_percentage_is_rounded(stats_handle):
    for name in "ab":
        stats_handle.record(BatchSucceeded(name, 1, 1))
    stats_handle.record(BatchFailed("c", 1, 1, "x"))
    assert (await stats_handle.snapshot()).success_percentage == 66.67


async def test_retried_batch_records_one_success_with_its_attempts(start_pipeline, autojump_clock):
    pipeline = await start_pipeline(ScriptedProvider(failures=2), batch_size=1, max_attempts=3)
    await pipeline.dispatcher.submit("+4912345", "hello")
    await trio.sleep(30)
    snapshot = await pipeline.stats.snapshot()
    assert (snapshot.success, snapshot.failed, snapshot.attempts) == (1, 0, 3)
    assert snapshot.success_by_attempt == {3: 1}


async def test_a_stats_actor_that_never_reads_delays_no_post(start_pipeline, autojump_clock):
    mailbox, _inbox = Mailbox.open("stats")  # nobody serves this inbox
    pipeline = await start_pipeline(batch_size=1, stats_handle=StatsHandle(mailbox))
    for i in range(50):
        await pipeline.dispatcher.submit("+4912345", f"m{i}")
    await trio.testing.wait_all_tasks_blocked()
    assert trio.current_time() == 0
    assert len(pipeline.provider.calls) == 50


async def test_calls_saved_never_goes_negative_during_an_outage(stats_handle):
    stats_handle.record(BatchFailed("a", 50, 3, "down"))
    stats_handle.record(BatchFailed("a", 50, 3, "down"))
    snapshot = await stats_handle.snapshot()
    assert snapshot.provider_calls_saved == 0
    assert (snapshot.attempts, snapshot.messages_parked, snapshot.messages_sent) == (6, 100, 0)


async def test_store_failures_are_counted_by_operation(stats_handle):
    stats_handle.record(StoreFailed(("save", "apply_in_order")))
    snapshot = await stats_handle.snapshot()
    assert snapshot.store_errors == 1
    text = (await stats_handle.exposition(0, 0)).decode()
    assert 'smsproxy_store_errors_total{operation="save"} 1.0' in text
    assert 'smsproxy_store_errors_total{operation="apply_in_order"} 1.0' in text
