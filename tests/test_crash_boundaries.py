"""A request's failure is that request's: whatever the store raises while serving one
request (a bug, a value the driver cannot bind) is answered to that request, its
work is taken back, and the repository actor goes on serving, on every store."""

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import structlog
import trio

from actors import repository
from actors.errors import ActorFailed
from smsproxy.errors import StoreError
from smsproxy.models import Message, new_id
from smsproxy.statuses import Status
from smsproxy.stores import MemoryStore, MessageStore

POISON = "poison"


class PoisonedStore:
    """A real store that raises an unexpected error where a request names the poison:
    after it wrote a message whose content is the poison, and when asked for the
    poisoned id, as a driver raises OverflowError on a value it cannot bind."""

    def __init__(self, inner: MessageStore, poisoned_id: str) -> None:
        self._inner = inner
        self._poisoned_id = poisoned_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def insert(self, messages: Sequence[Message]) -> None:
        self._inner.insert(messages)
        if any(m.content == POISON for m in messages):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")

    def lookup(self, message_id: str) -> Any:
        if message_id == self._poisoned_id:
            raise TypeError("a bug in the store")
        return self._inner.lookup(message_id)


def message(content: str = "hello") -> Message:
    return Message(new_id(), "+4912345678", content, created_at=0.0)


@pytest.fixture
async def poisoned(nursery: trio.Nursery, store_factory: Callable[[], MessageStore]
                   ) -> tuple[repository.RepositoryHandle, str]:
    poisoned_id = new_id()
    handle = await nursery.start(repository.run,
                                 lambda: PoisonedStore(store_factory(), poisoned_id))
    return handle, poisoned_id


async def test_a_request_that_raises_fails_alone_and_the_next_is_served(poisoned):
    repo, poisoned_id = poisoned
    with pytest.raises(ActorFailed):
        await repo.get(poisoned_id)
    good = message()
    await repo.save(good)
    assert (await repo.get(good.id)).status is Status.ACCEPTED


async def test_a_save_that_raises_is_taken_back_and_its_group_is_served(poisoned):
    repo, _ = poisoned
    good, bad, other = message(), message(POISON), message()
    outcomes: dict[str, object] = {}

    async def save(m: Message) -> None:
        try:
            outcomes[m.id] = await repo.save(m)
        except ActorFailed as error:
            outcomes[m.id] = error

    async with trio.open_nursery() as nursery:  # one group, where the actor takes them so
        for m in (good, bad, other):
            nursery.start_soon(save, m)
    assert isinstance(outcomes[bad.id], ActorFailed)
    assert not isinstance(outcomes[good.id], ActorFailed)
    assert not isinstance(outcomes[other.id], ActorFailed)
    assert (await repo.get(bad.id)).status is Status.NOT_FOUND  # rolled back
    assert {m.id for m in await repo.accepted()} == {good.id, other.id}
    assert [e.status for e in await repo.history(good.id)] == [Status.ACCEPTED]
    assert await repo.history(bad.id) == []


async def test_an_update_in_the_group_of_a_failing_request_is_applied_once(poisoned):
    repo, poisoned_id = poisoned
    good = message()
    await repo.save(good)

    async def poisoned_get() -> None:
        with pytest.raises(ActorFailed):
            await repo.get(poisoned_id)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(poisoned_get)
        nursery.start_soon(repo.update, good.id, Status.CONFIRMED)
    assert [e.status for e in await repo.history(good.id)] == [Status.ACCEPTED,
                                                                 Status.CONFIRMED]


class FlappingStore(MemoryStore):
    """Every other transaction fails, as a disk that is full, then freed, then full."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.transactions += 1
        if self.transactions % 2 == 0:
            raise StoreError("SQLite: database or disk is full")
        with super().transaction():
            yield


async def test_a_flapping_store_is_logged_at_most_once_per_interval(nursery, autojump_clock):
    repo = await nursery.start(repository.run, FlappingStore)
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):  # 50 s, half of them failing
            with contextlib.suppress(StoreError):
                await repo.get(new_id())
            await trio.sleep(0.5)
    failures = [e for e in logs if e["event"] == "store_transaction_failed"]
    recoveries = [e for e in logs if e["event"] == "store_recovered"]
    assert 5 <= len(failures) <= 6
    assert len(recoveries) == len(failures)
    # Each line counts what it left out; only the last interval's are not told yet.
    told = len(failures) + sum(e["failures_not_logged"] for e in failures + recoveries)
    assert 50 - 10 <= told <= 50
