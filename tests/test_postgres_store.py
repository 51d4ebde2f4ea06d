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
    AUTOVACUUM_OFF,
    CLAIM,
    SCHEMA_VERSION,
    PostgresStore,
)
from smsproxy.stores.postgres.outbox import CLAIM_CALLBACKS
from smsproxy.stores.protocol import ClaimRules
from tests.fakes import MANUAL_CLOCK_AT_START as T0  # where the clock fixture starts


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
        results = repository.save_all([([make_message(first.id)], None, 0.0, None),
                                       ([second], None, 0.0, None)])
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


# --- the queue's PostgreSQL side (its rules on every store: test_queue.py) ---------------



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
        return store.claim(instance, ClaimRules(size, max_delay=1.0, lease=lease, ttl=3600))


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
            f"EXPLAIN {CLAIM}", {"now": T0, "lock": 1, "limit": 400, "max_delay": 1.0,
                                  "ttl": 3600.0, "lead": 0.02}))
    assert setting == ("off",)
    assert "Index Scan using smsproxy_messages_" in plan  # the queue's or the status one
    assert "Bitmap" not in plan


def test_the_callback_claim_looks_up_each_candidate_s_message_without_statistics(queue):
    """Without statistics (autovacuum off), NOT EXISTS became a join against every
    pending event, 1.7 s a claim; each candidate's message is one index lookup."""
    with queue.transaction():
        queue.insert([Message(new_id(), "+4912345678", "hi", created_at=T0,
                              callback_url="http://shop.example/hook") for _ in range(50)])
    with queue.transaction():
        assert queue._conn.execute("SELECT count(*) FROM pg_stats WHERE tablename"
                                   " = 'smsproxy_events'").fetchone() == (0,)
        plan = "\n".join(row[0] for row in queue._conn.execute(
            f"EXPLAIN {CLAIM_CALLBACKS}", {"now": T0, "limit": 64, "me": "a", "lease": 30.0,
                                           "skip": [], "candidates": 256, "per_origin": 64}))
    candidates, _, subplan = plan.partition("CTE candidates")[2].rpartition("  SubPlan")
    assert "Join" not in candidates
    assert "smsproxy_events_message_id_sequence_key" in subplan.split("CTE", 1)[0]


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
