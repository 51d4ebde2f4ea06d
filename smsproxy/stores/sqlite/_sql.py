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

_Item = TypeVar("_Item")

IDS_PER_QUERY = 500
"""Ids per IN (...) query, well under SQLite's limit on bound parameters."""


def chunks(items: Sequence[_Item], size: int = IDS_PER_QUERY) -> list[Sequence[_Item]]:
    """``items`` in pieces of ``size``: ids for one ``IN (...)`` query each, or rows
    for one multi-row INSERT each."""
    return [items[start : start + size] for start in range(0, len(items), size)]
