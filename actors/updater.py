"""The updater actor: applies the provider's status reports to the repository.

Reports arrive as batches ``{message_id: status}``. After the first report, the
updater lingers a moment (``linger`` seconds) for more, then maps everything it
holds and applies it, in order, in one repository request. A status we cannot
map, or an update the rules refuse, becomes an :class:`UpdateRejected` on the
errors channel; it is never raised into the provider's feed, and the updater goes
on with the next batch.

Why linger: a provider reports each batch twice (CONFIRMED, then DELIVERED)
within moments. Held together, the two become one write per message, and the
store commits status updates a few times a second rather than once per report.
Each of those commits is time the store is not committing the POSTs that clients
are waiting on, so fewer of them is what keeps a durable store close to the
speed of an in-memory one under load. Statuses show up at most ``linger`` later.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
import trio

from actors._mailbox import Call, Envelope, Mailbox, receive_ready
from actors.repository import RepositoryHandle
from actors.stats import StatsHandle
from smsproxy.errors import UnknownProviderStatus
from smsproxy.models import UpdateRejected, UpdatesApplied
from smsproxy.statuses import Status, map_provider_status

__all__ = ["INBOX_CAPACITY", "StatusReport", "UpdaterHandle", "report_errors", "run"]

log = structlog.get_logger("smsproxy.updater")

INBOX_CAPACITY = 256
"""Reports waiting beyond this make the provider side wait: backpressure, not loss."""

MAX_REPORTS_PER_GROUP = 256


@dataclass(frozen=True, slots=True)
class StatusReport:
    updates: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Flush(Call[None]):
    pass


Request = StatusReport | _Flush


class UpdaterHandle:
    def __init__(self, mailbox: Mailbox[Request]) -> None:
        self._mailbox = mailbox

    async def submit(self, updates: Mapping[str, str]) -> None:
        """Hand over one batch of provider statuses; waits for room, not for the store."""
        await self._mailbox.cast(StatusReport(dict(updates)))

    async def flush(self) -> None:
        """Return once every report submitted before this call has been applied."""
        await self._mailbox.call(_Flush())

    async def close(self) -> None:
        await self._mailbox.close()


async def run(
    repository: RepositoryHandle,
    stats: StatsHandle,
    errors: trio.MemorySendChannel[UpdateRejected],
    *,
    linger: float = 0.0,
    task_status: trio.TaskStatus[UpdaterHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    mailbox, inbox = Mailbox[Request].open("updater", capacity=INBOX_CAPACITY)
    async with inbox, errors:
        task_status.started(UpdaterHandle(mailbox))
        async for first in inbox:
            # The reports of the next ``linger`` seconds go to the store as one
            # request: one commit for many reports.
            group = await _gather(inbox, first, linger)
            reports = [e.request.updates for e in group if isinstance(e.request, StatusReport)]
            if reports:
                await _apply(reports, repository, stats, errors)
            for envelope in group:
                if envelope.reply is not None:  # a flush: everything before it is applied
                    envelope.reply.set(None)


async def _gather(
    inbox: trio.MemoryReceiveChannel[Envelope[Request]],
    first: Envelope[Request],
    linger: float,
) -> list[Envelope[Request]]:
    """``first``, and what arrives within ``linger`` seconds of it.

    Ends early on a full group, on a flush (its caller is waiting), and when the
    inbox closes (at shutdown).
    """
    group = receive_ready(inbox, first, MAX_REPORTS_PER_GROUP)
    if linger <= 0 or any(isinstance(e.request, _Flush) for e in group):
        return group
    with trio.move_on_after(linger):
        while len(group) < MAX_REPORTS_PER_GROUP:
            try:
                envelope = await inbox.receive()
            except trio.EndOfChannel:
                break
            group.append(envelope)
            if isinstance(envelope.request, _Flush):
                break
    return group


async def _apply(
    reports: Sequence[Mapping[str, str]],
    repository: RepositoryHandle,
    stats: StatsHandle,
    errors: trio.MemorySendChannel[UpdateRejected],
) -> None:
    updates: list[tuple[str, Status]] = []
    for report in reports:
        for message_id, name in report.items():
            try:
                updates.append((message_id, map_provider_status(name)))
            except UnknownProviderStatus as error:
                errors.send_nowait(UpdateRejected(message_id, str(name), str(error), error.kind))
    refused = await repository.apply_in_order(updates) if updates else []
    for message_id, status, refusal in refused:
        errors.send_nowait(UpdateRejected(message_id, status, refusal.reason, refusal.kind))
    applied = len(updates) - len(refused)
    if applied:
        delivered = sum(1 for _, status in updates if status is Status.DELIVERED)
        delivered -= sum(1 for _, status, _ in refused if status is Status.DELIVERED)
        stats.record(UpdatesApplied(applied, delivered))
    log.debug("statuses_applied", applied=applied, rejected=len(refused))


async def report_errors(
    errors: trio.MemoryReceiveChannel[UpdateRejected], stats: StatsHandle
) -> None:
    """Drain the errors channel: log each rejected update and count it."""
    async with errors:
        async for rejected in errors:
            log.warning(
                "status_update_rejected",
                message_id=rejected.message_id,
                status=rejected.status,
                reason=rejected.reason,
                kind=rejected.kind,
            )
            stats.record(rejected)
