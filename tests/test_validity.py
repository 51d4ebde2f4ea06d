"""Validity periods: a message the provider has not taken by its valid_until is never
sent late; it becomes FAILED with the reason 'validity period expired', in the
batcher's bookkeeping, through a provider outage, on PostgreSQL and over HTTP."""

from datetime import UTC, datetime

import pytest
import trio

from api import ApiSettings, create_app
from smsproxy.batching import VALIDITY_EXPIRED, BatchingRules, BatchQueue, lapsed_by_validity
from smsproxy.models import Message, new_id
from smsproxy.statuses import Status
from smsproxy.stores.postgres import PostgresStore
from tests.conftest import WALL_CLOCK_AT_START
from tests.fakes import ScriptedProvider
from tests.test_postgres_store import FakeClock

WALL = 1_764_180_000.0
PHONE = "+4915112345678"
RULES = BatchingRules(batch_size=10, max_delay=1.0, max_in_flight=1, message_ttl=3600.0,
                      status_grace=1800.0, requeue_initial=5.0, requeue_max=300.0)


def message(n: int, valid_for: float | None = None, attempts: int = 0) -> Message:
    return Message(f"m{n}", PHONE, "hi", WALL, attempts,
                   valid_until=None if valid_for is None else WALL + valid_for)


def test_a_waiting_message_past_its_validity_is_never_put_in_a_batch():
    queue = BatchQueue(RULES)
    queue.add((message(1, valid_for=2.0), message(2)), now=0.0, wall_now=WALL)
    [batch] = queue.take_batches(3.0, wall_now=WALL + 3.0)
    assert [m.id for m in batch.messages] == ["m2"]
    assert [(m.id, maybe) for m, maybe in queue.take_lapsed(3.0, WALL + 3.0)] == [("m1", False)]


def test_a_parked_batch_fails_at_the_validity_not_the_ttl():
    queue = BatchQueue(RULES)
    queue.add((message(1, valid_for=20.0), message(2)), now=0.0, wall_now=WALL)
    [batch] = queue.take_batches(1.0, wall_now=WALL + 1.0)
    assert queue.exhausted(batch, 2.0, WALL + 2.0) == []
    assert queue.next_wakeup() == 7.0  # the retry delay (5 s) comes first
    assert queue.take_due_parked(7.0, WALL + 7.0) == []
    [again] = queue.take_batches(7.0, wall_now=WALL + 7.0)
    queue.exhausted(again, 8.0, WALL + 8.0)  # 10 s to the next retry; 12 s of validity
    assert queue.next_wakeup() == 18.0
    queue.take_due_parked(18.0, WALL + 18.0)
    [third] = queue.take_batches(18.0, wall_now=WALL + 18.0)
    queue.exhausted(third, 19.0, WALL + 19.0)  # 20 s to the next retry: past the validity
    assert queue.next_wakeup() == 20.0
    assert [m.id for m, _ in queue.take_due_parked(20.0, WALL + 20.0)] == ["m1"]


def test_one_the_provider_may_have_is_held_unsent_until_its_grace_is_over():
    queue = BatchQueue(RULES)
    queue.add((message(1, valid_for=20.0),), now=0.0, wall_now=WALL)
    [batch] = queue.take_batches(1.0, wall_now=WALL + 1.0)
    queue.exhausted(batch, 2.0, WALL + 2.0, maybe_taken=True)
    assert queue.take_due_parked(7.0, WALL + 25.0) == []  # past validity: held, not sent
    assert queue.take_batches(7.0, wall_now=WALL + 25.0) == []
    assert queue.next_wakeup() == 7.0 + (20.0 + 1800.0 - 25.0)
    [(expired, maybe)] = queue.take_due_parked(1802.0, WALL + 1820.0)
    assert (expired.id, maybe) == ("m1", True)


async def test_an_outage_longer_than_the_validity_fails_the_message_unsent(
        start_pipeline, autojump_clock):
    provider = ScriptedProvider(failures=float("inf"))
    pipeline = await start_pipeline(provider, batch_size=1, max_delay=0.0, max_attempts=1)
    client = create_app(pipeline.services, ApiSettings(
        clock=lambda: WALL_CLOCK_AT_START + trio.current_time())).test_client()
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": "code 1234",
                                             "valid_for": 60})
    message_id = (await answer.get_json())["id"]
    await trio.sleep(600)
    record = await pipeline.repository.get(message_id)
    assert (record.status, record.reason) == (Status.FAILED, VALIDITY_EXPIRED)
    accepted_at = trio.current_time() - 600
    assert provider.call_times and max(provider.call_times) <= accepted_at + 60
    body = await (await client.get(f"/sms/{message_id}")).get_json()
    assert body["valid_until"].endswith("Z") and body["reason"] == VALIDITY_EXPIRED


def test_postgres_never_claims_a_message_past_its_validity_and_fails_it(postgres_url):
    clock = FakeClock()
    clock.now = WALL
    store = PostgresStore(postgres_url, clock=clock)
    try:
        short = Message(new_id(), PHONE, "short", WALL, valid_until=WALL + 5.0)
        with store.transaction():
            store.insert([short])
        clock.now = WALL + 10.0
        with store.transaction():
            assert store.claim("a", 10, max_delay=1.0, lease=30.0).messages == ()
            assert store.expire(3600.0, 1800.0, ("never: ", "maybe: ")) == [short.id]
        with store.transaction():
            record = store.lookup(short.id)
        assert record is not None
        assert (record.status, record.reason) == (Status.FAILED, VALIDITY_EXPIRED)
    finally:
        store.close()


@pytest.mark.parametrize(("fields", "error"), [
    ({"valid_for": 60, "valid_until": "2030-01-01T00:00:00Z"},
     "give valid_for or valid_until, not both"),
    ({"valid_until": "2020-01-01T00:00:00Z"}, "is in the past"),
    ({"valid_until": "tomorrow"}, "RFC 3339"),
    ({"valid_for": 0}, "greater than 0"),
])
async def test_a_validity_that_cannot_be_kept_is_a_400(start_pipeline, fields, error):
    pipeline = await start_pipeline()
    client = create_app(pipeline.services).test_client()
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": "hi", **fields})
    assert answer.status_code == 400
    assert error in (await answer.get_data()).decode()


async def test_valid_until_is_shown_as_given(start_pipeline):
    pipeline = await start_pipeline()
    client = create_app(pipeline.services).test_client()
    until = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": "hi",
                                             "valid_until": "2030-01-01T13:00:00+01:00"})
    body = await (await client.get(f"/sms/{(await answer.get_json())['id']}")).get_json()
    assert datetime.fromisoformat(body["valid_until"]) == until


def test_one_the_provider_may_have_found_lapsed_in_the_queue_is_held_not_failed():
    """Recovered with attempts on record (the provider may have it), past its validity."""
    queue = BatchQueue(RULES)
    queue.add((message(1, valid_for=20.0, attempts=1), message(2)), now=0.0, wall_now=WALL)
    queue.draining = True
    [batch] = queue.take_batches(30.0, wall_now=WALL + 30.0)
    assert [m.id for m in batch.messages] == ["m2"]
    assert queue.take_lapsed(30.0, WALL + 30.0) == []
    queue.draining = False
    queue.succeeded(batch)
    assert queue.next_wakeup() == 30.0 + (20.0 + 1800.0 - 30.0)  # its grace, then it fails
    [(held, maybe)] = queue.take_due_parked(1820.0, WALL + 1820.0)
    assert (held.id, maybe) == ("m1", True)


def test_a_message_is_no_longer_sendable_at_the_very_moment_its_validity_ends():
    queue = BatchQueue(RULES)
    queue.add((message(1, valid_for=20.0),), now=0.0, wall_now=WALL)
    assert queue.take_batches(20.0, wall_now=WALL + 20.0) == []
    [(lapsed, _)] = queue.take_lapsed(20.0, WALL + 20.0)
    assert lapsed.id == "m1"


def test_a_held_message_wakes_at_the_end_of_its_grace_or_fails_if_past_it():
    queue = BatchQueue(RULES)
    queue.add((message(1, valid_for=20.0, attempts=1),), now=0.0, wall_now=WALL)
    queue.take_batches(1.0, wall_now=WALL + 1900.0)  # past its validity and its grace
    assert [m.id for m, _ in queue.take_lapsed(1.0, WALL + 1900.0)] == ["m1"]
    queue.add((message(2, valid_for=20.0, attempts=1),), now=2.0, wall_now=WALL)
    queue.take_batches(3.0, wall_now=WALL + 1819.5)  # half a second of grace left
    assert queue.take_lapsed(3.0, WALL + 1819.5) == []
    assert queue.next_wakeup() == pytest.approx(3.5)


def test_validity_names_the_reason_only_when_it_ends_first():
    ttl = RULES.message_ttl
    assert lapsed_by_validity(message(1, valid_for=ttl), ttl)  # both at once: validity
    assert not lapsed_by_validity(message(2, valid_for=ttl + 1), ttl)
    assert not lapsed_by_validity(message(3), ttl)
