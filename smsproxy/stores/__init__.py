"""Store backends: where messages and their statuses are kept.

``memory://`` (:mod:`.memory`), ``sqlite:///path`` (:mod:`.sqlite`) and
``postgresql://...`` (:mod:`.postgres`) implement
:class:`MessageStore` (:mod:`.protocol`); :func:`store_factory` picks one by URL.
"""

import time
from collections.abc import Callable
from functools import partial

from smsproxy.stores.memory import MemoryStore
from smsproxy.stores.postgres import PostgresStore
from smsproxy.stores.protocol import MessageStore, StatusChange
from smsproxy.stores.sqlite import SqliteStore

__all__ = [
    "POSTGRES_SCHEMES", "MemoryStore", "MessageStore", "PostgresStore", "SqliteStore",
    "StatusChange", "store_factory",
]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def store_factory(url: str, clock: Callable[[], float] | None = None
                  ) -> Callable[[], MessageStore]:
    """How to open the store that ``url`` names; the repository actor opens it in a thread.

    ``sqlite:///smsproxy.db`` is relative to the working directory,
    ``sqlite:////var/lib/smsproxy.db`` absolute. ``clock``: the wall clock of the
    queue's leases and deadlines (tests move it); by default this machine's, and on
    PostgreSQL the server's, so that instances whose clocks differ agree.
    """
    if url.startswith("memory://"):
        return partial(MemoryStore, clock or time.time)
    if url.startswith("sqlite:///"):
        return partial(SqliteStore, url.removeprefix("sqlite:///"), clock or time.time)
    if url.startswith(POSTGRES_SCHEMES):
        return partial(PostgresStore, url, clock)
    raise ValueError(f"unsupported store {url!r}")
