"""PostgreSQL's side of the shared routes (:class:`smsproxy.stores.routes.Routes`):
every instance reads the others' changes, and one of them is granted each probe."""

from collections.abc import Sequence

from smsproxy.routing import SharedRoute
from smsproxy.stores.postgres._sql import Connected

__all__ = ["PostgresRoutes"]

_COLUMNS = "name, down, weight, probe_at, probe_interval, changed_at"


class PostgresRoutes(Connected):
    def shared_routes(self) -> list[SharedRoute]:
        return [SharedRoute(*row) for row in self._conn.execute(
            f"SELECT {_COLUMNS} FROM smsproxy_routes ORDER BY name")]

    def share_routes(self, routes: Sequence[SharedRoute]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO smsproxy_routes ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (name) DO UPDATE SET down = excluded.down,"
                " weight = excluded.weight, probe_at = excluded.probe_at,"
                " probe_interval = excluded.probe_interval, changed_at = excluded.changed_at"
                " WHERE excluded.changed_at > smsproxy_routes.changed_at",
                [(r.name, r.down, r.weight, r.probe_at, r.probe_interval, r.changed_at)
                 for r in routes])

    def claim_probe(self, name: str, due: float, next_probe: float) -> bool:
        return self._conn.execute(
            "UPDATE smsproxy_routes SET probe_at = %s WHERE name = %s AND down"
            " AND probe_at <= %s RETURNING name", (next_probe, name, due)).fetchone() is not None
