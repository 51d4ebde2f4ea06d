"""The PostgreSQL backend against a real server: durability settings, migrations that
several instances may run at once, and a server that goes away and comes back."""

import threading

import psycopg
import pytest
import trio

from smsproxy.errors import DuplicateMessage, StoreError, StoreUnusable
from smsproxy.models import Message, new_id
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores.postgres import (
    _CLAIM,
    AUTOVACUUM_OFF,
    SCHEMA_VERSION,
    PostgresStore,
)
from smsproxy.stores.protocol import Backlog


def make_message(message_id: str | None = None) -> Message:
    return Message(message_id or new_id(), "+4912345678", "hello", created_at=1_764_180_000.5)


def test_commits_are_synchronous_and_the_schema_is_versioned(postgres_url):
    store = PostgresStore(postgres_url)
    with store.transaction():
        setting = store._conn.execute("SHOW synchronous_commit").fetchone()
        versions = store._conn.execute("SELECT version FROM smsproxy_schema").fetchall()
    store.close()
    assert setting == ("on",)
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_three_instances_starting_at_once_make_one_schema(postgres_url):
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []
    start = threading.Barrier(3)

    def open_store() -> None:
        start.wait()
        try:
            stores.append(PostgresStore(postgres_url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with stores[0].transaction():
        versions = stores[0]._conn.execute("SELECT version FROM smsproxy_schema").fetchall()
    for store in stores:
        store.close()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_a_newer_schema_is_refused(postgres_url):
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("INSERT INTO smsproxy_schema (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreUnusable, match="newer than this smsproxy knows"):
        PostgresStore(postgres_url)


def test_a_duplicate_in_a_group_undoes_only_its_own_insert(postgres_url):
    store = PostgresStore(postgres_url)
    repository = Repository(store)
    first, second = make_message(), make_message()
    with store.transaction():
        repository.save([first])
        results = repository.save_all([([make_message(first.id)], None, 0.0),
                                       ([second], None, 0.0)])
    assert isinstance(results[0], DuplicateMessage)
    assert repository.get(second.id).status is Status.ACCEPTED
    store.close()


def test_a_lost_connection_fails_one_transaction_and_the_next_reconnects(postgres_url):
    store = PostgresStore(postgres_url)
    repository = Repository(store)
    message = make_message()
    with store.transaction():
        repository.save([message])
        backend = store._conn.info.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(StoreError, match="PostgreSQL"), store.transaction():
        repository.get(message.id)
    with store.transaction():  # a new connection: resumed by itself
        assert repository.get(message.id).status is Status.ACCEPTED
    store.close()


def test_an_unreachable_server_at_open_is_not_fatal(postgres_url):
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=1")
    with pytest.raises(StoreError, match="cannot connect"), store.transaction():
        store.check()
    store.close()


# --- shared dispatch: the table is the queue ----------------------------------------------

T0 = 1_764_180_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def queue(postgres_url, clock):
    """A store on the test's schema whose clock the test moves; saves messages at T0."""
    store = PostgresStore(postgres_url, clock=clock)
    yield store
    store.close()


def saved(store: PostgresStore, count: int, at: float = T0) -> list[str]:
    messages = [Message(new_id(), "+4912345678", f"m{n}", created_at=at + n * 0.001)
                for n in range(count)]
    with store.transaction():
        store.insert(messages)
    return [m.id for m in messages]


def claim(store: PostgresStore, instance: str = "a", size: int = 10, lease: float = 30.0):
    with store.transaction():
        return store.claim(instance, size, max_delay=1.0, lease=lease)


def test_a_claim_waits_for_a_full_batch_or_the_max_delay(queue, clock):
    saved(queue, 3)
    waiting = claim(queue)
    assert waiting.messages == ()
    assert waiting.next_due == pytest.approx(T0 + 1.0)
    assert waiting.waiting == 3
    clock.now = T0 + 1.0
    taken = claim(queue)
    assert len(taken.messages) == 3
    assert [m.content for m in taken.messages] == ["m0", "m1", "m2"]  # oldest first


def test_a_full_batch_is_claimed_at_once_and_no_message_twice(queue):
    ids = saved(queue, 25)
    first, second = claim(queue, size=10), claim(queue, "b", size=10)
    assert [m.id for m in first.messages] == ids[:10]
    assert [m.id for m in second.messages] == ids[10:20]
    assert claim(queue, "c", size=10).messages == ()  # 5 left: not a batch, not due yet


def test_concurrent_claims_never_take_a_message_twice(postgres_url, clock):
    stores = [PostgresStore(postgres_url, clock=clock) for _ in range(3)]
    saved(stores[0], 30)
    taken: list[list[str]] = []

    def claim_in(store: PostgresStore, name: str) -> None:
        for _ in range(50):  # one claims at a time: the others are told to look again
            taken.append([m.id for m in claim(store, name).messages])

    threads = [threading.Thread(target=claim_in, args=(s, n)) for s, n in zip(stores, "abc",
                                                                             strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    flat = [i for ids in taken for i in ids]
    assert len(flat) == len(set(flat)) == 30


def test_a_lapsed_claim_is_taken_over_and_its_old_holder_can_no_longer_renew(queue, clock):
    ids = saved(queue, 10)
    assert len(claim(queue, "dead", lease=30).messages) == 10
    clock.now = T0 + 29
    assert claim(queue, "alive").messages == ()  # still held
    clock.now = T0 + 31
    takeover = claim(queue, "alive")
    assert [m.id for m in takeover.messages] == ids
    assert takeover.taken_over == 10
    with queue.transaction():
        assert queue.renew("dead", ids, 30) == set()
        assert queue.renew("alive", ids, 30) == set(ids)


def test_renewal_leaves_out_messages_reported_meanwhile(queue, clock):
    ids = saved(queue, 10)
    claim(queue)
    with queue.transaction():
        queue.set_statuses_unless([(ids[0], Status.CONFIRMED, None)], frozenset())
        assert queue.renew("a", ids, 30) == set(ids[1:])


def test_sent_messages_are_never_claimed_again(queue, clock):
    ids = saved(queue, 10)
    claim(queue)
    with queue.transaction():
        queue.mark_sent("a", ids)
        assert queue.backlog() == Backlog(unsent=0, claimable=0)
    clock.now = T0 + 3600
    assert claim(queue).messages == ()


def test_a_parked_claim_comes_back_after_a_growing_delay(queue, clock):
    ids = saved(queue, 10)
    claim(queue)
    with queue.transaction():
        queue.park("a", ids, attempts=3, error="down", maybe_taken=False,
                   requeue_initial=5, requeue_max=300)
    clock.now = T0 + 4.9
    assert claim(queue, "b").messages == ()
    clock.now = T0 + 5.0
    assert len(claim(queue, "b").messages) == 10  # any instance may take it
    with queue.transaction():
        queue.park("b", ids, attempts=3, error="down", maybe_taken=False,
                   requeue_initial=5, requeue_max=300)
    clock.now = T0 + 14.9
    assert claim(queue).messages == ()
    clock.now = T0 + 15.0  # 10 s the second time
    assert [m.attempts for m in claim(queue).messages] == [6] * 10


def test_expiry_fails_each_late_message_once_with_its_reason(queue, clock):
    refused, maybe = saved(queue, 1), saved(queue, 1)
    claim(queue, size=1)
    claim(queue, size=1)
    with queue.transaction():
        queue.park("a", refused, 2, "HTTP 500", False, 5, 300)
        queue.park("a", maybe, 2, "timed out", True, 5, 300)
    reasons = ("no attempt reached it; last error: ", "one may have; last error: ")
    clock.now = T0 + 600
    with queue.transaction():
        assert queue.expire(600, 1800, reasons) == refused
        assert queue.expire(600, 1800, reasons) == []  # once
        assert queue.lookup(refused[0]).reason == "no attempt reached it; last error: HTTP 500"
    clock.now = T0 + 2400
    with queue.transaction():
        assert queue.expire(600, 1800, reasons) == maybe
        assert queue.lookup(maybe[0]).reason == "one may have; last error: timed out"


def test_release_gives_back_every_claim_of_an_instance(queue):
    saved(queue, 10)
    claim(queue, "leaving")
    with queue.transaction():
        assert queue.release("leaving") == 10
    assert len(claim(queue, "other").messages) == 10


def test_the_backlog_counts_what_waits_and_what_a_claim_could_take(queue, clock):
    ids = saved(queue, 12)
    with queue.transaction():
        assert queue.backlog() == Backlog(unsent=12, claimable=12)
    claim(queue)  # the 10 oldest
    with queue.transaction():
        assert queue.backlog() == Backlog(unsent=12, claimable=2)
        queue.park("a", ids[:10], attempts=1, error="down", maybe_taken=False,
                   requeue_initial=5, requeue_max=300)
        assert queue.backlog() == Backlog(unsent=12, claimable=2)  # not before 5 s
    clock.now = T0 + 6
    with queue.transaction():
        assert queue.backlog() == Backlog(unsent=12, claimable=12)


def test_the_queue_table_is_vacuumed_by_rows_changed(postgres_url):
    store = PostgresStore(postgres_url)
    with store.transaction():
        row = store._conn.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'smsproxy_messages'"
            " AND relnamespace = current_schema()::regnamespace").fetchone()
    store.close()
    assert row is not None
    assert {"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=5000"} <= set(row[0])


def test_claims_scan_the_queue_index_in_order_never_by_bitmap(queue):
    """A bitmap scan would visit every dead entry sent messages left, on every claim;
    the planner picks one while the table has no statistics (autovacuum off)."""
    saved(queue, 3)
    with queue.transaction():
        setting = queue._conn.execute("SHOW enable_bitmapscan").fetchone()
        plan = "\n".join(row[0] for row in queue._conn.execute(
            f"EXPLAIN {_CLAIM}", {"now": T0, "lock": 1, "size": 100, "max_delay": 1.0,
                                  "me": "a", "lease": 30.0}))
    assert setting == ("off",)
    assert "Index Scan using smsproxy_messages_" in plan  # the queue's or the status one
    assert "Bitmap" not in plan


def test_an_operator_learns_when_autovacuum_is_off(postgres_url):
    store = PostgresStore(postgres_url)
    with store.transaction():
        setting = store._conn.execute("SHOW autovacuum").fetchone()
    store.close()
    assert (AUTOVACUUM_OFF in store.notices) == (setting == ("off",))


async def test_a_save_does_not_wait_behind_a_blocked_status_report(nursery, postgres_url):
    """On PostgreSQL, saves commit on a connection of their own."""
    from actors import repository as repository_actor

    repo = await nursery.start(repository_actor.run, lambda: PostgresStore(postgres_url))
    reported = make_message()
    await repo.save(reported)
    with psycopg.connect(postgres_url) as blocker:  # holds the row until it rolls back
        blocker.execute("SELECT 1 FROM smsproxy_messages WHERE id = %s FOR UPDATE",
                        (reported.id,))
        update_done = trio.Event()

        async def report() -> None:
            await repo.update(reported.id, Status.CONFIRMED)
            update_done.set()

        nursery.start_soon(report)
        with trio.fail_after(5):
            while not blocker.execute(  # noqa: ASYNC110 - polling the database, not a task
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type"
                                      " = 'Lock' AND datname = current_database()").fetchall():
                await trio.sleep(0.01)  # until the report waits for the row lock
        with trio.fail_after(5):
            await repo.save(make_message())
        assert not update_done.is_set()
        blocker.rollback()
    with trio.fail_after(5):
        await update_done.wait()
