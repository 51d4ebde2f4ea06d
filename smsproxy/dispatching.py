"""The dispatch rules, free of trio and of any store: when a batch leaves, how long
a message may wait, and how an expired one's reason is worded.

The table is the queue on every store (:class:`smsproxy.stores.protocol.Queue`):
the store keeps the facts in each message's row (claims, parking, rounds, the
last provider error, whether an attempt may have reached the provider), and these
rules say what they mean.

A message fails by TTL only when no attempt can have reached the provider. Once
an attempt's outcome was unknown (a timeout after the request went out, a
gateway's 502, an unreadable answer), the provider may have it and its status
report may still come: such a message gets ``status_grace`` more before it fails,
and is not sent again meanwhile.
"""

import math
from dataclasses import dataclass

from smsproxy.models import Message
from smsproxy.stores.protocol import ClaimRules, Lapsed

__all__ = ["DEADLINE_LEAD", "VALIDITY_EXPIRED", "BatchingRules", "expiry_reason"]

DEADLINE_LEAD = 0.02
"""Seconds before a message's own deadline that its batch is claimed: the time from
the claim to the provider call's start, on a loaded event loop."""

VALIDITY_EXPIRED = "validity period expired"
"""The reason of a message that was not sent within its validity (valid_for, valid_until)."""


@dataclass(frozen=True, slots=True)
class BatchingRules:
    batch_size: int
    """At least 1."""
    max_delay: float
    max_in_flight: int
    message_ttl: float
    status_grace: float = 3600.0
    """Added to the TTL of a message the provider may have taken, for its report to come."""
    requeue_initial: float = 5.0
    """Delay before a batch that exhausted its attempts is tried again; doubles each round."""
    requeue_max: float = 300.0

    @property
    def retry_after(self) -> int:
        """Seconds a refused POST is told to wait (Retry-After): a flush's worth."""
        return max(1, math.ceil(self.max_delay))

    def leave_by(self, message: Message) -> float:
        """When a message's batch must be claimed: its own deadline (a little early),
        else ``max_delay`` after it was ready. (The store orders its claims so.)"""
        if message.deliver_by is not None:
            return message.deliver_by - DEADLINE_LEAD
        return message.ready_at + self.max_delay

    def claim(self, lease: float) -> ClaimRules:
        """What a claim of these rules takes, held for ``lease`` seconds."""
        return ClaimRules(self.batch_size, self.max_delay, lease, self.message_ttl,
                          DEADLINE_LEAD)


def expiry_reason(lapsed: Lapsed, rules: BatchingRules) -> str:
    """Why a message that was never taken by the provider in time is FAILED."""
    if lapsed.by_validity:
        return VALIDITY_EXPIRED
    error = lapsed.last_error or "none recorded"
    if lapsed.maybe_taken:
        return (f"no status report from the provider within the message TTL of "
                f"{rules.message_ttl:g} s and a grace of {rules.status_grace:g} s; "
                f"an attempt may have reached it; last error: {error}")
    return (f"not accepted by the provider within the message TTL of "
            f"{rules.message_ttl:g} s; no attempt reached it; last error: {error}")
