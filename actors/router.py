"""The router: several providers behind the one provider the dispatcher sends to.

Each batch goes to the provider the routing table chooses; when that provider
refuses it or cannot be reached, the batch goes on to the next one in the same
attempt, so that one provider's outage costs a batch no retry delay. A provider
being probed gets one message of the batch; the rest go on. When an attempt's
outcome is unknown, the provider may have taken the messages: they stay with it
(pinned) and are only ever resent to it, since only it can deduplicate them and
sending them elsewhere could text the phone twice.

What the router learns goes to the store with the batch's outcome: which provider
took each message and its own id for it (``Sent.providers``, ``Sent.refs``), and which
provider may have each message an unknown outcome left (``ProviderError.pinned``); a
claim returns a pinned message with its ``provider``. The router also keeps the last
``REMEMBERED`` refs itself, since a report may come before the store has them.
"""

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from smsproxy.errors import (
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
)
from smsproxy.models import Batch, Message
from smsproxy.providers.protocol import NOTHING, Provider, Sent, Webhook
from smsproxy.routing import RoutingTable

__all__ = ["REMEMBERED", "Routed", "Router"]

log = structlog.get_logger("smsproxy.router")

REMEMBERED = 200_000
"""Messages whose provider and refs are kept for the webhooks (the oldest go first)."""


@dataclass(frozen=True, slots=True)
class Routed:
    """A provider the router sends to, with its webhook."""

    provider: Provider
    webhook: Webhook | None


class _Bounded(OrderedDict[str, str]):
    def remember(self, key: str, value: str) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > REMEMBERED:
            self.popitem(last=False)


class Router:
    name = "router"
    max_batch: int | None = None

    def __init__(self, routed: Mapping[str, Routed], table: RoutingTable,
                 paid: Callable[[Sequence[Message], float], None] = lambda _m, _c: None,
                 ) -> None:
        """``paid``: told each time a provider took messages, with what its requests
        cost (requests x price), for each key's bill."""
        self.routed = dict(routed)
        self.table = table
        self._paid = paid
        self.sending: Counter[str] = Counter()
        """Requests under way, by provider: a report may outrun its request's answer."""
        self.refs = _Bounded()
        """(provider, its ref) as ``name\\x00ref`` -> our message id: a report may come
        before the store has the ref (see ``Repository.attribute``, which reads it)."""

    async def send(self, batch: Batch) -> Sent:
        sent = NOTHING
        pinned: dict[str, list[Message]] = {}
        free: list[Message] = []
        for message in batch.messages:
            pin = message.provider
            (pinned.setdefault(pin, []) if pin else free).append(message)
        try:
            if free:
                sent += await self._route(batch.id, free)
            for name, messages in pinned.items():
                if not self.table.is_up(name):
                    raise ProviderUnavailable(f"provider {name} is down; {len(messages)} "
                                              "messages it may have wait for it")
                sent += await self._send_to(name, batch.id, messages)
        except ProviderError as error:
            error.taken = sent.taken + error.taken
            error.refs = {**sent.refs, **error.refs}
            error.providers = {**sent.providers, **error.providers}
            error.requests_taken += sent.requests
            raise
        return sent

    async def _route(self, batch_id: str, messages: Sequence[Message]) -> Sent:
        sent = NOTHING
        waiting = list(messages)
        tried: set[str] = set()
        last: ProviderError | None = None
        moved = self.table.rebalance()
        if moved:
            log.info("provider_weights_moved", weights=moved)
        while waiting:
            route = self.table.choose(frozenset(tried))
            if route is None:
                assert last is not None
                raise last
            limit = self.routed[route.name].provider.max_batch or len(waiting)
            part = waiting[:1] if route.state == "probing" else waiting[:limit]
            try:
                sent += await self._send_to(route.name, batch_id, part)
            except ProviderOutcomeUnknown:
                raise
            except ProviderError as error:
                sent += Sent.of(error)
                taken = set(error.taken)
                waiting = [m for m in waiting if m.id not in taken]
                tried.add(route.name)
                last = error
                log.info("provider_failed_over", provider=route.name, messages=len(part),
                         error=str(error))
                continue
            waiting = waiting[len(part):]
        return sent

    async def _send_to(self, name: str, batch_id: str, messages: Sequence[Message]) -> Sent:
        provider = self.routed[name].provider
        self.sending[name] += 1
        try:
            sent = await provider.send(Batch(batch_id, tuple(messages)))
        except ProviderError as error:
            if error.taken:
                error.providers = dict.fromkeys(error.taken, name)
                self._took(name, Sent.of(error), messages)
            self.table.failed(name, _outcome(error))
            if isinstance(error, ProviderOutcomeUnknown):
                taken = set(error.taken)
                error.pinned = {m.id: name for m in messages if m.id not in taken}
            raise
        finally:
            self.sending[name] -= 1
        self._took(name, sent, messages)
        return Sent(sent.taken, sent.requests, sent.refs, dict.fromkeys(sent.taken, name))

    def _took(self, name: str, sent: Sent, messages: Sequence[Message]) -> None:
        self.table.took(name, sent.taken, sent.requests)
        taken = set(sent.taken)
        self._paid([m for m in messages if m.id in taken],
                   sent.requests * self.table.routes[name].price)
        for message_id, ref in sent.refs.items():
            self.refs.remember(f"{name}\x00{ref}", message_id)

    def delivered(self, provider: str, message_ids: Iterable[str]) -> None:
        """The provider reported these DELIVERED (its delivery times move weights)."""
        for message_id in message_ids:
            self.table.delivered(provider, message_id)

    def resolve(self, provider: str, ref: str) -> str | None:
        """Our message id for a provider's ref, if this process sent it."""
        return self.refs.get(f"{provider}\x00{ref}")

    async def close(self) -> None:
        for routed in self.routed.values():
            await routed.provider.close()


def _outcome(error: ProviderError) -> str:
    if isinstance(error, ProviderOutcomeUnknown):
        return "unknown"
    if isinstance(error, ProviderThrottled):
        return "throttled"
    if isinstance(error, ProviderRejected):
        return "refused"
    return "unavailable"
