"""Hostile input and abuse: keys, rate limits, idempotent retries, malicious JSON."""

import io
import json

import pytest
import trio
import trio.testing

from api import ApiSettings, create_app
from smsproxy.logs import configure_logging
from smsproxy.statuses import Status
from smsproxy.stores.sqlite import SqliteStore
from smsproxy.tenants import parse_keys

PHONE = "+4912345678"
MESSAGE = {"phone_number": PHONE, "content": "hello"}


def client_for(pipeline, **settings):
    return create_app(pipeline.services, ApiSettings(**settings)).test_client()


async def post(client, body=MESSAGE, headers=None, path="/sms"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(path, data=data, headers=headers or {})
    return response.status_code, await response.get_json(), response.headers


@pytest.fixture
async def pipeline(start_pipeline):
    return await start_pipeline(batch_size=1)


# --- API keys -------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer wrong"}, 401),
    ({"Authorization": "key-two"}, 401),  # not a Bearer token
    ({"Authorization": "Bearer key-one"}, 202),
    ({"Authorization": "Bearer key-two"}, 202),
    ({"Authorization": "bearer key-two"}, 202),  # the scheme is case-insensitive
    ({"Authorization": "Basic key-two"}, 401),
])
async def test_post_needs_a_valid_key(pipeline, headers, status):
    client = client_for(pipeline, api_keys=parse_keys("key-one,key-two"))
    code, body, answer_headers = await post(client, headers=headers)
    assert code == status
    if status == 401:
        assert "API key" in body["error"]
        assert answer_headers["WWW-Authenticate"] == "Bearer"


async def test_get_needs_a_valid_key_too(pipeline):
    client = client_for(pipeline, api_keys=parse_keys("key-one"))
    [message_id] = await pipeline.accept()
    assert (await client.get(f"/sms/{message_id}")).status_code == 401
    ok = await client.get(f"/sms/{message_id}", headers={"Authorization": "Bearer key-one"})
    assert ok.status_code == 200


async def test_without_keys_everyone_may_post(pipeline):
    code, _, _ = await post(client_for(pipeline))
    assert code == 202


async def test_operations_routes_need_no_key(pipeline):
    client = client_for(pipeline, api_keys=parse_keys("key-one"))
    for path in ("/healthz", "/readyz", "/stats", "/metrics", "/openapi.json"):
        assert (await client.get(path)).status_code == 200, path


async def test_keys_are_never_logged(pipeline):
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    try:
        client = client_for(pipeline, api_keys=parse_keys("very-secret-key"))
        await post(client, headers={"Authorization": "Bearer very-secret-key"})
        await post(client, headers={"Authorization": "Bearer guessed-key"})
        await trio.testing.wait_all_tasks_blocked()
    finally:
        configure_logging("console")
    assert stream.getvalue()  # something was logged
    assert "very-secret-key" not in stream.getvalue()
    assert "guessed-key" not in stream.getvalue()


# --- rate limits ----------------------------------------------------------------------

def limited(pipeline, **extra):
    return client_for(pipeline, rate_limit=2, rate_burst=3, monotonic=trio.current_time, **extra)


async def test_burst_then_429_with_retry_after(pipeline, autojump_clock):
    client = limited(pipeline)
    assert [(await post(client))[0] for _ in range(3)] == [202, 202, 202]
    code, body, headers = await post(client)
    assert code == 429
    assert headers["Retry-After"] == "1"
    assert "rate limit" in body["error"]


async def test_the_bucket_refills(pipeline, autojump_clock):
    client = limited(pipeline)
    for _ in range(3):
        await post(client)
    assert (await post(client))[0] == 429
    await trio.sleep(0.5)  # two per second: one token back
    assert (await post(client))[0] == 202
    assert (await post(client))[0] == 429
    await trio.sleep(10)  # full again, but never more than the burst
    assert [(await post(client))[0] for _ in range(4)] == [202, 202, 202, 429]


async def test_each_key_has_its_own_bucket(pipeline, autojump_clock):
    client = limited(pipeline, api_keys=parse_keys("a,b"))
    for _ in range(3):
        assert (await post(client, headers={"Authorization": "Bearer a"}))[0] == 202
    assert (await post(client, headers={"Authorization": "Bearer a"}))[0] == 429
    assert (await post(client, headers={"Authorization": "Bearer b"}))[0] == 202


async def test_refused_requests_store_nothing(pipeline, autojump_clock):
    client = limited(pipeline)
    codes = [(await post(client))[0] for _ in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    await trio.testing.wait_all_tasks_blocked()
    stored = {m for batch in pipeline.provider.sent_ids() for m in batch}
    stored |= {m.id for m in await pipeline.repository.accepted()}
    assert len(stored) == 3


# --- idempotency ----------------------------------------------------------------------

async def test_a_retried_request_gets_the_first_answer_and_sends_once(pipeline):
    client = client_for(pipeline)
    headers = {"Idempotency-Key": "order-4711-shipped"}
    first = await post(client, headers=headers)
    again = await post(client, headers=headers)
    assert first[0] == again[0] == 202
    assert first[1]["id"] == again[1]["id"]
    assert again[2]["Idempotent-Replayed"] == "true"
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.sent_ids() == [[first[1]["id"]]]


async def test_concurrent_retries_still_send_once(pipeline):
    client = client_for(pipeline)
    answers = []

    async def send() -> None:
        answers.append(await post(client, headers={"Idempotency-Key": "same"}))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(send)
    assert len({body["id"] for _, body, _ in answers}) == 1
    await trio.testing.wait_all_tasks_blocked()
    assert len(pipeline.provider.calls) == 1


async def test_the_same_key_for_another_request_is_422(pipeline):
    client = client_for(pipeline)
    await post(client, headers={"Idempotency-Key": "k1"})
    code, body, _ = await post(client, {"phone_number": PHONE, "content": "other"},
                               headers={"Idempotency-Key": "k1"})
    assert code == 422
    assert "different request" in body["error"]


async def test_keys_of_different_clients_do_not_collide(pipeline):
    client = client_for(pipeline, api_keys=parse_keys("a,b"))
    one = await post(client, headers={"Authorization": "Bearer a", "Idempotency-Key": "k"})
    two = await post(client, headers={"Authorization": "Bearer b", "Idempotency-Key": "k"})
    assert one[1]["id"] != two[1]["id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ü"])
async def test_malformed_idempotency_key_is_400(pipeline, key):
    code, body, _ = await post(client_for(pipeline), headers={"Idempotency-Key": key})
    assert code == 400
    assert "Idempotency-Key" in body["error"]


async def test_idempotency_survives_a_restart(start_pipeline, tmp_path):
    first = await start_pipeline(store=SqliteStore(tmp_path / "s.db"))
    answer = await post(client_for(first), headers={"Idempotency-Key": "k"})
    await first.repository.close()
    second = await start_pipeline(store=SqliteStore(tmp_path / "s.db"))
    again = await post(client_for(second), headers={"Idempotency-Key": "k"})
    assert again[1]["id"] == answer[1]["id"]
    assert again[2]["Idempotent-Replayed"] == "true"


async def test_old_keys_are_forgotten(pipeline):
    await pipeline.dispatcher.submit(PHONE, "hi", idempotency=None)
    client = client_for(pipeline)
    await post(client, headers={"Idempotency-Key": "old"})
    assert await pipeline.repository.forget_idempotency(before=1e12, limit=10) == 1
    again = await post(client, headers={"Idempotency-Key": "old"})
    assert "Idempotent-Replayed" not in again[2]


# --- malicious JSON -------------------------------------------------------------------

MALICIOUS = [
    (b'{"phone_number": "+49123", "phone_number": "+49999", "content": "x"}', "duplicate key"),
    (b'{"phone_number": "+49123", "content": NaN}', "NaN"),
    (b'{"phone_number": "+49123", "content": Infinity}', "Infinity"),
    (b'{"phone_number": "+49123", "content": "x", "pad": 1e999999}', "too large a number"),
    (b'{"phone_number": "+49123", "content": "x", "pad": -1E400}', "too large a number"),
    (b'{"phone_number": "+49123", "content": "\\ud800"}', "lone surrogate"),
    (b'{"phone_number": "+49123", "content": "\xff\xfe"}', "UTF-8"),
    (b"[" * 5_000 + b"]" * 5_000, "nested too deeply"),
    (b'{"phone_number": ' + b"9" * 5000 + b', "content": "x"}', "Invalid JSON"),
    (b'{"phone_number": "+49\\u0000123", "content": "x"}', "digits"),
    (b'{"phone_number": "+49123", "content": "a\\u0000b"}', "NUL"),
    (b'{"phone_number": {"nested": ["+49123"]}, "content": "x"}', "phone_number"),
    (b'{"phone_number": true, "content": "x"}', "phone_number"),
]


@pytest.mark.parametrize(("body", "reason"), MALICIOUS)
async def test_malicious_sms_bodies_are_400_and_store_nothing(pipeline, body, reason):
    code, answer, _ = await post(client_for(pipeline), body)
    assert code == 400
    assert reason in answer["error"]
    assert await pipeline.repository.accepted() == []


@pytest.mark.parametrize(("body", "_reason"), MALICIOUS[:7])
async def test_malicious_webhook_bodies_are_400(pipeline, body, _reason):
    code, answer, _ = await post(client_for(pipeline), body, path="/provider/status")
    assert code == 400
    assert "error" in answer


async def test_an_unknown_status_never_corrupts_a_stored_one(pipeline):
    [message_id] = await pipeline.accept()
    client = client_for(pipeline)
    await post(client, {message_id: "DELIVERED"}, path="/provider/status")
    for bogus in ("delivered", "ACCEPTED", "NOT_FOUND", "", "DELIVERED ", "FAILED\x00"):
        await post(client, {message_id: bogus}, path="/provider/status")
    await pipeline.updater.flush()
    assert (await pipeline.repository.get(message_id)).status is Status.DELIVERED
