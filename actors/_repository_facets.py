"""The facets of the repository actor's handle: the store as the queue, and as the
compliance records. Each method is one request to the actor (and so part of a group
commit)."""

from collections.abc import Mapping, Sequence

from actors._mailbox import Mailbox
from actors._queue_requests import (
    Claim,
    CountBacklog,
    Expire,
    MarkSent,
    Park,
    Release,
    Renew,
)
from actors._repository_compliance import (
    ClaimReplyCallbacks,
    GetSuppression,
    ListInbound,
    ListSuppressions,
    QuotaUsed,
    Receive,
    SettleReplyCallback,
    Suppress,
    Unsuppress,
)
from actors._repository_inbox import Request
from smsproxy.compliance import Inbound, InboundQuery, PendingReply, Suppression, utc_day
from smsproxy.dispatching import BatchingRules
from smsproxy.stores.protocol import Backlog, CallbackOutcome, Claimed, ClaimRules, Renewal

__all__ = ["ComplianceHandle", "QueueHandle"]


class QueueHandle:
    """The queue's operations, each one request to the repository actor (and so part
    of a group commit). Shielded: once asked, the store may carry it out, and the
    caller must learn how."""

    def __init__(self, mailbox: Mailbox[Request]) -> None:
        self._mailbox = mailbox

    async def claim(self, instance: str, rules: ClaimRules) -> Claimed:
        return await self._mailbox.call(Claim(instance, rules), shield=True)

    async def renew(self, instance: str, message_ids: Sequence[str], lease: float) -> Renewal:
        return await self._mailbox.call(Renew(instance, tuple(message_ids), lease), shield=True)

    async def mark_sent(self, instance: str, message_ids: Sequence[str], attempts: int,
                        providers: Mapping[str, str], refs: Mapping[str, str]) -> None:
        await self._mailbox.call(MarkSent(instance, tuple(message_ids), attempts, providers,
                                          refs), shield=True)

    async def park(self, instance: str, message_ids: Sequence[str], attempts: int, error: str,
                   maybe_taken: bool, requeue_initial: float, requeue_max: float,
                   pinned: Mapping[str, str]) -> None:
        await self._mailbox.call(Park(instance, tuple(message_ids), attempts, error,
                                      maybe_taken, requeue_initial, requeue_max, pinned),
                                 shield=True)

    async def expire(self, rules: BatchingRules, limit: int) -> dict[str, list[str]]:
        """Fail what lapsed, through the status rules; the failed ids by reason."""
        return await self._mailbox.call(Expire(rules, limit), shield=True)

    async def backlog(self) -> Backlog:
        return await self._mailbox.call(CountBacklog(), shield=True)

    async def release(self, instance: str) -> int:
        return await self._mailbox.call(Release(instance), shield=True)


class ComplianceHandle:
    """The suppression list, replies and quotas, each one request to the repository
    actor. Writes are shielded: once asked, the store may carry them out, and the
    caller must learn how."""

    def __init__(self, mailbox: Mailbox[Request]) -> None:
        self._mailbox = mailbox

    async def suppress(self, entry: Suppression) -> tuple[bool, list[str]]:
        """Put the number on the list; whether it is new there, and the ids of the
        waiting messages to it that were failed."""
        return await self._mailbox.call(Suppress(entry), shield=True)

    async def unsuppress(self, number: str) -> bool:
        return await self._mailbox.call(Unsuppress(number), shield=True)

    async def suppression(self, number: str) -> Suppression | None:
        return await self._mailbox.call(GetSuppression(number))

    async def suppressions(self, after: str, limit: int) -> list[Suppression]:
        return await self._mailbox.call(ListSuppressions(after, limit))

    async def receive(self, inbound: Sequence[Inbound], callback_url: str | None = None
                      ) -> list[tuple[Inbound, list[str]]]:
        """Store replies, all or none (a keyword changes the list), each with its
        callback to ``callback_url`` pending: each stored reply, and the ids its
        opt-out failed."""
        return await self._mailbox.call(Receive(tuple(inbound), callback_url), shield=True)

    async def claim_reply_callbacks(self, instance: str, now: float, limit: int,
                                    lease: float) -> list[PendingReply]:
        return await self._mailbox.call(ClaimReplyCallbacks(instance, now, limit, lease),
                                        shield=True)

    async def settle_reply_callback(self, inbound_id: str, outcome: CallbackOutcome,
                                    attempts: int, retry_at: float, error: str | None) -> None:
        await self._mailbox.call(SettleReplyCallback(inbound_id, outcome, attempts, retry_at,
                                                     error), shield=True)

    async def inbound(self, query: InboundQuery) -> list[Inbound]:
        return await self._mailbox.call(ListInbound(query))

    async def quota_used(self, tenant: str, at: float) -> int:
        """Messages ``tenant`` sent on the UTC day of ``at``, over every instance."""
        return await self._mailbox.call(QuotaUsed(tenant, utc_day(at)))
