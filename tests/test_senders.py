"""A message's sender over HTTP: checked at the door, kept with the message, handed to
the provider, part of what makes a retried request the same request; and the
provider that took a message, in ``GET /sms/<id>``."""

import json

import pytest
import trio.testing

from api import create_app
from tests.test_http import PHONE, post_sms


@pytest.fixture
async def app_and_pipeline(start_pipeline):
    pipeline = await start_pipeline(batch_size=1)
    return create_app(pipeline.services), pipeline


@pytest.mark.parametrize("sender", ["MyShop", "My Shop 24", "A", "12345678901", "+4915112345"])
async def test_a_sender_goes_to_the_provider_and_is_shown_with_the_message(
        app_and_pipeline, sender):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    status, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hi",
                                              "sender": sender})
    assert status == 202
    await trio.testing.wait_all_tasks_blocked()
    [batch] = pipeline.provider.calls
    assert batch.messages[0].sender == sender
    shown = await (await client.get(f"/sms/{body['id']}")).get_json()
    assert shown == {"id": body["id"], "status": "ACCEPTED", "phone_number": PHONE,
                     "sender": sender, "provider": "scripted"}


async def test_without_a_sender_the_provider_s_default_is_used(app_and_pipeline):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    _, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hi"})
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.calls[0].messages[0].sender is None
    shown = await (await client.get(f"/sms/{body['id']}")).get_json()
    assert "sender" not in shown and shown["provider"] == "scripted"


@pytest.mark.parametrize("sender", [
    "", "A" * 12, "My-Shop", "Shöp", "+0123456", "+1234567890123456", "+", "Shop\n", 42,
    ["MyShop"],
])
async def test_a_sender_outside_the_rule_is_a_400_and_nothing_is_stored(
        app_and_pipeline, sender):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    status, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hi",
                                              "sender": sender})
    assert status == 400 and "sender" in body["error"]
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.calls == []


async def test_a_bulk_item_with_a_bad_sender_is_named_by_its_index(app_and_pipeline):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    items = [{"phone_number": PHONE, "content": "a", "sender": "Shop"},
             {"phone_number": PHONE, "content": "b", "sender": "Shop!"}]
    response = await client.post("/sms/bulk", data=json.dumps({"messages": items}),
                                 headers={"Content-Type": "application/json"})
    body = await response.get_json()
    assert response.status_code == 400
    assert [item["index"] for item in body["invalid"]] == [1]
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.calls == []


async def test_a_retry_with_another_sender_is_another_request(app_and_pipeline):
    app, _ = app_and_pipeline
    client = app.test_client()
    headers = {"Content-Type": "application/json", "Idempotency-Key": "order-1"}
    first = await client.post("/sms", headers=headers, data=json.dumps(
        {"phone_number": PHONE, "content": "hi", "sender": "ShopA"}))
    same = await client.post("/sms", headers=headers, data=json.dumps(
        {"phone_number": PHONE, "content": "hi", "sender": "ShopA"}))
    other = await client.post("/sms", headers=headers, data=json.dumps(
        {"phone_number": PHONE, "content": "hi", "sender": "ShopB"}))
    assert first.status_code == 202 and same.headers["Idempotent-Replayed"] == "true"
    assert (await same.get_json())["id"] == (await first.get_json())["id"]
    assert other.status_code == 422


@pytest.mark.parametrize("field", ["from", "senderr", "callbackUrl2", "priority"])
async def test_an_unknown_field_is_a_400_naming_it_never_dropped(app_and_pipeline, field):
    app, pipeline = app_and_pipeline
    client = app.test_client()
    status, body, _ = await post_sms(client, {"phone_number": PHONE, "content": "hi",
                                              field: "MyShop"})
    assert status == 400
    assert body["error"] == (f"{field}: is not a field this request takes (misspelt, or "
                             "not supported)")
    response = await client.post("/sms/bulk", data=json.dumps(
        {"messages": [{"phone_number": PHONE, "content": "a"},
                      {"phone_number": PHONE, "content": "b", field: "x"}]}),
        headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert [item["index"] for item in (await response.get_json())["invalid"]] == [1]
    await trio.testing.wait_all_tasks_blocked()
    assert pipeline.provider.calls == []


async def test_the_original_services_field_names_are_still_taken(app_and_pipeline):
    app, _ = app_and_pipeline
    status, _, _ = await post_sms(app.test_client(), {
        "PhoneNumber": PHONE, "Content": "hi", "CallbackUrl": None, "Sender": "MyShop"})
    assert status == 202
