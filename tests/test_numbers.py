"""Phone numbers over HTTP: written as people write them, read in --default-region,
answered and sent in E.164; impossible ones (and with --strict-numbers, unused ones)
refused with the reason, before anything is stored."""

import json

import pytest
import trio.testing

from api import ApiSettings, create_app
from tests.test_http import post_sms


@pytest.fixture
async def start_app(start_pipeline):
    async def start(**settings):
        pipeline = await start_pipeline(batch_size=1)
        return create_app(pipeline.services, ApiSettings(**settings)), pipeline
    return start


@pytest.mark.parametrize(("region", "written", "status", "answer"), [
    (None, "+49 151 1234 5678", 202, "+4915112345678"),
    (None, "0049 (151) 1234-5678", 202, "+4915112345678"),
    (None, "4915112345678", 202, "+4915112345678"),
    ("DE", "0151 12345678", 202, "+4915112345678"),
    ("DE", "+1 (555) 010-9999", 202, "+15550109999"),
    ("GB", "020 7946 0958", 202, "+442079460958"),
    (None, "+999 1234 5678", 400, "phone_number: has an unknown country code"),
    (None, "+49 1", 400, "phone_number: is too short"),
    (None, "+1 555", 400, "phone_number: is too short for its country"),
    (None, "+49 151 1234 5678 9012", 400, "phone_number: has more than 15 digits"),
    (None, "+49 151 12a4", 400, "phone_number: must be digits, with an optional leading "
                                "'+' or '00', spaces, dashes, dots or parentheses"),
])
async def test_a_number_is_answered_and_sent_in_e164_or_refused_with_why(
        start_app, region, written, status, answer):
    app, pipeline = await start_app(phone_region=region)
    client = app.test_client()
    code, body, _ = await post_sms(client, {"phone_number": written, "content": "hi"})
    assert code == status
    await trio.testing.wait_all_tasks_blocked()
    if status != 202:
        assert body["error"] == answer and pipeline.provider.calls == []
        return
    assert body["phone_number"] == answer
    assert pipeline.provider.calls[0].messages[0].phone_number == answer
    shown = await (await client.get(f"/sms/{body['id']}")).get_json()
    assert shown["phone_number"] == answer


async def test_strict_numbers_refuse_one_not_in_use(start_app):
    app, _ = await start_app(strict_numbers=True)
    client = app.test_client()
    code, body, _ = await post_sms(client, {"phone_number": "+4912345678", "content": "hi"})
    assert code == 400 and "not a number in use" in body["error"]
    code, _, _ = await post_sms(client, {"phone_number": "+4915112345678", "content": "hi"})
    assert code == 202


async def test_one_number_written_two_ways_is_one_request_under_one_key(start_app):
    app, _ = await start_app()
    client = app.test_client()
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k1"}
    first = await client.post("/sms", headers=headers, data=json.dumps(
        {"phone_number": "+49 151 1234 5678", "content": "hi"}))
    again = await client.post("/sms", headers=headers, data=json.dumps(
        {"phone_number": "004915112345678", "content": "hi"}))
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.get_json())["id"] == (await first.get_json())["id"]


async def test_bulk_items_are_read_alike_and_a_bad_one_is_named(start_app):
    app, _ = await start_app(phone_region="DE")
    client = app.test_client()
    items = [{"phone_number": "0151 12345678", "content": "a"},
             {"phone_number": "+999 1", "content": "b"}]
    response = await client.post("/sms/bulk", data=json.dumps({"messages": items}),
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert [i["index"] for i in (await response.get_json())["invalid"]] == [1]
    response = await client.post("/sms/bulk", data=json.dumps({"messages": items[:1]}),
                                 headers={"Content-Type": "application/json"})
    assert (await response.get_json())["messages"][0]["phone_number"] == "+4915112345678"
