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

from actors import batcher, repository, simulator, stats, updater
from actors.batcher import BatcherHandle
from actors.repository import RepositoryHandle
from actors.sender import RetryPolicy
from actors.stats import StatsHandle
from actors.updater import UpdaterHandle
from api import Services
from smsproxy.batching import BatchingRules
from smsproxy.models import UpdateRejected
from smsproxy.stores import MemoryStore, MessageStore, PostgresStore
from smsproxy.stores.sqlite import SqliteStore
from tests.fakes import ScriptedProvider

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
"""A server the tests may create a database on; .ci/run makes sure one is running."""


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
        return MemoryStore
    if request.param == "postgres":
        return partial(PostgresStore, request.getfixturevalue("postgres_url"))
    return partial(SqliteStore, tmp_path / "messages.db")


@pytest.fixture
async def repo(nursery: trio.Nursery, store_factory) -> RepositoryHandle:
    return await nursery.start(repository.run, store_factory)


@pytest.fixture
async def stats_handle(nursery: trio.Nursery) -> StatsHandle:
    return await nursery.start(stats.run)


@dataclass
class Pipeline:
    batcher: BatcherHandle
    repository: RepositoryHandle
    stats: StatsHandle
    provider: ScriptedProvider
    updater: UpdaterHandle
    errors: trio.MemoryReceiveChannel[UpdateRejected]

    @property
    def services(self) -> Services:
        return Services(self.repository, self.batcher, self.stats, self.updater)

    async def accept(self, count: int = 1) -> list[str]:
        """Submit ``count`` messages one by one; their ids."""
        ids = []
        for i in range(count):
            saved = await self.batcher.submit("+4912345", f"message {i}")
            ids.extend(saved.message_ids)
        return ids


WALL_CLOCK_AT_START = 1_764_180_000.0
"""Messages are stamped with a realistic wall-clock time, so that a rule that mixes
up wall-clock and elapsed time (``wall_now + created_at``) cannot pass."""


def wall_clock() -> float:
    """Wall-clock time that moves with trio's clock, so that MockClock drives the TTL."""
    return WALL_CLOCK_AT_START + trio.current_time()


@pytest.fixture
def start_pipeline(nursery: trio.Nursery) -> Callable[..., Awaitable[Pipeline]]:
    """Start repository, stats and batcher around a scripted provider."""

    async def start(
        provider: ScriptedProvider | None = None,
        *,
        batch_size: int = 100,
        max_delay: float = 1.0,
        max_in_flight: int = 4,
        max_attempts: int = 3,
        attempt_timeout: float = 10.0,
        message_ttl: float = 3600.0,
        max_queue: int = 100_000,
        store: MessageStore | None = None,
        stats_handle: StatsHandle | None = None,
        simulate: bool = False,
        status_linger: float = 0.0,
        status_grace: float = 3600.0,
    ) -> Pipeline:
        """``simulate``: the in-process simulator confirms and delivers through the updater."""
        repo = await nursery.start(repository.run, lambda: store or MemoryStore())
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
            lambda task_status: batcher.run(
                repo, provider, counts, rules, policy, max_queue,
                clock=wall_clock, task_status=task_status,
            )
        )
        return Pipeline(handle, repo, counts, provider, updates, errors_out)

    return start
