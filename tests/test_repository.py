"""The repository rules of docs/design.md, through the repository actor's handle."""

import threading
from functools import partial

import pytest
import structlog
import trio

from actors import repository
from actors.errors import ActorUnavailable
from smsproxy.errors import DuplicateMessage, FinalStatusLocked, UnknownMessage
from smsproxy.models import Message, Saved, new_id
from smsproxy.statuses import FINAL_STATUSES, Status
from tests.fakes import CountingStore


def make_message(message_id: str | None = None) -> Message:
    return Message(message_id or new_id(), "+4912345678", "hello", created_at=0.0)


async def test_saved_message_is_accepted(repo):
    message = make_message()
    await repo.save(message)
    assert (await repo.get(message.id)).status is Status.ACCEPTED


async def test_unknown_id_is_not_found_not_an_error(repo):
    record = await repo.get(new_id())
    assert record.status is Status.NOT_FOUND


async def test_duplicate_save_fails_and_keeps_the_first(repo):
    message = make_message()
    await repo.save(message)
    await repo.update(message.id, Status.CONFIRMED)
    with pytest.raises(DuplicateMessage):
        await repo.save(make_message(message.id))
    assert (await repo.get(message.id)).status is Status.CONFIRMED


async def test_save_of_several_is_all_or_nothing(repo):
    existing = make_message()
    await repo.save(existing)
    fresh = make_message()
    with pytest.raises(DuplicateMessage):
        await repo.save(fresh, existing)
    assert (await repo.get(fresh.id)).status is Status.NOT_FOUND


async def test_a_save_naming_one_id_twice_fails_naming_it_and_stores_nothing(repo):
    fresh, repeated = make_message(), make_message()
    with pytest.raises(DuplicateMessage, match=repeated.id):
        await repo.save(fresh, repeated, make_message(repeated.id))
    assert await repo.accepted() == []


async def test_update_changes_status(repo):
    message = make_message()
    await repo.save(message)
    await repo.update(message.id, Status.CONFIRMED)
    assert (await repo.get(message.id)).status is Status.CONFIRMED
    await repo.update(message.id, Status.DELIVERED)
    assert (await repo.get(message.id)).status is Status.DELIVERED


async def test_update_of_unknown_id_fails_and_stores_nothing(repo):
    message_id = new_id()
    with pytest.raises(UnknownMessage):
        await repo.update(message_id, Status.CONFIRMED)
    assert (await repo.get(message_id)).status is Status.NOT_FOUND


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
@pytest.mark.parametrize("attempted", [Status.CONFIRMED, Status.FAILED, Status.DELIVERED])
async def test_final_status_cannot_be_overwritten(repo, final, attempted):
    message = make_message()
    await repo.save(message)
    await repo.update(message.id, final, reason="first")
    with pytest.raises(FinalStatusLocked):
        await repo.update(message.id, attempted, reason="second")
    record = await repo.get(message.id)
    assert (record.status, record.reason) == (final, "first")


async def test_update_many_applies_what_the_rules_allow(repo):
    ok, final = make_message(), make_message()
    await repo.save(ok, final)
    await repo.update(final.id, Status.DELIVERED)
    unknown = new_id()
    refused = await repo.update_many(
        {ok.id: Status.CONFIRMED, final.id: Status.FAILED, unknown: Status.CONFIRMED}
    )
    assert set(refused) == {final.id, unknown}
    assert isinstance(refused[final.id], FinalStatusLocked)
    assert isinstance(refused[unknown], UnknownMessage)
    assert (await repo.get(ok.id)).status is Status.CONFIRMED
    assert (await repo.get(final.id)).status is Status.DELIVERED


async def test_failed_status_keeps_its_reason(repo):
    message = make_message()
    await repo.save(message)
    await repo.update(message.id, Status.FAILED, reason="provider gave up")
    assert (await repo.get(message.id)).reason == "provider gave up"


async def test_accepted_lists_only_messages_still_accepted(repo):
    waiting, confirmed = make_message(), make_message()
    await repo.save(waiting, confirmed)
    await repo.update(confirmed.id, Status.CONFIRMED)
    assert [m.id for m in await repo.accepted()] == [waiting.id]


async def test_many_concurrent_tasks_lose_nothing(repo):
    messages = [make_message() for _ in range(500)]

    async def save_then_deliver(message: Message) -> None:
        await repo.save(message)
        await repo.update(message.id, Status.CONFIRMED)
        await repo.update(message.id, Status.DELIVERED)

    async with trio.open_nursery() as nursery:
        for message in messages:
            nursery.start_soon(save_then_deliver, message)
    for message in messages:
        assert (await repo.get(message.id)).status is Status.DELIVERED


async def test_concurrent_saves_share_transactions(nursery):
    store = CountingStore()
    repo = await nursery.start(repository.run, lambda: store)
    messages = [make_message() for _ in range(1000)]
    async with trio.open_nursery() as savers:
        for message in messages:
            savers.start_soon(repo.save, message)
    assert len(await repo.accepted()) == 1000
    # One transaction per group of waiting requests, not one per save.
    assert store.transactions <= 10


async def test_the_saves_of_a_group_reach_the_store_as_one_insert(nursery):
    store = CountingStore()
    repo = await nursery.start(repository.run, lambda: store)
    async with trio.open_nursery() as savers:
        for _ in range(300):
            savers.start_soon(repo.save, make_message())
    assert len(await repo.accepted()) == 300
    assert store.inserts == store.transactions - 1  # the last one is accepted()'s
    assert store.transactions <= 5


async def saved_concurrently(repo, *messages: Message) -> list[object]:
    """Save each message in its own task, all at once: each one's Saved or error."""
    outcomes: list[object] = [None] * len(messages)

    async def save(index: int) -> None:
        try:
            outcomes[index] = await repo.save(messages[index])
        except DuplicateMessage as error:
            outcomes[index] = error

    async with trio.open_nursery() as savers:
        for index in range(len(messages)):
            savers.start_soon(save, index)
    return outcomes


async def test_a_duplicate_in_a_group_fails_only_its_own_save(repo):
    existing = make_message()
    await repo.save(existing)
    fresh = [make_message() for _ in range(3)]
    outcomes = await saved_concurrently(repo, *fresh, make_message(existing.id))
    assert [type(o) for o in outcomes] == [Saved, Saved, Saved, DuplicateMessage]
    for message in fresh:
        assert (await repo.get(message.id)).status is Status.ACCEPTED
    assert len(await repo.accepted()) == 4


async def test_a_group_that_saves_one_id_twice_keeps_one_of_them(repo):
    first, other = make_message(), make_message()
    twin = Message(first.id, "+4999999999", "other", created_at=0.0)
    outcomes = await saved_concurrently(repo, first, twin, other)
    assert isinstance(outcomes[2], Saved)
    assert sorted(type(o).__name__ for o in outcomes[:2]) == ["DuplicateMessage", "Saved"]
    assert sorted(m.id for m in await repo.accepted()) == sorted([first.id, other.id])


async def test_closed_repository_is_unavailable(nursery):
    repo = await nursery.start(repository.run, CountingStore)
    await repo.close()
    with pytest.raises(ActorUnavailable):
        await repo.get(new_id())


async def test_what_the_store_found_at_open_is_logged_once(nursery):
    store = CountingStore()
    store.notices = ("autovacuum is off",)
    with structlog.testing.capture_logs() as logs:
        handle = await nursery.start(repository.run, lambda: store)
        await handle.ping()
    assert [e["notice"] for e in logs if e["event"] == "store_notice"] == ["autovacuum is off"]


class _HeldLookups(CountingStore):
    """Lookups wait until released, as behind a lock in the database (in the store's
    thread, as a file or a database server is)."""

    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def lookup(self, message_id: str):  # type: ignore[no-untyped-def]
        self.release.wait(timeout=10)
        return super().lookup(message_id)


@pytest.mark.parametrize("call_timeout", [2.0, 7.0])
async def test_a_request_waits_for_the_store_as_long_as_store_timeout_says(
        call_timeout, autojump_clock):
    from actors.errors import ActorTimeout

    store = _HeldLookups()
    async with trio.open_nursery() as nursery:
        repo = await nursery.start(partial(repository.run, lambda: store,
                                           call_timeout=call_timeout))
        started = trio.current_time()
        with pytest.raises(ActorTimeout):
            await repo.get(new_id())
        assert trio.current_time() - started == pytest.approx(call_timeout)
        store.release.set()
        await repo.close()
