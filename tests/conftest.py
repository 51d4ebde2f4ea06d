import math
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import trio
from hypothesis import settings
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from actors import dispatcher, repository, simulator, stats, updater
from actors.dispatcher import DispatcherHandle, DispatchSettings
from actors.repository import RepositoryHandle
from actors.sender import RetryPolicy
from actors.stats import StatsHandle
from actors.updater import UpdaterHandle
from api import Services
from smsproxy.dispatching import BatchingRules
from smsproxy.records import UpdateRejected
from smsproxy.stores import MemoryStore, MessageStore, PostgresStore
from smsproxy.stores.sqlite import SqliteStore
from tests.fakes import ManualClock, ScriptedProvider, wall_clock

# Tests write nothing into the working directory: no example database in .hypothesis/.
settings.register_profile("smsproxy", database=None)
settings.load_profile("smsproxy")


@pytest.fixture(scope="session", autouse=True)
def the_working_directory_stays_clean() -> Iterator[None]:
    """A test that leaves a database in the working directory would have the next
    run of the service recover and send its rows: fail the run instead."""
    before = set(Path.cwd().iterdir())
    yield
    left = sorted(str(p.name) for p in set(Path.cwd().iterdir()) - before)
    assert not left, f"tests left files in the working directory: {left}"


POSTGRES_ADMIN_URL = os.environ.get(
    "SMSPROXY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
"""A server the tests may create a database on; tests/run makes sure one is running."""


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway database for this test run, dropped at its end."""
    name = f"smsproxy_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(POSTGRES_ADMIN_URL, dbname=name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A schema of its own in the run's database, for one test: tables start empty.
    A URL, as ``--store`` takes it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_database, autocommit=True) as db:
        db.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield postgres_store_url(postgres_database, schema)
    finally:
        with psycopg.connect(postgres_database, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def postgres_store_url(conninfo: str, schema: str) -> str:
    """``postgresql://user[:password]@host:port/database?options=...`` for a conninfo."""
    parts = conninfo_to_dict(conninfo)
    login = quote(str(parts.get("user", "postgres")), safe="")
    if parts.get("password"):
        login += ":" + quote(str(parts["password"]), safe="")
    host, port = parts.get("host", "127.0.0.1"), parts.get("port", "5432")
    options = quote(f"-c search_path={schema}", safe="")
    return f"postgresql://{login}@{host}:{port}/{parts['dbname']}?options={options}"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path) -> Callable[[], MessageStore]:
    """Each backend in turn: the repository rules must hold for all of them."""
    if request.param == "memory":
        return partial(MemoryStore, wall_clock)
    if request.param == "postgres":
        return partial(PostgresStore, request.getfixturevalue("postgres_url"), wall_clock)
    return partial(SqliteStore, tmp_path / "messages.db", wall_clock)


@pytest.fixture
async def repo(nursery: trio.Nursery, store_factory) -> RepositoryHandle:
    return await nursery.start(repository.run, store_factory)


@pytest.fixture
async def stats_handle(nursery: trio.Nursery) -> StatsHandle:
    return await nursery.start(stats.run)


@dataclass
class Pipeline:
    dispatcher: DispatcherHandle
    repository: RepositoryHandle
    stats: StatsHandle
    provider: ScriptedProvider
    updater: UpdaterHandle
    errors: trio.MemoryReceiveChannel[UpdateRejected]

    @property
    def services(self) -> Services:
        return Services(self.repository, self.dispatcher, self.stats, self.updater)

    async def accept(self, count: int = 1) -> list[str]:
        """Submit ``count`` messages one by one; their ids."""
        ids = []
        for i in range(count):
            saved = await self.dispatcher.submit("+4912345", f"message {i}")
            ids.extend(saved.message_ids)
        return ids


PIPELINE_DISPATCH = DispatchSettings("test", lease=30.0, poll=2.0, count_every=5.0)
"""Fewer looks than in production: on the mock clock an hour of waiting is then 1,800
claims, not 14,400 (a POST, a sender finishing and a claim's next due time still wake
the loop at once)."""


@pytest.fixture
def start_pipeline(nursery: trio.Nursery) -> Callable[..., Awaitable[Pipeline]]:
    """Start repository, stats and dispatcher around a scripted provider."""
    test_nursery = nursery

    async def start(
        provider: ScriptedProvider | None = None,
        *,
        within: trio.Nursery | None = None,
        batch_size: int = 100,
        max_delay: float = 1.0,
        max_in_flight: int = 4,
        max_attempts: int = 3,
        attempt_timeout: float = 10.0,
        message_ttl: float = 3600.0,
        max_queue: int = 100_000,
        store: MessageStore | None = None,
        open_store: Callable[[], MessageStore] | None = None,
        stats_handle: StatsHandle | None = None,
        simulate: bool = False,
        status_linger: float = 0.0,
        status_grace: float = 3600.0,
    ) -> Pipeline:
        """``simulate``: the in-process simulator confirms and delivers through the updater.
        ``within``: a nursery of the test's own to run the actors in (the test's, else)."""
        nursery = within or test_nursery
        opening = open_store or (lambda: store or MemoryStore(wall_clock))
        repo = await nursery.start(partial(repository.run, opening, clock=wall_clock))
        counts = stats_handle or await nursery.start(stats.run)
        errors_in, errors_out = trio.open_memory_channel[UpdateRejected](math.inf)
        updates = await nursery.start(
            partial(updater.run, repo, counts, errors_in, linger=status_linger)
        )
        if simulate:
            provider = await nursery.start(simulator.run, updates)
        provider = provider or ScriptedProvider()
        rules = BatchingRules(
            max(1, batch_size), max_delay, max_in_flight, message_ttl, status_grace
        )
        policy = RetryPolicy(max_attempts, attempt_timeout)
        handle = await nursery.start(
            lambda task_status: dispatcher.run(
                repo, provider, counts, rules, policy, max_queue, PIPELINE_DISPATCH,
                clock=wall_clock, task_status=task_status,
            )
        )
        return Pipeline(handle, repo, counts, provider, updates, errors_out)

    return start


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def queue(request, tmp_path, clock):
    """Each store in turn, on the test's clock."""
    if request.param == "memory":
        store: MessageStore = MemoryStore(clock)
    elif request.param == "sqlite":
        store = SqliteStore(tmp_path / "queue.db", clock)
    else:
        store = PostgresStore(request.getfixturevalue("postgres_url"), clock)
    yield store
    store.close()
