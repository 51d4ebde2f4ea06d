"""The SQLite backend: durable settings, schema versioning, group commit, failures."""

import math
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from actors import repository
from smsproxy.errors import DuplicateMessage, StoreError
from smsproxy.models import Message, new_id
from smsproxy.statuses import Status
from smsproxy.stores.protocol import ClaimRules
from smsproxy.stores.sqlite import SCHEMA_VERSION, SqliteStore
from tests.fakes import InlineSqliteStore, ManualClock, ScriptedProvider, wall_clock


def make_message() -> Message:
    return Message(new_id(), "+4912345678", "hello", created_at=1.5)


def test_durable_settings_and_schema_version(tmp_path):
    SqliteStore(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_commits_are_synchronous_full(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    # 2 is FULL: every commit is fsynced, so a 202 survives power loss.
    assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)


def test_data_survives_reopening(tmp_path):
    message = make_message()
    store = SqliteStore(tmp_path / "s.db")
    with store.transaction():
        store.insert([message])
    store.close()
    reopened = SqliteStore(tmp_path / "s.db")
    assert reopened.accepted() == [message]


def test_a_newer_schema_is_refused(tmp_path):
    SqliteStore(tmp_path / "s.db").close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(tmp_path / "s.db")


def test_an_unopenable_path_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot open"):
        SqliteStore(tmp_path / "no-such-dir" / "s.db")


def test_a_failed_transaction_stores_nothing(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    message = make_message()
    with pytest.raises(RuntimeError), store.transaction():
        store.insert([message])
        raise RuntimeError("boom")
    assert store.lookup(message.id) is None


@pytest.mark.parametrize("count", [3, 1200], ids=["one statement", "several statements"])
def test_an_insert_that_meets_an_existing_id_takes_back_all_its_rows(tmp_path, count):
    store = SqliteStore(tmp_path / "s.db")
    existing = make_message()
    before = make_message()
    with store.transaction():
        store.insert([existing])
    messages = [make_message() for _ in range(count)]
    messages[-1] = Message(existing.id, "+4999999999", "again", 2.0)
    with store.transaction():
        store.insert([before])  # earlier work of the same transaction stays
        with pytest.raises(DuplicateMessage):
            store.insert(messages)
    assert store.statuses(m.id for m in messages) == {existing.id: Status.ACCEPTED}
    assert {m.id for m in store.accepted()} == {existing.id, before.id}


def test_attempts_are_kept_across_a_restart(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    message = make_message()
    rules = ClaimRules(1, max_delay=0.0, lease=30.0, ttl=1e12)
    with store.transaction():
        store.insert([message])
        store.claim("a", rules)
        store.park("a", [message.id], 3, "down", False, 0.0, 0.0, {})
    store.close()
    store = SqliteStore(tmp_path / "s.db")
    with store.transaction():
        store.claim("b", rules)
        store.mark_sent("b", [message.id], 2, {}, {})
    [loaded] = store.accepted()
    assert loaded.attempts == 5


def test_lookups_of_many_ids_work_past_the_parameter_limit(tmp_path):
    store = SqliteStore(tmp_path / "s.db")
    messages = [make_message() for _ in range(1200)]
    with store.transaction():
        store.insert(messages)
    assert len(store.statuses([m.id for m in messages] + [new_id()])) == 1200


class CountingSqliteStore(SqliteStore):
    transactions = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.transactions += 1
        with super().transaction():
            yield


async def test_group_commit_makes_far_fewer_transactions_than_saves(nursery, tmp_path):
    store = CountingSqliteStore(tmp_path / "s.db")
    repo = await nursery.start(repository.run, lambda: store)
    async with trio.open_nursery() as savers:
        for _ in range(500):
            savers.start_soon(repo.save, make_message())
    assert len(await repo.accepted()) == 500
    assert store.transactions <= 25, store.transactions


class BrokenOnceStore(CountingSqliteStore):
    def __init__(self, path):
        super().__init__(path)
        self.broken = True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self.broken:
            self.broken = False
            raise StoreError("SQLite: disk I/O error")
        with super().transaction():
            yield


async def test_a_store_failure_fails_its_group_and_the_actor_goes_on(nursery, tmp_path):
    repo = await nursery.start(repository.run, lambda: BrokenOnceStore(tmp_path / "s.db"))
    message = make_message()
    with pytest.raises(StoreError):
        await repo.save(message)
    assert (await repo.get(message.id)).status is Status.NOT_FOUND
    await repo.save(message)
    assert (await repo.get(message.id)).status is Status.ACCEPTED


async def test_outage_then_recovery_delivers_everything(start_pipeline, tmp_path, autojump_clock):
    provider = ScriptedProvider(failures=10)
    pipeline = await start_pipeline(provider, batch_size=5, max_attempts=3,
                                    store=InlineSqliteStore(tmp_path / "s.db", wall_clock))
    ids = await pipeline.accept(20)
    await trio.sleep(600)
    sent = {i for batch in provider.sent_ids()[10:] for i in batch}
    assert sent == set(ids)
    assert pipeline.dispatcher.queue_depth == 0
    snapshot = await pipeline.stats.snapshot()
    assert snapshot.messages_sent == 20
    assert snapshot.failed >= 1


async def test_provider_that_never_recovers_fails_messages_after_ttl(
    start_pipeline, tmp_path, autojump_clock
):
    provider = ScriptedProvider(failures=math.inf)
    pipeline = await start_pipeline(provider, batch_size=5, max_attempts=2, message_ttl=900,
                                    store=InlineSqliteStore(tmp_path / "s.db", wall_clock))
    ids = await pipeline.accept(3)
    await trio.sleep(1000)
    for message_id in ids:
        record = await pipeline.repository.get(message_id)
        assert record.status is Status.FAILED
        assert "TTL of 900 s" in (record.reason or "")
        assert "failure" in (record.reason or "")  # the provider's last error
    assert await pipeline.repository.accepted() == []


def test_a_version_1_database_is_migrated_and_keeps_its_messages(tmp_path):
    from smsproxy.stores.sqlite import schema as sqlite_store

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(sqlite_store.MIGRATIONS[1] + "PRAGMA user_version = 1;")
    old.execute(
        "INSERT INTO messages (id, phone_number, content, created_at, status, attempts,"
        " updated_at) VALUES ('m-1', '+4912345', 'hello', 1.5, 'ACCEPTED', 2, 1.5)"
    )
    old.commit()
    old.close()
    store = SqliteStore(path)
    assert store.accepted() == [Message("m-1", "+4912345", "hello", 1.5, attempts=2)]
    version = store._db.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION
    with store.transaction():
        store.insert([make_message()])  # the new layout takes new rows
    with pytest.raises(DuplicateMessage), store.transaction():
        store.insert([Message("m-1", "+4912345", "again", 2.0)])


def test_a_file_of_the_release_before_the_one_engine_is_upgraded_in_place(tmp_path):
    """Its ACCEPTED messages are sent as before, their attempts kept; one an attempt was
    made for counts as one the provider may have; a scheduled one waits for its time."""
    path = tmp_path / "old.sqlite3"
    shutil.copy(Path(__file__).parent / "data" / "schema_v9.sqlite3", path)
    clock = ManualClock()
    clock.now = 1_764_180_010.0
    store = SqliteStore(path, clock)
    try:
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        with store.transaction():
            taken = store.claim("a", ClaimRules(10, max_delay=1.0, lease=30.0, ttl=3600.0))
            assert {m.id: m.attempts for m in taken.messages} == {"waiting": 0, "tried": 2}
            store.park("a", ["waiting", "tried"], 1, "down", False, 5, 300, {})
        clock.now = 1_764_180_000.0 + 3600 + 1
        with store.transaction():
            lapsed = {x.message_id: x.maybe_taken for x in store.lapsed(3600, 1800, 10)}
        assert lapsed == {"waiting": False}  # "tried" gets the grace
        clock.now = 1_764_190_000.0
        with store.transaction():
            [scheduled] = store.claim("a", ClaimRules(10, 0.0, 30.0, 3600.0)).messages
        assert scheduled.id == "scheduled"
        assert store.lookup("done").status is Status.DELIVERED
        with store.transaction():  # the history keeps its ids and its places in the feed
            history = store.events_of("done")
            feed = store.feed(0, 10)
        assert [(e.event_id, e.sequence, e.status, e.position) for e in history] == [
            ("01a237da-4944-7135-bac7-888893a44ca1", 1, Status.ACCEPTED, 4),
            ("01a237da-4945-7e14-8814-13b043830fc3", 2, Status.DELIVERED, 5)]
        assert [e.message_id for e in feed] == ["waiting", "tried", "scheduled", "done", "done"]
    finally:
        store.close()
