"""The dispatcher's own rules on trio's MockClock, with the shared queue in memory: when
it claims, how many batches at once, what a failure and a shutdown do. (The queue's
SQL is tested against PostgreSQL in test_postgres_store.py, the whole in
test_instances.py.)"""

import math
from functools import partial

import pytest
import trio

from actors import dispatcher, stats
from actors.dispatcher import DispatchSettings
from actors.sender import RetryPolicy
from smsproxy.batching import BatchingRules
from smsproxy.errors import StoreError
from smsproxy.models import Message, Saved
from smsproxy.statuses import Status
from smsproxy.stores.protocol import Backlog, Claimed
from tests.fakes import ScriptedProvider

PHONE = "+4912345678"


class MemoryQueue:
    """The shared queue's rules, kept in memory, on trio's clock (see SharedQueue)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.failing = False
        self.claims = 0

    def now(self) -> float:
        return trio.current_time()

    def _due(self) -> list[dict]:
        now = self.now()
        return sorted(
            (r for r in self.rows.values() if r["status"] is Status.ACCEPTED and not r["sent"]
             and r["not_before"] <= now and (r["until"] is None or r["until"] < now)),
            key=lambda r: r["message"].created_at)

    async def claim(self, instance, batch_size, max_delay, lease) -> Claimed:
        await trio.lowlevel.checkpoint()
        if self.failing:
            raise StoreError("database away")
        self.claims += 1
        due = self._due()[:batch_size]
        if not due:
            return Claimed(())
        oldest = due[0]["message"].created_at
        if len(due) < batch_size and self.now() < oldest + max_delay:
            return Claimed((), next_due=oldest + max_delay, waiting=len(due))
        for row in due:
            row["owner"], row["until"] = instance, self.now() + lease
        return Claimed(tuple(row["message"] for row in due))

    async def renew(self, instance, ids, lease) -> set[str]:
        held = {i for i in ids if self.rows[i]["owner"] == instance
                and self.rows[i]["status"] is Status.ACCEPTED}
        for i in held:
            self.rows[i]["until"] = self.now() + lease
        return held

    async def mark_sent(self, instance, ids) -> None:
        for i in ids:
            self.rows[i].update(sent=True, owner=None, until=None)

    async def park(self, instance, ids, attempts, error, maybe_taken, initial, maximum) -> None:
        for i in ids:
            row = self.rows[i]
            row.update(owner=None, until=None,
                       not_before=self.now() + min(maximum, initial * 2 ** row["rounds"]))
            row["rounds"] += 1

    async def expire(self, ttl, grace, reasons) -> list[str]:
        return []

    async def backlog(self) -> Backlog:
        unsent = sum(1 for r in self.rows.values() if not r["sent"])
        return Backlog(unsent, len(self._due()))

    async def release(self, instance) -> int:
        mine = [r for r in self.rows.values() if r["owner"] == instance]
        for row in mine:
            row.update(owner=None, until=None)
        return len(mine)


class Repository:
    """The repository handle as the dispatcher uses it: saves, and the shared queue."""

    def __init__(self, queue: MemoryQueue) -> None:
        self.shared_queue = queue

    async def save(self, *messages: Message, idempotency=None, at: float = 0.0) -> Saved:
        for message in messages:
            self.shared_queue.rows[message.id] = {
                "message": message, "status": Status.ACCEPTED, "sent": False, "owner": None,
                "until": None, "not_before": 0.0, "rounds": 0}
        return Saved(tuple(m.id for m in messages), replayed=False)


@pytest.fixture
def queue():
    return MemoryQueue()


@pytest.fixture
def start(nursery, queue):
    async def start_dispatcher(provider=None, *, batch_size=10, max_delay=1.0,
                               max_in_flight=4, max_attempts=1, lease=30.0, poll=0.25):
        provider = provider or ScriptedProvider()
        counts = await nursery.start(stats.run)
        rules = BatchingRules(batch_size, max_delay, max_in_flight, message_ttl=3600)
        handle = await nursery.start(partial(
            dispatcher.run, Repository(queue), provider, counts, rules,
            RetryPolicy(max_attempts, 10.0), 100_000, DispatchSettings("me", lease, poll),
            clock=trio.current_time,
        ))
        return handle, provider

    return start_dispatcher


async def submit(handle, count: int) -> list[str]:
    return [i for _ in range(count)
            for i in (await handle.submit(PHONE, "hello")).message_ids]


async def test_a_full_batch_leaves_at_once_and_a_partial_one_after_the_max_delay(
    start, autojump_clock
):
    handle, provider = await start(batch_size=10, max_delay=1.0)
    full = await submit(handle, 10)
    await trio.sleep(0.01)
    assert provider.sent_ids() == [full]
    started = trio.current_time()
    rest = await submit(handle, 3)
    await trio.sleep(0.9)
    assert len(provider.calls) == 1  # not yet: neither full nor overdue
    await trio.sleep(0.2)
    assert provider.sent_ids() == [full, rest]
    assert provider.call_times[1] - started == pytest.approx(1.0, abs=0.01)


async def test_posts_short_of_a_batch_do_not_each_cost_a_claim(start, queue, autojump_clock):
    handle, provider = await start(ScriptedProvider(latency=5), batch_size=10, max_delay=10,
                                   poll=1.2)
    await submit(handle, 25)  # two full batches in flight, 5 waiting
    await trio.sleep(1.5)  # past a count of the backlog, which includes what is in flight
    claims_before = queue.claims
    await submit(handle, 4)  # still short of a batch: the timer will do
    await trio.sleep(0.01)
    assert queue.claims == claims_before
    await submit(handle, 1)  # now a batch is full
    await trio.sleep(0.01)
    assert len(provider.calls) == 3


async def test_at_most_max_in_flight_batches_at_once(start, autojump_clock):
    handle, provider = await start(ScriptedProvider(latency=5), batch_size=10, max_in_flight=2)
    await submit(handle, 50)
    await trio.sleep(1)
    assert provider.max_concurrent == 2
    await trio.sleep(20)
    assert len(provider.calls) == 5


async def test_a_failed_batch_is_parked_and_tried_again_later(start, queue, autojump_clock):
    handle, provider = await start(ScriptedProvider(failures=1), batch_size=2)
    ids = await submit(handle, 2)
    await trio.sleep(1)
    assert len(provider.calls) == 1
    assert all(not queue.rows[i]["sent"] for i in ids)
    await trio.sleep(5)  # the first park is 5 s
    assert provider.sent_ids() == [ids, ids]
    assert all(queue.rows[i]["sent"] for i in ids)


async def test_a_retry_sends_only_what_is_still_held_and_waiting(start, queue, autojump_clock):
    provider = ScriptedProvider(failures=1)
    handle, _ = await start(provider, batch_size=2, max_attempts=2)
    reported, waiting = await submit(handle, 2)
    await trio.sleep(0.1)  # the first attempt failed; the retry waits its backoff
    queue.rows[reported]["status"] = Status.CONFIRMED  # reported before the retry
    await trio.sleep(5)
    assert provider.sent_ids() == [[reported, waiting], [waiting]]


async def test_a_database_away_is_one_warning_and_claims_resume(start, queue, autojump_clock):
    handle, provider = await start(batch_size=2)
    queue.failing = True
    ids = await submit(handle, 2)
    await trio.sleep(5)
    assert provider.calls == []
    queue.failing = False
    await trio.sleep(1)
    assert provider.sent_ids() == [ids]


async def test_draining_waits_for_the_batches_in_flight(start, queue, autojump_clock):
    handle, provider = await start(ScriptedProvider(latency=math.inf), batch_size=2)
    ids = await submit(handle, 2)
    await trio.sleep(1)
    with trio.move_on_after(3) as waited:
        await handle.drain()  # the provider hangs: drain waits for it
    assert waited.cancelled_caught
    assert not handle.accepting
    provider.released.set()
    await handle.drain()
    assert all(queue.rows[i]["sent"] for i in ids)


async def test_claims_go_back_when_shutdown_cuts_the_senders_off(nursery, queue, autojump_clock):
    provider = ScriptedProvider(latency=math.inf)
    counts = await nursery.start(stats.run)
    rules = BatchingRules(2, 1.0, 4, message_ttl=3600)
    async with trio.open_nursery() as layer:  # as the supervisor runs it
        handle = await layer.start(partial(
            dispatcher.run, Repository(queue), provider, counts, rules, RetryPolicy(1, 10.0),
            100_000, DispatchSettings("me", 30.0), clock=trio.current_time,
        ))
        ids = await submit(handle, 2)
        await trio.sleep(1)
        assert all(queue.rows[i]["owner"] == "me" for i in ids)
        layer.cancel_scope.cancel()  # the grace ran out
    assert all(queue.rows[i]["owner"] is None for i in ids)  # not held for 30 s more
