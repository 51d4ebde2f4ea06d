"""The HTTP contract, through the ASGI app (quart's test client) over real actors."""

import json
import math
import uuid

import pytest
import trio
import trio.testing

from api import create_app
from smsproxy.statuses import Status
from tests.fakes import ScriptedProvider

PHONE = "+4912345678"


@pytest.fixture
async def app_and_pipeline(start_pipeline):
    pipeline = await start_pipeline(batch_size=1)
    app = create_app(pipeline.services)
    return app, pipeline


@pytest.fixture
async def client(app_and_pipeline):
    return app_and_pipeline[0].test_client()


async def post_sms(client, body) -> tuple[int, dict, dict]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    response = await client.post("/sms", data=data, headers={"Content-Type": "application/json"})
    return response.status_code, await response.get_json(), response.headers


async def test_post_accepts_and_answers_with_a_time_ordered_uuid(client):
    status, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hello"})
    assert status == 202
    assert body["status"] == "ACCEPTED"
    assert uuid.UUID(body["id"]).version == 7


@pytest.mark.parametrize(
    ("phone_key", "content_key"),
    [
        ("PhoneNumber", "Content"),
        ("phoneNumber", "content"),
        ("PHONENUMBER", "CONTENT"),
        ("Phone_Number", "CoNtEnT"),
    ],
)
async def test_original_field_names_are_accepted_in_any_case(client, phone_key, content_key):
    status, body, _ = await post_sms(client, {phone_key: PHONE, content_key: "hi"})
    assert (status, body["status"]) == (202, "ACCEPTED")


async def test_accepted_message_is_stored_and_sent(app_and_pipeline):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    _, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hello"})
    await trio.testing.wait_all_tasks_blocked()
    [batch] = pipeline.provider.calls
    [sent] = batch.messages
    assert (sent.id, sent.phone_number, sent.content) == (body["id"], PHONE, "hello")


async def test_get_answers_the_stored_status(app_and_pipeline):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    _, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hello"})
    await pipeline.repository.update(body["id"], Status.DELIVERED)
    response = await client.get(f"/sms/{body['id']}")
    assert response.status_code == 200
    assert await response.get_json() == {"id": body["id"], "status": "DELIVERED",
                                         "phone_number": PHONE, "provider": "scripted"}


async def test_get_of_a_failed_message_gives_the_reason(app_and_pipeline):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    _, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hello"})
    await pipeline.repository.update(body["id"], Status.FAILED, reason="provider gave up")
    answer = await (await client.get(f"/sms/{body['id']}")).get_json()
    assert answer == {"id": body["id"], "status": "FAILED", "reason": "provider gave up",
                      "phone_number": PHONE, "provider": "scripted"}


async def test_get_of_an_unknown_id_is_not_found_with_200(client):
    message_id = str(uuid.uuid4())
    response = await client.get(f"/sms/{message_id}")
    assert response.status_code == 200
    assert await response.get_json() == {"id": message_id, "status": "NOT_FOUND"}


async def test_get_accepts_an_uppercase_id(app_and_pipeline):
    app, _ = app_and_pipeline
    client = app.test_client()
    _, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hello"})
    answer = await (await client.get(f"/sms/{body['id'].upper()}")).get_json()
    assert answer["id"] == body["id"]
    assert answer["status"] != "NOT_FOUND"


@pytest.mark.parametrize("bad_id", ["nope", "123", "g" * 32, "%00"])
async def test_get_of_a_non_uuid_is_400(client, bad_id):
    response = await client.get(f"/sms/{bad_id}")
    assert response.status_code == 400
    assert "UUID" in (await response.get_json())["error"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "Invalid JSON"),
        (b"", "Invalid JSON"),
        (b"\xff\xfe\x00", "Invalid JSON"),
        (b"[1, 2]", "object"),
        (b'"just a string"', "object"),
        (b"null", "object"),
        ({"content": "hi"}, "phone_number"),
        ({"phone_number": PHONE}, "content"),
        ({"phone_number": 4912345, "content": "hi"}, "phone_number"),
        ({"phone_number": PHONE, "content": ["hi"]}, "content"),
        ({"phone_number": PHONE, "content": {"nested": 1}}, "content"),
        ({"phone_number": "", "content": "hi"}, "must not be empty"),
        ({"phone_number": "+49 12a", "content": "hi"}, "digits"),
        ({"phone_number": "+1234567890123456", "content": "hi"}, "15 digits"),
        ({"phone_number": PHONE, "content": ""}, "content: must not be empty"),
        ({"phone_number": PHONE, "content": "a\u0000b"}, "NUL"),
        ({"phone_number": 10**400, "content": "hi"}, "phone_number"),
    ],
)
async def test_bad_input_is_400_with_a_readable_json_error(client, body, expected):
    status, answer, _ = await post_sms(client, body)
    assert status == 400
    assert set(answer) == {"error"}
    assert expected in answer["error"]


async def test_rejected_input_stores_nothing(app_and_pipeline):
    app, pipeline = app_and_pipeline
    await post_sms(app.test_client(), {"phone_number": "oops", "content": "hi"})
    assert await pipeline.repository.accepted() == []
    assert pipeline.dispatcher.queue_depth == 0


async def test_body_over_64_kib_is_413(client):
    status, answer, _ = await post_sms(
        client, {"phone_number": PHONE, "content": "x" * (64 * 1024)}
    )
    assert status == 413
    assert "error" in answer


async def test_body_of_exactly_64_kib_is_accepted(client):
    message = json.dumps({"phone_number": PHONE, "content": "hello"})
    body = message + " " * (64 * 1024 - len(message))  # JSON allows trailing whitespace
    status, _, _ = await post_sms(client, body.encode())
    assert status == 202
    status, _, _ = await post_sms(client, (body + " ").encode())
    assert status == 413


async def test_answer_reports_the_segments(client):
    _, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "x" * 161})
    assert body["segments"] == 2
    _, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "ж" * 71})
    assert body["segments"] == 2


async def test_content_over_ten_segments_is_400(client):
    status, answer, _ = await post_sms(client, {"phone_number": PHONE, "content": "x" * 1531})
    assert status == 400
    assert "11 SMS segments" in answer["error"]


async def test_unknown_path_is_404_json(client):
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert "error" in await response.get_json()


@pytest.mark.parametrize(("method", "path"), [("PUT", "/sms"), ("DELETE", "/sms/x"),
                                              ("POST", "/stats"), ("DELETE", "/sms"),
                                              ("PATCH", "/events")])
async def test_wrong_method_is_405_json_with_allow(client, method, path):
    response = await client.open(path, method=method)
    assert response.status_code == 405
    assert "error" in await response.get_json()
    assert response.headers.get("Allow")


async def test_healthz(client):
    response = await client.get("/healthz")
    assert (response.status_code, await response.get_json()) == (200, {"status": "ok"})


async def test_stats_move_when_messages_flow(app_and_pipeline):
    app, _ = app_and_pipeline
    client = app.test_client()
    before = await (await client.get("/stats")).get_json()
    for keys in ("success", "failed", "success_percentage", "batches_sent", "messages_sent",
                 "attempts", "queue_depth"):
        assert keys in before
    for _ in range(3):
        await post_sms(client, {"phone_number": PHONE, "content": "hi"})
    await trio.testing.wait_all_tasks_blocked()
    after = await (await client.get("/stats")).get_json()
    assert (before["success"], after["success"]) == (0, 3)
    assert after["messages_sent"] == 3
    assert after["success_percentage"] == 100.0


async def test_full_queue_is_503_with_retry_after(start_pipeline):
    pipeline = await start_pipeline(ScriptedProvider(latency=math.inf), max_queue=2)
    client = create_app(pipeline.services).test_client()
    for _ in range(2):
        assert (await post_sms(client, {"phone_number": PHONE, "content": "hi"}))[0] == 202
    status, answer, headers = await post_sms(client, {"phone_number": PHONE, "content": "hi"})
    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    assert "retry" in answer["error"]


async def test_post_during_shutdown_is_503(app_and_pipeline):
    app, pipeline = app_and_pipeline
    await pipeline.dispatcher.drain()
    status, answer, headers = await post_sms(
        app.test_client(), {"phone_number": PHONE, "content": "hi"}
    )
    assert status == 503
    assert "shutting down" in answer["error"]
    assert "Retry-After" in headers


async def test_a_stopped_repository_is_503_not_500(app_and_pipeline):
    app, pipeline = app_and_pipeline
    await pipeline.repository.close()
    response = await app.test_client().get(f"/sms/{uuid.uuid4()}")
    assert response.status_code == 503
    assert "error" in await response.get_json()
