"""The memory store: SQLite's in-memory database, for tests and demos.

The same SQL as the file store, so every rule and every queue operation holds on
it as written once; only its durability differs (gone when the process ends). It
never waits on a disk, so the repository actor calls it on the event loop itself
(``blocking = False``) rather than from a worker thread.
"""

import time
from collections.abc import Callable

from smsproxy.stores.sqlite import SqliteStore

__all__ = ["MemoryStore"]


class MemoryStore(SqliteStore):
    blocking = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(":memory:", clock)
