"""Token buckets, one per client: ``rate`` tokens a second, at most ``burst`` saved up.

Pure bookkeeping; the caller passes the time (a monotonic clock).
"""

from dataclasses import dataclass

__all__ = ["TokenBuckets"]


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str, now: float, tokens: int = 1) -> float:
        """Take ``tokens`` if the client has them: 0.0; else seconds until it would."""
        bucket = self._buckets.get(client)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if tokens > self.burst:
            return float("inf")  # can never be granted; the caller should say so
        if bucket.tokens >= tokens:
            bucket.tokens -= tokens
            return 0.0
        return (tokens - bucket.tokens) / self.rate

    def _make_room(self, now: float) -> None:
        """Forget clients whose bucket has refilled: they are as if never seen."""
        if len(self._buckets) < self._max_clients:
            return
        full_after = self.burst / self.rate
        self._buckets = {
            client: bucket for client, bucket in self._buckets.items()
            if now - bucket.updated < full_after
        }
