"""What a store offers the routing: each provider's health and weight, shared by the
instances on one database (a dead provider is then probed by one of them, and they
agree on weights), and kept over a restart on the others."""

from collections.abc import Sequence
from typing import Protocol

from smsproxy.routing import SharedRoute

__all__ = ["Routes"]


class Routes(Protocol):
    def shared_routes(self) -> list[SharedRoute]: ...

    def share_routes(self, routes: Sequence[SharedRoute]) -> None:
        """Keep each, unless the store holds a later change of it (its ``changed_at``)."""
        ...

    def claim_probe(self, name: str, due: float, next_probe: float) -> bool:
        """Grant the probe of a down route due by ``due``: its probe moves to
        ``next_probe`` for every other instance. False when another instance was
        granted it first, or the route is not down (wall-clock times)."""
        ...
