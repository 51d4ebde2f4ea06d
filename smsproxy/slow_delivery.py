"""Which providers deliver slowly: GOV.UK Notify's rule, on the clock it is given.

A provider is slow when, of the messages it took in the last ``window`` (15 min), at
least ``share`` (15 %) needed more than ``threshold`` (5 min) to be delivered: their
DELIVERED report came later than that, or has not come and that long has passed.
Messages still within the threshold count as neither. Counts are kept per minute of
taking (a few numbers a minute, whatever the traffic); the time each message was
taken is kept until its report, for the last ``remembered`` messages. A message
forgotten before its report counts for nothing (not for slow).
"""

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DeliveryWatch", "SlowDeliveryRule"]


@dataclass(frozen=True, slots=True)
class SlowDeliveryRule:
    threshold: float = 300.0
    """Seconds from taken to delivered beyond which a message was slow."""
    window: float = 900.0
    """Seconds of taking that count."""
    share: float = 0.15
    """A provider is slow when at least this share of its messages was."""
    minimum: int = 20
    """Fewer messages taken in the window than this say nothing (one late text of
    three is not a slow provider)."""


@dataclass
class _Minute:
    taken: int = 0
    fast: int = 0
    slow: int = 0
    forgotten: int = 0


class DeliveryWatch:
    def __init__(self, rule: SlowDeliveryRule = SlowDeliveryRule(),
                 remembered: int = 200_000) -> None:
        self.rule = rule
        self._remembered = remembered
        self._minutes: dict[str, dict[int, _Minute]] = {}
        self._pending: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def taken(self, provider: str, message_ids: Sequence[str], at: float) -> None:
        minute = self._minute(provider, at)
        minute.taken += len(message_ids)
        for message_id in message_ids:
            self._pending[message_id] = (provider, at)
            self._pending.move_to_end(message_id)
        while len(self._pending) > self._remembered:
            _, (name, when) = self._pending.popitem(last=False)
            self._minute(name, when).forgotten += 1

    def delivered(self, provider: str, message_id: str, at: float) -> None:
        """Its DELIVERED report came (from ``provider``; another's is not its)."""
        pending = self._pending.get(message_id)
        if pending is None or pending[0] != provider:
            return
        del self._pending[message_id]
        minute = self._minute(provider, pending[1])
        if at - pending[1] > self.rule.threshold:
            minute.slow += 1
        else:
            minute.fast += 1

    def slow_share(self, provider: str, now: float) -> float | None:
        """The share of its messages taken within the window that were slow (None:
        too few taken to tell)."""
        minutes = self._minutes.get(provider, {})
        first = math.floor((now - self.rule.window) / 60)
        for old in [m for m in minutes if m < first]:
            del minutes[old]
        taken = slow = 0
        for start, minute in minutes.items():
            taken += minute.taken - minute.forgotten
            slow += minute.slow
            if (start + 1) * 60 + self.rule.threshold <= now:  # all past the threshold
                slow += minute.taken - minute.forgotten - minute.fast - minute.slow
        if taken < self.rule.minimum:
            return None
        return slow / taken

    def is_slow(self, provider: str, now: float) -> bool:
        share = self.slow_share(provider, now)
        return share is not None and share >= self.rule.share

    def _minute(self, provider: str, at: float) -> _Minute:
        return self._minutes.setdefault(provider, {}).setdefault(math.floor(at / 60), _Minute())
