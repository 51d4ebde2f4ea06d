"""The PostgreSQL backend against a real server: durability settings, migrations that
several instances may run at once, and a server that goes away and comes back."""

import threading

import psycopg
import pytest

from smsproxy.errors import DuplicateMessage, StoreError, StoreUnusable
from smsproxy.models import Message, new_id
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores.postgres import SCHEMA_VERSION, PostgresStore


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
