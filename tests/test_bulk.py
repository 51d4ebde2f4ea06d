"""POST /sms/bulk: many messages in one request, all or none, in order."""

import json
import uuid

import pytest
import trio
import trio.testing

from api import ApiSettings, create_app
from smsproxy.tenants import parse_keys

PHONE = "+4912345678"


def items(count: int, **override) -> list[dict]:
    return [{"phone_number": f"+49151{i:07d}", "content": f"message {i}", **override}
            for i in range(count)]


async def post_bulk(client, messages, headers=None):
    body = messages if isinstance(messages, bytes) else json.dumps({"messages": messages})
    response = await client.post("/sms/bulk", data=body, headers=headers or {})
    return response.status_code, await response.get_json(), response.headers


@pytest.fixture
async def pipeline(start_pipeline):
    return await start_pipeline(batch_size=100, max_delay=0.01)


@pytest.fixture
def client(pipeline):
    return create_app(pipeline.services).test_client()


async def test_order_and_ids_are_preserved(pipeline, client):
    messages = items(5)
    code, body, _ = await post_bulk(client, messages)
    assert code == 202
    answered = body["messages"]
    assert [a["status"] for a in answered] == ["ACCEPTED"] * 5
    assert all(uuid.UUID(a["id"]).version == 7 for a in answered)
    assert len({a["id"] for a in answered}) == 5
    stored = {m.id: m for m in await pipeline.repository.accepted()}
    for item, answer in zip(messages, answered, strict=True):
        message = stored[answer["id"]]
        assert (message.phone_number, message.content) == (item["phone_number"],
                                                             item["content"])


async def test_the_whole_request_is_one_transaction(start_pipeline):
    from tests.fakes import CountingStore

    store = CountingStore()
    pipeline = await start_pipeline(store=store, batch_size=1000, max_delay=60)
    client = create_app(pipeline.services).test_client()
    await trio.testing.wait_all_tasks_blocked()  # the batcher's first look for scheduled ones
    before = store.transactions
    await post_bulk(client, items(500))
    assert store.transactions - before == 1


async def test_original_field_names_work_per_item(client):
    code, _, _ = await post_bulk(client, [{"PhoneNumber": PHONE, "Content": "hi"},
                                          {"phoneNumber": PHONE, "content": "yo"}])
    assert code == 202


async def test_one_invalid_item_rejects_all_and_stores_nothing(pipeline, client):
    messages = items(10)
    messages[3]["phone_number"] = "not a number"
    messages[7]["content"] = ""
    code, body, _ = await post_bulk(client, messages)
    assert code == 400
    assert [i["index"] for i in body["invalid"]] == [3, 7]
    assert "phone_number" in body["invalid"][0]["error"]
    assert "content" in body["invalid"][1]["error"]
    assert "nothing was accepted" in body["error"]
    assert await pipeline.repository.accepted() == []
    assert pipeline.dispatcher.queue_depth == 0


async def test_a_thousand_items_are_accepted_and_all_delivered(start_pipeline, autojump_clock):
    pipeline = await start_pipeline(batch_size=100, max_delay=0.01, simulate=True)
    client = create_app(pipeline.services).test_client()
    code, body, _ = await post_bulk(client, items(1000))
    assert code == 202
    ids = [a["id"] for a in body["messages"]]
    await trio.sleep(5)  # mock clock: far past max_delay for every batch
    await pipeline.updater.flush()
    assert (await pipeline.stats.snapshot()).messages_delivered == 1000
    statuses = {(await pipeline.repository.get(i)).status.value for i in ids}
    assert statuses == {"DELIVERED"}


async def test_1001_items_is_413(client, pipeline):
    code, body, _ = await post_bulk(client, items(1001))
    assert code == 413
    assert "at most 1000" in body["error"]
    assert await pipeline.repository.accepted() == []


async def test_the_item_limit_is_configurable(pipeline):
    client = create_app(pipeline.services, ApiSettings(bulk_max=10)).test_client()
    assert (await post_bulk(client, items(10)))[0] == 202
    assert (await post_bulk(client, items(11)))[0] == 413


async def test_body_over_the_bulk_limit_is_413(client):
    huge = json.dumps({"messages": items(10)}) + " " * (4 * 1024 * 1024)
    code, body, _ = await post_bulk(client, huge.encode())
    assert code == 413
    assert "error" in body


@pytest.mark.parametrize("body", [b'{"messages": []}', b'{"messages": "x"}', b"{}", b"[]",
                                  b'{"messages": [1, 2]}', b"{oops"])
async def test_malformed_bulk_is_400(client, body):
    code, answer, _ = await post_bulk(client, body)
    assert code == 400
    assert "error" in answer


async def test_idempotent_retry_returns_the_same_ids(pipeline, client):
    messages = items(20)
    first = await post_bulk(client, messages, {"Idempotency-Key": "wave-1"})
    again = await post_bulk(client, messages, {"Idempotency-Key": "wave-1"})
    assert [a["id"] for a in first[1]["messages"]] == [a["id"] for a in again[1]["messages"]]
    assert again[2]["Idempotent-Replayed"] == "true"
    changed = await post_bulk(client, items(21), {"Idempotency-Key": "wave-1"})
    assert changed[0] == 422


async def test_auth_applies(pipeline):
    client = create_app(pipeline.services, ApiSettings(api_keys=parse_keys("k"))).test_client()
    assert (await post_bulk(client, items(2)))[0] == 401
    ok = await post_bulk(client, items(2), {"Authorization": "Bearer k"})
    assert ok[0] == 202


async def test_rate_limits_count_messages_not_requests(pipeline, autojump_clock):
    settings = ApiSettings(rate_limit=100, rate_burst=150, monotonic=trio.current_time)
    client = create_app(pipeline.services, settings).test_client()
    assert (await post_bulk(client, items(100)))[0] == 202
    code, _, headers = await post_bulk(client, items(100))
    assert code == 429
    assert headers["Retry-After"] == "1"
    too_big = await post_bulk(client, items(151))
    assert too_big[0] == 429 and "burst" in too_big[1]["error"]


async def test_a_full_queue_refuses_the_whole_request(start_pipeline):
    pipeline = await start_pipeline(max_queue=50, batch_size=1000, max_delay=60)
    client = create_app(pipeline.services).test_client()
    assert (await post_bulk(client, items(40)))[0] == 202
    code, _, headers = await post_bulk(client, items(20))
    assert code == 503
    assert "Retry-After" in headers
    assert len(await pipeline.repository.accepted()) == 40


async def test_a_request_larger_than_the_whole_queue_is_413_not_a_retry_forever(
    start_pipeline,
):
    pipeline = await start_pipeline(max_queue=50, batch_size=1000, max_delay=60)
    client = create_app(pipeline.services).test_client()
    code, answer, headers = await post_bulk(client, items(51))  # on an empty queue
    assert code == 413
    assert "--max-queue 50" in answer["error"]
    assert "Retry-After" not in headers
    assert await pipeline.repository.accepted() == []
    assert (await post_bulk(client, items(50)))[0] == 202  # exactly the limit still fits


async def test_metrics_count_bulk_requests_and_sizes(client):
    await post_bulk(client, items(30))
    await post_bulk(client, items(70))
    text = (await (await client.get("/metrics")).get_data()).decode()
    assert "smsproxy_bulk_request_messages_count 2.0" in text
    assert "smsproxy_bulk_request_messages_sum 100.0" in text
