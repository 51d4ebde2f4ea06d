"""Scheduled sending (send_at): a message waits in the store, not in memory, until its
time, does not count toward --max-queue, survives a restart, and then goes like any
other; its not-before time holds it back from every claim, on every store."""

import time
from datetime import UTC, datetime

import pytest
import trio

from api import ApiSettings, create_app
from smsproxy.callbacks import rfc3339
from smsproxy.models import Message, new_id
from smsproxy.stores.protocol import ClaimRules
from tests.fakes import WALL_CLOCK_AT_START, ScriptedProvider, wall_clock
from tests.processes import ServiceProcess, wait_for_status

PHONE = "+4915112345678"
WALL = 1_764_180_000.0


@pytest.fixture
async def service(start_pipeline):
    provider = ScriptedProvider()
    pipeline = await start_pipeline(provider, batch_size=100, max_delay=1.0, max_queue=1)
    app = create_app(pipeline.services, ApiSettings(clock=wall_clock))
    return app.test_client(), provider, pipeline


async def test_a_scheduled_message_waits_aside_until_its_time(service, autojump_clock):
    client, provider, pipeline = service
    send_at = WALL_CLOCK_AT_START + trio.current_time() + 30
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": "reminder",
                                             "send_at": rfc3339(send_at)})
    assert answer.status_code == 202
    message_id = (await answer.get_json())["id"]
    # not in the queue: with --max-queue 1, another message still gets in
    assert pipeline.dispatcher.queue_depth == 0
    now = await client.post("/sms", json={"phone_number": PHONE, "content": "now"})
    assert now.status_code == 202
    await trio.sleep(29)
    assert [[m.content for m in b.messages] for b in provider.calls] == [["now"]]
    await trio.sleep(2.5)  # its time, then --max-delay
    assert [m.content for m in provider.calls[-1].messages] == ["reminder"]
    assert provider.call_times[-1] >= send_at - WALL_CLOCK_AT_START
    body = await (await client.get(f"/sms/{message_id}")).get_json()
    assert datetime.fromisoformat(body["send_at"]).timestamp() == pytest.approx(send_at, abs=1e-3)


async def test_its_deadline_and_validity_count_from_its_send_at(service, autojump_clock):
    client, _, pipeline = service
    send_at = WALL_CLOCK_AT_START + trio.current_time() + 100
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": "x",
                                             "send_at": rfc3339(send_at), "valid_for": 10,
                                             "deliver_within": 5})
    record = await pipeline.repository.get((await answer.get_json())["id"])
    assert record.valid_until == pytest.approx(send_at + 10, abs=1e-3)
    assert record.deliver_by == pytest.approx(send_at + 5, abs=1e-3)


@pytest.mark.parametrize(("fields", "error"), [
    ({"send_at": "2100-01-01T00:00:00Z"}, "more than 35 days ahead"),
    ({"send_at": "next week"}, "RFC 3339"),
])
async def test_a_schedule_the_server_will_not_keep_is_a_400(service, fields, error):
    client, _, _ = service
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": "hi", **fields})
    assert answer.status_code == 400
    assert error in (await answer.get_data()).decode()


def test_a_scheduled_message_is_held_back_from_claims_and_the_backlog_until_its_time(
    queue, clock
):
    later = Message(new_id(), PHONE, "later", clock.now, send_at=clock.now + 20)
    sooner = Message(new_id(), PHONE, "sooner", clock.now, send_at=clock.now + 10)
    rules = ClaimRules(10, max_delay=0.0, lease=30.0, ttl=3600.0)
    with queue.transaction():
        queue.insert([later, sooner])
        assert queue.backlog().unsent == 0  # not toward --max-queue before its time
        assert queue.claim("a", rules).messages == ()
    clock.now += 10
    with queue.transaction():
        assert [m.content for m in queue.claim("a", rules).messages] == ["sooner"]
    clock.now += 10
    with queue.transaction():
        [taken] = queue.claim("a", rules).messages
    assert (taken.content, taken.send_at, taken.deliver_by) == ("later", later.send_at, None)


@pytest.mark.e2e
async def test_a_scheduled_message_survives_a_kill_9_and_goes_at_its_time(tmp_path):
    args = ("--store", "sqlite:///messages.db", "--max-delay", "0.1")
    first = await ServiceProcess.launch(tmp_path, *args, name="first")
    send_at = time.time() + 6
    try:
        async with first.client() as client:
            answer = await client.post("/sms", json={
                "phone_number": PHONE, "content": "reminder",
                "send_at": datetime.fromtimestamp(send_at, UTC).isoformat()})
            assert answer.status_code == 202
            message_id = answer.json()["id"]
    finally:
        first.stop()  # SIGKILL
    second = await ServiceProcess.launch(tmp_path, *args, name="second")
    try:
        async with second.client() as client:
            assert (await client.get(f"/sms/{message_id}")).json()["status"] == "ACCEPTED"
            with trio.fail_after(30):
                await wait_for_status(client, message_id, "DELIVERED")
        sent_at = datetime.fromisoformat(second.event("batch_sent")["timestamp"]).timestamp()
        assert send_at <= sent_at <= send_at + 5
        assert second.event("recovered")["messages"] == 0  # it waited in the store
        assert second.error_events() == []
    finally:
        second.stop()


