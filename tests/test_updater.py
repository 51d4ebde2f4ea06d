"""The updater: provider statuses applied; bad ones reported, never raised."""

import math
from functools import partial

import pytest
import structlog
import trio
import trio.testing

from actors import repository, updater
from smsproxy.errors import StoreError
from smsproxy.models import Message, new_id
from smsproxy.records import UpdateRejected
from smsproxy.statuses import Status
from smsproxy.stores import MemoryStore
from tests.fakes import FailingStore, drain_channel


@pytest.fixture
async def errors():
    return trio.open_memory_channel[UpdateRejected](math.inf)


@pytest.fixture
async def updates(nursery, repo, stats_handle, errors):
    return await nursery.start(updater.run, repo, stats_handle, errors[0])


async def saved(repo, count: int) -> list[str]:
    messages = [Message(new_id(), "+4912345", "hi", 0.0) for _ in range(count)]
    await repo.save(*messages)
    return [m.id for m in messages]




async def test_statuses_are_applied(repo, updates, errors):
    a, b, c = await saved(repo, 3)
    await updates.submit({a: "CONFIRMED", b: "DELIVERED", c: "FAILED"})
    await updates.flush()
    assert [(await repo.get(i)).status for i in (a, b, c)] == [
        Status.CONFIRMED, Status.DELIVERED, Status.FAILED,
    ]
    assert drain_channel(errors[1]) == []


async def test_unknown_status_is_reported_and_the_rest_applied(repo, updates, errors):
    a, b = await saved(repo, 2)
    await updates.submit({a: "SENT_TO_MARS", b: "DELIVERED"})
    await updates.flush()
    [rejected] = drain_channel(errors[1])
    assert (rejected.message_id, rejected.status) == (a, "SENT_TO_MARS")
    assert "unknown provider status" in rejected.reason
    assert (await repo.get(a)).status is Status.ACCEPTED
    assert (await repo.get(b)).status is Status.DELIVERED


async def test_flush_waits_for_reports_submitted_before_it(repo, updates, errors):
    ids = await saved(repo, 50)
    for message_id in ids:
        await updates.submit({message_id: "DELIVERED"})
    await updates.flush()
    assert {(await repo.get(i)).status for i in ids} == {Status.DELIVERED}


async def test_final_status_overwrite_is_reported_and_the_updater_goes_on(repo, updates, errors):
    a, b = await saved(repo, 2)
    await updates.submit({a: "DELIVERED"})
    await updates.submit({a: "FAILED"})
    await updates.submit({b: "CONFIRMED"})
    await updates.flush()
    [rejected] = drain_channel(errors[1])
    assert (rejected.message_id, rejected.status) == (a, "FAILED")
    assert "final" in rejected.reason
    assert (await repo.get(a)).status is Status.DELIVERED
    assert (await repo.get(b)).status is Status.CONFIRMED


async def test_unknown_message_is_reported(repo, updates, errors):
    stranger = new_id()
    await updates.submit({stranger: "DELIVERED"})
    await updates.flush()
    [rejected] = drain_channel(errors[1])
    assert rejected.message_id == stranger
    assert (await repo.get(stranger)).status is Status.NOT_FOUND


async def test_non_string_status_is_reported_not_raised(repo, updates, errors):
    [a] = await saved(repo, 1)
    await updates.submit({a: None})  # type: ignore[dict-item]
    await updates.flush()
    assert [r.message_id for r in drain_channel(errors[1])] == [a]


async def test_rejections_are_logged_and_counted(nursery, stats_handle, repo, errors):
    updates = await nursery.start(updater.run, repo, stats_handle, errors[0])
    nursery.start_soon(updater.report_errors, errors[1], stats_handle)
    await updates.submit({new_id(): "DELIVERED", new_id(): "NOPE"})
    await updates.flush()
    await trio.testing.wait_all_tasks_blocked()  # the reporter and stats are pure trio
    assert (await stats_handle.snapshot()).updates_rejected == 2


@pytest.fixture
async def memory_repo(nursery):
    """The linger is the updater's own: one backend will do, and the memory store
    keeps worker threads out of the way of the autojump clock."""
    return await nursery.start(repository.run, MemoryStore)


@pytest.fixture
def start_lingering(nursery, memory_repo, stats_handle, errors):
    """Start an updater over the memory repository that lingers ``linger`` seconds."""

    async def start(linger: float):
        return await nursery.start(partial(
            updater.run, memory_repo, stats_handle, errors[0], linger=linger,
        ))

    return start


async def test_reports_within_the_linger_share_one_repository_request(
    memory_repo, start_lingering, autojump_clock
):
    repo = memory_repo
    a, b = await saved(repo, 2)
    requests = count_apply_requests(repo)
    updates = await start_lingering(0.1)
    await updates.submit({a: "CONFIRMED", b: "CONFIRMED"})
    await trio.sleep(0.05)
    await updates.submit({a: "DELIVERED"})
    await trio.sleep(0.06)  # the linger is over: applied by now
    assert [(await repo.get(i)).status for i in (a, b)] == [Status.DELIVERED, Status.CONFIRMED]
    assert requests == [[(a, Status.CONFIRMED), (b, Status.CONFIRMED), (a, Status.DELIVERED)]]


async def test_nothing_is_applied_before_the_linger_is_over(
    memory_repo, start_lingering, autojump_clock
):
    repo = memory_repo
    [a] = await saved(repo, 1)
    updates = await start_lingering(0.1)
    await updates.submit({a: "DELIVERED"})
    await trio.sleep(0.09)
    assert (await repo.get(a)).status is Status.ACCEPTED
    await trio.sleep(0.02)
    assert (await repo.get(a)).status is Status.DELIVERED


async def test_enough_updates_end_the_linger_at_once(
    memory_repo, start_lingering, autojump_clock
):
    """A provider that waits for each answer is not held to a report per linger."""
    repo = memory_repo
    ids = await saved(repo, updater.ENOUGH_TO_APPLY)
    requests = count_apply_requests(repo)
    updates = await start_lingering(60)
    half = updater.ENOUGH_TO_APPLY // 2
    with trio.fail_after(1):  # answered at once, not after 60 s
        async with trio.open_nursery() as providers:
            for part in (ids[:half], ids[half:]):
                providers.start_soon(updates.apply, dict.fromkeys(part, "DELIVERED"))
    assert [len(r) for r in requests] == [updater.ENOUGH_TO_APPLY]
    assert {(await repo.get(i)).status for i in ids} == {Status.DELIVERED}


async def test_a_group_short_of_enough_updates_lingers(
    memory_repo, start_lingering, autojump_clock
):
    repo = memory_repo
    ids = await saved(repo, updater.ENOUGH_TO_APPLY - 1)
    updates = await start_lingering(60)
    await updates.submit(dict.fromkeys(ids, "DELIVERED"))
    await trio.sleep(59)
    assert (await repo.get(ids[0])).status is Status.ACCEPTED


async def test_a_flush_does_not_wait_for_the_linger(
    memory_repo, start_lingering, autojump_clock
):
    repo = memory_repo
    [a] = await saved(repo, 1)
    updates = await start_lingering(60)
    await updates.submit({a: "DELIVERED"})
    with trio.fail_after(1):
        await updates.flush()
    assert (await repo.get(a)).status is Status.DELIVERED


async def test_closing_applies_what_the_updater_holds_at_once(
    nursery, memory_repo, stats_handle, errors, autojump_clock
):
    repo = memory_repo
    [a] = await saved(repo, 1)
    done = trio.Event()

    async def run_updater(task_status=trio.TASK_STATUS_IGNORED):
        await updater.run(repo, stats_handle, errors[0], linger=60, task_status=task_status)
        done.set()

    updates = await nursery.start(run_updater)
    await updates.submit({a: "DELIVERED"})
    await updates.close()
    with trio.fail_after(1):
        await done.wait()
    assert (await repo.get(a)).status is Status.DELIVERED


def count_apply_requests(repo) -> list[list[tuple[str, Status]]]:
    """Record the update lists the updater hands the repository, one per request."""
    requests: list[list[tuple[str, Status]]] = []
    apply_in_order = repo.apply_in_order

    async def recording(updates):
        requests.append(list(updates))
        return await apply_in_order(updates)

    repo.apply_in_order = recording
    return requests


@pytest.fixture
async def failing_store():
    return FailingStore()


@pytest.fixture
async def on_failing_store(nursery, failing_store, stats_handle, errors):
    """An updater over a store that fails while ``failing_store.failing`` is set."""
    repo = await nursery.start(partial(
        repository.run, lambda: failing_store, on_store_error=stats_handle.record,
    ))
    updates = await nursery.start(updater.run, repo, stats_handle, errors[0])
    return repo, updates


async def test_a_failing_store_fails_the_waiting_caller_and_the_updater_goes_on(
    on_failing_store, failing_store, stats_handle, autojump_clock
):
    repo, updates = on_failing_store
    [a] = await saved(repo, 1)
    failing_store.failing = True
    with pytest.raises(StoreError):
        await updates.apply({a: "DELIVERED"})
    failing_store.failing = False
    assert (await repo.get(a)).status is Status.ACCEPTED  # the caller retries, not the updater
    await updates.apply({a: "DELIVERED"})  # the updater is still serving
    assert (await repo.get(a)).status is Status.DELIVERED
    assert (await stats_handle.snapshot()).store_errors == 1


async def test_reports_no_one_can_retry_are_held_until_the_store_takes_them(
    on_failing_store, failing_store, autojump_clock
):
    repo, updates = on_failing_store
    a, b = await saved(repo, 2)
    failing_store.failing = True
    await updates.submit({a: "CONFIRMED"})
    await trio.sleep(10)  # several retries, with growing pauses, all refused
    refused = failing_store.refused
    assert refused >= 3
    await trio.sleep(10)
    assert failing_store.refused - refused <= 1  # the pauses grow: fewer tries per second
    await updates.submit({b: "DELIVERED"})  # later reports join the held ones
    failing_store.failing = False
    await trio.sleep(updater.RETRY_MAX)
    assert (await repo.get(a)).status is Status.CONFIRMED
    assert (await repo.get(b)).status is Status.DELIVERED


async def test_held_reports_are_tried_once_more_at_shutdown(
    nursery, failing_store, stats_handle, errors, autojump_clock
):
    repo = await nursery.start(repository.run, lambda: failing_store)
    done = trio.Event()

    async def run_updater(task_status=trio.TASK_STATUS_IGNORED):
        await updater.run(repo, stats_handle, errors[0], task_status=task_status)
        done.set()

    updates = await nursery.start(run_updater)
    [a] = await saved(repo, 1)
    failing_store.failing = True
    await updates.submit({a: "DELIVERED"})
    await trio.testing.wait_all_tasks_blocked()
    failing_store.failing = False
    await updates.close()
    with trio.fail_after(0.1):  # no waiting for the retry pause
        await done.wait()
    assert (await repo.get(a)).status is Status.DELIVERED


async def test_a_report_of_many_unknown_ids_is_one_warning_with_their_count(
        nursery, repo, stats_handle):
    errors_in, errors_out = trio.open_memory_channel[UpdateRejected](math.inf)
    updates = await nursery.start(updater.run, repo, stats_handle, errors_in)
    [known] = await saved(repo, 1)
    unknown = {new_id(): "DELIVERED" for _ in range(17_500)}
    with structlog.testing.capture_logs() as logs:
        nursery.start_soon(updater.report_errors, errors_out, stats_handle)
        await updates.submit({**unknown, known: "SENT_TO_MARS"})
        await updates.flush()
        await trio.testing.wait_all_tasks_blocked()
    rejections = [e for e in logs if e["event"] == "status_update_rejected"]
    assert sorted((e["kind"], e["count"]) for e in rejections) == [
        ("unknown_message", 17_500), ("unknown_status", 1)]
    [many] = [e for e in rejections if e["kind"] == "unknown_message"]
    assert len(many["message_ids"]) == 5 and set(many["message_ids"]) <= set(unknown)
    assert (await stats_handle.snapshot()).updates_rejected == 17_501
