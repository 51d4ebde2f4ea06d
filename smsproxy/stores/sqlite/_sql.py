"""What the SQLite store's modules share: how rows are bound and read back."""

from collections.abc import Sequence
from typing import TypeVar

from smsproxy.statuses import Status

__all__ = ["NO_STATUS", "ROWS_PER_INSERT", "STATUS", "chunks"]

ROWS_PER_INSERT = 500
"""Rows per multi-row INSERT: one statement (one step) for many rows."""

NO_STATUS = "''"
"""What ``NOT IN`` lists when no status is protected (``NOT IN (NULL)`` is never true)."""

STATUS = {status.value: status for status in Status}
"""Faster than calling Status(...) for every row."""

_Id = TypeVar("_Id", str, int)

_CHUNK = 500
"""Ids per IN (...) query, well under SQLite's limit on bound parameters."""


def chunks(ids: Sequence[_Id]) -> list[Sequence[_Id]]:
    """``ids`` in pieces of ``_CHUNK``, one ``IN (...)`` query each."""
    return [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]
