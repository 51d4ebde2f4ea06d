"""Route sharing: the instances on one PostgreSQL agree on which provider is down and
on the weights, through the store (a side task, restarted one-for-one on a crash).

Every ``every`` seconds it takes what other instances changed later than this one
(``RoutingTable.adopt``), gives what changed here (``RoutingTable.changes``), and asks
the store for each due probe of a down provider: one instance is granted it, and only
that one sends the probe, so a dead provider gets one probe per interval, not one per
instance. A store that cannot be reached leaves the table as it is; what changed here
goes out on the next round.
"""

import time
from collections.abc import Callable

import structlog
import trio

from actors.errors import ActorError
from actors.repository import RepositoryHandle
from actors.router import Router
from smsproxy.errors import StoreError
from smsproxy.routing import SharedRoute

__all__ = ["SHARE_EVERY", "share_routes"]

log = structlog.get_logger("smsproxy.routing")

SHARE_EVERY = 1.0
"""Seconds between rounds: how long instances may disagree on a provider."""


async def share_routes(router: Router, repo: RepositoryHandle, every: float = SHARE_EVERY,
                       wall_clock: Callable[[], float] = time.time) -> None:
    table = router.table
    table.shared = True
    unsent: list[SharedRoute] = []
    while True:
        offset = wall_clock() - trio.current_time()
        try:
            adopted = table.adopt(await repo.shared_routes(), offset)
            if adopted:
                log.info("provider_state_adopted",
                         states={n: table.routes[n].state.value for n in adopted})
            unsent = [*unsent, *table.changes(offset)]
            if unsent:
                await repo.share_routes(unsent)
                unsent = []
            for route in table.due_probes():
                now = wall_clock()
                if await repo.claim_probe(route.name, now, now + max(1.0, route.probe_interval)):
                    table.grant_probe(route.name)
        except (StoreError, ActorError) as error:
            log.warning("provider_state_not_shared", error=str(error))
        await trio.sleep(every)
