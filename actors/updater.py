"""The updater actor: applies the provider's status reports to the repository.

Reports arrive as batches ``{message_id: status}``. After the first report, the
updater lingers a moment (``linger`` seconds) for more, then maps everything it
holds and applies it, in order, in one repository request. A status we cannot
map, or an update the rules refuse, becomes an :class:`UpdateRejected` on the
errors channel; it is never raised into the provider's feed, and the updater goes
on with the next batch.

A report handed over with :meth:`UpdaterHandle.apply` (the provider's webhook)
is answered once it is committed, or with the :class:`StoreError` that kept it
out, so that the provider, which retries what we do not acknowledge, never loses
a report to a crash or a full disk. A report handed over with ``submit`` (the
in-process simulator) has no one to retry it: when the store fails, the updater
holds it and tries again, with growing pauses, until the store takes it.

Why linger: a provider reports each batch twice (CONFIRMED, then DELIVERED)
within moments. Held together, the two become one write per message, and the
store commits status updates a few times a second rather than once per report.
Each of those commits is time the store is not committing the POSTs that clients
are waiting on, so fewer of them is what keeps a durable store close to the
speed of an in-memory one under load. Statuses show up at most ``linger`` later.
"""

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import structlog
import trio

from actors._mailbox import Call, Envelope, Mailbox, receive_ready
from actors.errors import ActorError
from actors.repository import RepositoryHandle
from actors.stats import StatsHandle
from smsproxy.errors import StoreError, UnknownProviderStatus
from smsproxy.records import UpdateRejected, UpdatesApplied
from smsproxy.statuses import Status, map_provider_status

__all__ = ["INBOX_CAPACITY", "StatusReport", "UpdaterHandle", "report_errors", "run"]

log = structlog.get_logger("smsproxy.updater")

INBOX_CAPACITY = 256
"""Reports waiting beyond this make the provider side wait: backpressure, not loss."""

MAX_REPORTS_PER_GROUP = 256

ENOUGH_TO_APPLY = 500
"""Updates that end the linger at once. A group this large already spreads its commit
thin; lingering for more saves little, and a provider that waits for each answer
(the webhook) would be held to a few reports per connection a second."""

RETRY_INITIAL = 0.5
"""Pause before reports the store refused are tried again; it doubles up to RETRY_MAX."""
RETRY_MAX = 30.0


@dataclass(frozen=True, slots=True)
class StatusReport(Call[None]):
    updates: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Flush(Call[None]):
    pass


Request = StatusReport | _Flush

Update = tuple[str, Status]


class UpdaterHandle:
    def __init__(self, mailbox: Mailbox[Request], linger: float) -> None:
        self._mailbox = mailbox
        self.linger = linger
        """How long a report may wait for others before it is applied."""

    async def submit(self, updates: Mapping[str, str]) -> None:
        """Hand over one batch of provider statuses; waits for room, not for the store.

        The updater keeps it until the store has taken it, through store failures.
        """
        await self._mailbox.cast(StatusReport(dict(updates)))

    async def apply(self, updates: Mapping[str, str]) -> None:
        """Hand over one batch of provider statuses; returns once they are committed.

        Raises :class:`StoreError` when the store could not take them: nothing of
        them is kept, and the sender should retry. Refused updates (unknown status,
        final status) do not raise; they go to the errors channel.
        """
        await self._mailbox.call(StatusReport(dict(updates)))

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
    held = _Held()
    async with inbox, errors:
        task_status.started(UpdaterHandle(mailbox, linger))
        while True:
            first: Envelope[Request] | None = None
            with trio.move_on_at(held.retry_at):  # held updates wait no longer than that
                try:
                    first = await inbox.receive()
                except trio.EndOfChannel:
                    break
            # The reports of the next ``linger`` seconds go to the store as one
            # request: one commit for many reports.
            group = [] if first is None else await _gather(inbox, first, linger)
            await _apply_group(group, held, repository, stats, errors)
        if held.updates:  # shutting down: one last try for what no one else can retry
            await _apply_group([], held, repository, stats, errors)
        if held.updates:
            log.warning("status_updates_not_stored_at_shutdown", count=len(held.updates),
                        error=held.last_error)


class _Held:
    """Updates from ``submit`` that the store refused, and when to try them again."""

    def __init__(self) -> None:
        self.updates: list[Update] = []
        self.pause = RETRY_INITIAL
        self.retry_at = math.inf
        self.last_error = ""

    def keep(self, updates: list[Update], error: Exception) -> None:
        self.updates = updates
        self.last_error = str(error)
        self.retry_at = trio.current_time() + self.pause
        self.pause = min(RETRY_MAX, self.pause * 2)

    def take(self) -> list[Update]:
        updates, self.updates = self.updates, []
        self.retry_at = math.inf
        return updates

    def stored(self) -> None:
        self.pause = RETRY_INITIAL


async def _apply_group(
    group: list[Envelope[Request]],
    held: _Held,
    repository: RepositoryHandle,
    stats: StatsHandle,
    errors: trio.MemorySendChannel[UpdateRejected],
) -> None:
    """Apply what ``group`` carries after what is held, as one repository request.

    Callers waiting on their report learn the outcome; a flush learns it too, since
    it waits for everything before it.
    """
    was_held = bool(held.updates)
    unheld = [_map(e.request.updates, errors) for e in group if e.reply is None
              and isinstance(e.request, StatusReport)]
    waited = [_map(e.request.updates, errors) for e in group if e.reply is not None
              and isinstance(e.request, StatusReport)]
    ownerless = held.take() + [u for report in unheld for u in report]
    updates = ownerless + [u for report in waited for u in report]
    try:
        if updates:
            await _apply(updates, repository, stats, errors)
    except (StoreError, ActorError) as error:
        # The repository logged and counted it; a caller that waits retries, and
        # what no one waits for is held for another try.
        held.keep(ownerless, error)
        for envelope in group:
            if envelope.reply is not None:
                envelope.reply.fail(error)
        return
    held.stored()
    if was_held:
        log.info("held_status_updates_applied", count=len(ownerless))
    for envelope in group:
        if envelope.reply is not None:
            envelope.reply.set(None)


async def _gather(
    inbox: trio.MemoryReceiveChannel[Envelope[Request]],
    first: Envelope[Request],
    linger: float,
) -> list[Envelope[Request]]:
    """``first``, and what arrives within ``linger`` seconds of it.

    Ends early on a full group, on ``ENOUGH_TO_APPLY`` updates, on a flush (its
    caller is waiting), and when the inbox closes (at shutdown).
    """
    group = receive_ready(inbox, first, MAX_REPORTS_PER_GROUP)
    if linger <= 0 or any(isinstance(e.request, _Flush) for e in group):
        return group
    updates = sum(_size(envelope) for envelope in group)
    with trio.move_on_after(linger):
        while len(group) < MAX_REPORTS_PER_GROUP and updates < ENOUGH_TO_APPLY:
            try:
                envelope = await inbox.receive()
            except trio.EndOfChannel:
                break
            group.append(envelope)
            updates += _size(envelope)
            if isinstance(envelope.request, _Flush):
                break
    return group


def _size(envelope: Envelope[Request]) -> int:
    request = envelope.request
    return len(request.updates) if isinstance(request, StatusReport) else 0


def _map(report: Mapping[str, str], errors: trio.MemorySendChannel[UpdateRejected]) -> list[Update]:
    """The report's updates we can map; the others go to the errors channel."""
    updates: list[Update] = []
    for message_id, name in report.items():
        try:
            updates.append((message_id, map_provider_status(name)))
        except UnknownProviderStatus as error:
            errors.send_nowait(UpdateRejected(message_id, str(name), str(error), error.kind))
    return updates


async def _apply(
    updates: Sequence[Update],
    repository: RepositoryHandle,
    stats: StatsHandle,
    errors: trio.MemorySendChannel[UpdateRejected],
) -> None:
    refused = await repository.apply_in_order(updates)
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
    """Drain the errors channel: count each rejected update, and log what came at
    once (a report's rejections) as one line per kind, with the count and a few of
    the ids: a report naming 17,500 unknown ids is one warning, not 17,500."""
    async with errors:
        async for first in errors:
            by_kind: defaultdict[str, list[UpdateRejected]] = defaultdict(list)
            for rejected in receive_ready(errors, first, MAX_REJECTIONS_AT_ONCE):
                stats.record(rejected)
                by_kind[rejected.kind].append(rejected)
            for kind, rejections in by_kind.items():
                example = rejections[0]
                log.warning("status_update_rejected", kind=kind, count=len(rejections),
                            message_id=example.message_id, status=example.status,
                            reason=example.reason,
                            message_ids=[r.message_id for r in rejections[:LOGGED_IDS]])


MAX_REJECTIONS_AT_ONCE = 1_000_000
LOGGED_IDS = 5
"""Ids named in one rejection line; the count says how many there were."""
