"""SQLite's side of the shared routes (:class:`smsproxy.stores.routes.Routes`)."""

import sqlite3
from collections.abc import Sequence

from smsproxy.routing import SharedRoute

__all__ = ["ROUTES_MIGRATION", "SqliteRoutes"]

ROUTES_MIGRATION = """
CREATE TABLE routes (
    name           TEXT PRIMARY KEY,
    down           INTEGER NOT NULL,
    weight         INTEGER NOT NULL,
    probe_at       REAL NOT NULL,
    probe_interval REAL NOT NULL,
    changed_at     REAL NOT NULL
) WITHOUT ROWID;
"""

_COLUMNS = "name, down, weight, probe_at, probe_interval, changed_at"


class SqliteRoutes:
    _db: sqlite3.Connection

    def shared_routes(self) -> list[SharedRoute]:
        return [SharedRoute(name, bool(down), *rest) for name, down, *rest
                in self._db.execute(f"SELECT {_COLUMNS} FROM routes ORDER BY name")]

    def share_routes(self, routes: Sequence[SharedRoute]) -> None:
        self._db.executemany(
            f"INSERT INTO routes ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name)"
            " DO UPDATE SET down = excluded.down, weight = excluded.weight,"
            " probe_at = excluded.probe_at, probe_interval = excluded.probe_interval,"
            " changed_at = excluded.changed_at WHERE excluded.changed_at > routes.changed_at",
            [(r.name, r.down, r.weight, r.probe_at, r.probe_interval, r.changed_at)
             for r in routes])

    def claim_probe(self, name: str, due: float, next_probe: float) -> bool:
        return self._db.execute(
            "UPDATE routes SET probe_at = ? WHERE name = ? AND down AND probe_at <= ?"
            " RETURNING name", (next_probe, name, due)).fetchone() is not None
