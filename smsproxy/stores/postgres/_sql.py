"""What the PostgreSQL store's modules share: its connection, the server's clock,
and how an error is told."""

from collections.abc import Callable

import psycopg
from psycopg.rows import TupleRow

from smsproxy.statuses import Status

__all__ = ["NOW", "STATUS", "Connected", "describe"]

STATUS = {status.value: status for status in Status}

NOW = "coalesce(%(now)s::float8, extract(epoch FROM statement_timestamp()))"
"""Now, by the database server's clock (so that instances on machines whose clocks
differ agree on every lease), unless a test's clock gives it as ``now``."""


class Connected:
    """The connection the store's parts share (held by :class:`PostgresStore`)."""

    _db: psycopg.Connection[TupleRow] | None
    _clock: Callable[[], float] | None

    @property
    def _conn(self) -> psycopg.Connection[TupleRow]:
        assert self._db is not None, "used outside a transaction"
        return self._db

    def _at(self, **parameters: object) -> dict[str, object]:
        """Parameters with ``now``: the test clock's time, or None for the server's
        (``_NOW`` in the statement), so that no statement waits for a clock query."""
        return {"now": self._clock() if self._clock is not None else None, **parameters}


def describe(error: psycopg.Error) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
