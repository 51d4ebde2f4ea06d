"""Retention: final messages, their history and old idempotency keys are deleted in
small batches after ``--retention``, on every store backend; then GET answers
NOT_FOUND, as for an id never accepted."""

import sqlite3
import time

import pytest
import trio

from actors.supervisor import running
from smsproxy.config import Config
from smsproxy.models import Idempotency, Message, new_ids
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores.sqlite import SqliteStore
from tests.fakes import wall_clock

PHONE = "+4912345678"
DAY = 86_400.0
NOW = 1_764_180_000.0


def messages(count: int, at: float, callback_url: str | None = None) -> list[Message]:
    return [Message(i, PHONE, "hello", at, callback_url=callback_url) for i in new_ids(count)]


async def saved_with(repo, status: Status | None, at: float, **options) -> Message:
    [message] = messages(1, at, **options)
    await repo.save(message)
    if status is Status.DELIVERED:
        await repo.update(message.id, Status.CONFIRMED)
    if status is not None:
        await repo.update(message.id, status)
    return message


async def test_final_messages_older_than_the_window_go_with_their_history(repo):
    cutoff = NOW - 30 * DAY
    delivered = await saved_with(repo, Status.DELIVERED, cutoff - 1)
    failed = await saved_with(repo, Status.FAILED, cutoff - 1)
    confirmed = await saved_with(repo, Status.CONFIRMED, cutoff - 1)
    waiting = await saved_with(repo, None, cutoff - 1)
    recent = await saved_with(repo, Status.DELIVERED, cutoff + 1)
    before = await repo.feed(0, 100)

    assert await repo.purge(cutoff, 100) == 3

    for gone in (delivered, failed, confirmed):
        assert (await repo.get(gone.id)).status is Status.NOT_FOUND
        assert await repo.history(gone.id) == []
    assert (await repo.get(waiting.id)).status is Status.ACCEPTED
    assert (await repo.get(recent.id)).status is Status.DELIVERED
    kept = {waiting.id, recent.id}
    assert await repo.feed(0, 100) == [e for e in before if e.message_id in kept]
    assert await repo.purge(cutoff, 100) == 0


async def test_each_purge_deletes_at_most_its_limit(repo):
    for _ in range(5):
        await saved_with(repo, Status.FAILED, NOW - 2 * DAY)
    assert [await repo.purge(NOW - DAY, 2) for _ in range(4)] == [2, 2, 1, 0]


async def test_a_message_whose_callbacks_are_pending_is_kept_until_they_settle(repo):
    message = await saved_with(repo, Status.FAILED, NOW - 2 * DAY,
                               callback_url="https://shop.example/status")
    assert await repo.purge(NOW - DAY, 100) == 0
    later = time.time() + 60  # events are dated by the repository's (real) clock
    while claimed := await repo.claim_callbacks("me", later, 10, 30.0, 10):
        for callback in claimed:
            await repo.settle_callback(callback.event.message_id, callback.event.sequence,
                                       "delivered", 1, later, None)
    assert await repo.purge(NOW - DAY, 100) == 1
    assert (await repo.get(message.id)).status is Status.NOT_FOUND


async def test_the_feed_goes_on_past_purged_events(repo):
    old = await saved_with(repo, Status.FAILED, NOW - 2 * DAY)
    young = await saved_with(repo, None, NOW)
    [accepted_young] = [e for e in await repo.feed(0, 100) if e.message_id == young.id]
    await repo.purge(NOW - DAY, 100)
    await repo.update(young.id, Status.CONFIRMED)
    page = await repo.feed(0, 1)
    assert page == [accepted_young]
    [confirmed] = await repo.feed(page[-1].position, 10)
    assert (confirmed.message_id, confirmed.status) == (young.id, Status.CONFIRMED)
    assert old.id not in {e.message_id for e in await repo.feed(0, 100)}


async def test_old_idempotency_keys_go_a_batch_at_a_time(repo):
    for n in range(3):
        await repo.save(*messages(1, NOW), idempotency=Idempotency("client", f"key-{n}", "print"),
                        at=NOW - 2)
    await repo.save(*messages(1, NOW), idempotency=Idempotency("client", "young", "print"),
                    at=NOW)
    assert [await repo.forget_idempotency(NOW - 1, 2) for _ in range(3)] == [2, 1, 0]


def test_the_sqlite_file_stops_growing_once_the_window_is_full(tmp_path):
    """Deleted rows free their pages, and the next messages reuse them."""
    path = tmp_path / "retention.db"
    store = SqliteStore(path)
    repository = Repository(store)

    def fill(at: float) -> None:
        for _ in range(10):
            batch = messages(200, at)
            with store.transaction():
                repository.save(batch)
            with store.transaction():
                repository.update_many({m.id: Status.FAILED for m in batch})

    def pages() -> int:
        store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return int(store._db.execute("PRAGMA page_count").fetchone()[0])

    fill(NOW - 2 * DAY)
    full = pages()
    with store.transaction():
        assert store.purge(NOW - DAY, 10_000) == 2000
    fill(NOW)
    store.close()
    pages_after = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    assert pages_after <= full * 1.05, (full, pages_after)


@pytest.mark.parametrize("retention", [60.0])
async def test_the_service_purges_by_itself(autojump_clock, retention):
    config = Config(store="memory://", batch_size=1, max_delay=0.0, status_linger=0.0,
                    retention=retention)
    async with running(config, wall_clock=wall_clock) as service:
        [message_id] = (await service.dispatcher.submit(PHONE, "hello")).message_ids
        await trio.sleep(1)  # the simulator delivers at once
        await trio.sleep(retention / 2)
        assert (await service.repository.get(message_id)).status is Status.DELIVERED
        await trio.sleep(retention)
        assert (await service.repository.get(message_id)).status is Status.NOT_FOUND
        assert (await service.stats.snapshot()).messages_purged == 1
