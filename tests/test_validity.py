"""Validity periods: a message the provider has not taken by its valid_until is never
sent late; it becomes FAILED with the reason 'validity period expired', in the
queue of every store, through a provider outage, and over HTTP."""

from datetime import UTC, datetime

import pytest
import trio

from api import ApiSettings, create_app
from smsproxy.dispatching import VALIDITY_EXPIRED, BatchingRules, expiry_reason
from smsproxy.statuses import Status
from smsproxy.stores.protocol import Lapsed
from tests.fakes import WALL_CLOCK_AT_START, ScriptedProvider
from tests.test_queue import T0, claim, in_transaction, saved

WALL = 1_764_180_000.0
PHONE = "+4915112345678"
RULES = BatchingRules(batch_size=10, max_delay=1.0, max_in_flight=1, message_ttl=3600.0,
                      status_grace=1800.0, requeue_initial=5.0, requeue_max=300.0)


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


# --- in the queue, on every store ----------------------------------------------------------


def test_a_waiting_message_past_its_validity_is_never_claimed_and_lapses_by_it(queue, clock):
    [short] = saved(queue, 1, valid_until=T0 + 2.0)
    [plain] = saved(queue, 1)
    clock.now = T0 + 3.0
    assert [m.id for m in claim(queue).messages] == [plain]
    assert in_transaction(queue, queue.lapsed, 3600, 1800, 10) == [
        Lapsed(short, False, True, None)]


def test_a_parked_batch_lapses_at_the_validity_not_the_ttl(queue, clock):
    [short] = saved(queue, 1, valid_until=T0 + 20.0)
    claim(queue, max_delay=0)
    in_transaction(queue, queue.park, "a", [short], 1, "HTTP 503", False, 5, 300, {})
    clock.now = T0 + 19.9
    assert in_transaction(queue, queue.lapsed, 3600, 1800, 10) == []
    clock.now = T0 + 20.0
    assert in_transaction(queue, queue.lapsed, 3600, 1800, 10) == [
        Lapsed(short, False, True, "HTTP 503")]


def test_one_the_provider_may_have_is_held_unsent_until_its_grace_is_over(queue, clock):
    [short] = saved(queue, 1, valid_until=T0 + 20.0)
    claim(queue, max_delay=0)
    in_transaction(queue, queue.park, "a", [short], 1, "timed out", True, 5, 300, {})
    clock.now = T0 + 25.0  # past its validity: never sent again, not failed yet
    assert claim(queue, max_delay=0).messages == ()
    assert in_transaction(queue, queue.lapsed, 3600, 1800, 10) == []
    clock.now = T0 + 20.0 + 1800
    assert in_transaction(queue, queue.lapsed, 3600, 1800, 10) == [
        Lapsed(short, True, True, "timed out")]


def test_validity_names_the_reason_only_when_it_ends_first(queue, clock):
    ttl = RULES.message_ttl
    both = saved(queue, 1, valid_until=T0 + ttl)[0]  # both at once: validity
    later = saved(queue, 1, valid_until=T0 + ttl + 1)[0]
    clock.now = T0 + ttl + 1
    facts = {x.message_id: x for x in in_transaction(queue, queue.lapsed, ttl, 0, 10)}
    assert facts[both].by_validity and not facts[later].by_validity
    assert expiry_reason(facts[both], RULES) == VALIDITY_EXPIRED
    assert "TTL" in expiry_reason(facts[later], RULES)
