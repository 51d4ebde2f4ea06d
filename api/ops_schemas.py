"""What the operations routes answer: ``/stats`` (with each provider's bill),
``/healthz`` and ``/readyz``."""

from typing import Literal

from pydantic import BaseModel

__all__ = [
    "Health",
    "ProviderStatsBody",
    "Readiness",
    "StatsBody",
]


class ProviderStatsBody(BaseModel):
    requests: int
    messages: int
    failures: int
    state: Literal["up", "down", "probing"]
    weight: int
    price: float
    spend: float
    """requests x price"""


class StatsBody(BaseModel):
    success: int
    failed: int
    success_percentage: float
    batches_sent: int
    messages_accepted: int
    messages_sent: int
    messages_parked: int
    messages_expired: int
    messages_purged: int
    messages_delivered: int
    attempts: int
    provider_calls_saved: int
    updates_applied: int
    updates_rejected: int
    store_errors: int
    messages_claimed: int
    callbacks_delivered: int
    callback_attempts_failed: int
    callbacks_abandoned: int
    callbacks_pending: int
    claims_taken_over: int
    leases_lost: int
    success_by_attempt: dict[int, int]
    last_error: str | None
    queue_depth: int
    batches_in_flight: int
    providers: dict[str, ProviderStatsBody] | None = None
    """With --providers: each provider's requests, messages, failures, state and spend."""


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
