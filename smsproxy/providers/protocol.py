"""What the batcher needs of an SMS provider: one method that raises on failure.

A failed attempt raises :class:`~smsproxy.errors.ProviderUnavailable` when it is
worth retrying, :class:`~smsproxy.errors.ProviderRejected` when it is not.
Status reports flow back separately, to the updater actor.
"""

from typing import Protocol

from smsproxy.models import Batch

__all__ = ["Provider"]


class Provider(Protocol):
    async def send(self, batch: Batch) -> None: ...

    async def close(self) -> None: ...
