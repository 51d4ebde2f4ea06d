"""Compliance over HTTP on every store: keys as tenants, the suppression list and what
a STOP through the provider's inbound webhook does, quotas across a UTC midnight on
the mock clock, and the bill per key."""

import dataclasses
import json

import pytest
import trio

from actors.router import Routed, Router
from api import ApiSettings, create_app
from api.fake_apis import basic_header
from smsproxy.compliance import SECONDS_PER_DAY, Quota, seconds_to_midnight
from smsproxy.providers.infobip import InfobipProvider
from smsproxy.routing import Route, RoutingTable
from smsproxy.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from smsproxy.tenants import parse_keys
from tests.fakes import wall_clock

SHOP, WAREHOUSE, SUPPORT = "shop-key", "warehouse-key", "support-key"
KEYS = parse_keys(f"shop={SHOP},warehouse={WAREHOUSE}") + parse_keys(
    f"support={SUPPORT}", admin=True)
ALICE, BOB = "+4915112345671", "+4915112345672"
SECRET = "provider-secret"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def pipeline(start_pipeline, store_factory):
    return await start_pipeline(open_store=store_factory, max_delay=3600.0, batch_size=1000)


def client_for(pipeline, **settings):
    settings = {"api_keys": KEYS, "clock": wall_clock, "webhook_secret": SECRET, **settings}
    return create_app(pipeline.services, ApiSettings(**settings)).test_client()


async def send(client, key, number=ALICE, path="/sms", body=None):
    body = body or {"phone_number": number, "content": "hello"}
    response = await client.post(path, json=body, headers=auth(key))
    return response.status_code, await response.get_json(), response.headers


async def reply(client, sender, content, path="/provider/inbound"):
    body = json.dumps({"from": sender, "to": "+4930123456", "content": content,
                       "received_at": "2025-11-26T18:00:00Z"}).encode()
    at = int(wall_clock())
    headers = {SIGNATURE_HEADER: sign(body, SECRET, at), TIMESTAMP_HEADER: str(at),
               "Content-Type": "application/json"}
    return await client.post(path, data=body, headers=headers)


async def test_each_key_sees_its_own_messages_and_support_sees_all(pipeline):
    client = client_for(pipeline)
    _, mine, _ = await send(client, SHOP)
    _, theirs, _ = await send(client, WAREHOUSE, BOB)
    for key, own, other in ((SHOP, mine, theirs), (WAREHOUSE, theirs, mine)):
        seen = await (await client.get(f"/sms/{own['id']}", headers=auth(key))).get_json()
        assert seen["status"] == "ACCEPTED"
        hidden = await (await client.get(f"/sms/{other['id']}", headers=auth(key))).get_json()
        assert hidden == {"id": other["id"], "status": "NOT_FOUND"}
        events = await (await client.get(f"/sms/{other['id']}/events",
                                         headers=auth(key))).get_json()
        assert events == {"events": []}
        listed = await (await client.get("/sms", headers=auth(key))).get_json()
        assert [m["id"] for m in listed["messages"]] == [own["id"]]
        feed = await (await client.get("/events", headers=auth(key))).get_json()
        assert {e["message_id"] for e in feed["events"]} == {own["id"]}
    everything = await (await client.get("/sms", headers=auth(SUPPORT))).get_json()
    assert {m["id"] for m in everything["messages"]} == {mine["id"], theirs["id"]}
    seen = await (await client.get(f"/sms/{theirs['id']}", headers=auth(SUPPORT))).get_json()
    assert seen["phone_number"] == BOB


async def test_a_stop_reply_suppresses_the_number_and_start_lifts_it(pipeline):
    client = client_for(pipeline)
    _, waiting, _ = await send(client, SHOP, BOB)
    assert (await reply(client, BOB.removeprefix("+"), "  stop ")).status_code == 204
    status, body, _ = await send(client, SHOP, BOB)
    assert status == 422
    assert "opted out" in body["error"] and body["opted_out"] == [{"index": 0}]
    record = await (await client.get(f"/sms/{waiting['id']}", headers=auth(SHOP))).get_json()
    assert (record["status"], record["reason"]) == ("FAILED", "recipient opted out")
    listed = await (await client.get("/suppressions", headers=auth(SUPPORT))).get_json()
    assert [(s["phone_number"], s["reason"], s["source"]) for s in listed["suppressions"]] == [
        (BOB, "replied STOP", "fastsmsing")]
    inbound = await (await client.get("/inbound", headers=auth(SHOP))).get_json()
    [stop] = inbound["messages"]
    assert (stop["from"], stop["content"], stop["keyword"]) == (BOB, "  stop ", "opt_out")
    assert stop["received_at"] == "2025-11-26T18:00:00.000Z"
    assert (await reply(client, BOB, "START")).status_code == 204
    assert (await send(client, SHOP, BOB))[0] == 202
    later = await (await client.get(f"/inbound?cursor={inbound['next']}",
                                    headers=auth(SHOP))).get_json()
    assert [m["keyword"] for m in later["messages"]] == ["opt_in"]


async def test_a_bulk_request_names_its_suppressed_items_and_stores_nothing(pipeline):
    client = client_for(pipeline)
    put = await client.put(f"/suppressions/{BOB}", json={"reason": "asked by phone"},
                           headers=auth(SUPPORT))
    assert put.status_code == 201
    items = [{"phone_number": n, "content": "x"} for n in (ALICE, BOB, ALICE, "0049 151 12345672")]
    status, body, _ = await send(client, SHOP, path="/sms/bulk", body={"messages": items})
    assert status == 422 and body["opted_out"] == [{"index": 1}, {"index": 3}]
    listed = await (await client.get("/sms", headers=auth(SUPPORT))).get_json()
    assert listed["messages"] == []


async def test_only_support_keys_manage_the_list(pipeline):
    client = client_for(pipeline)
    for method in ("get", "put", "delete"):
        answer = await getattr(client, method)(f"/suppressions/{BOB}", headers=auth(SHOP))
        assert answer.status_code == 403, method
    assert (await client.get("/suppressions", headers=auth(WAREHOUSE))).status_code == 403
    assert (await client.get("/suppressions")).status_code == 401
    put = await client.put("/suppressions/0151 12345672", headers=auth(SUPPORT))
    assert put.status_code == 400  # national, and the service has no --default-region
    regional = client_for(pipeline, phone_region="DE")
    put = await regional.put("/suppressions/0151 12345672", headers=auth(SUPPORT))
    assert put.status_code == 201
    entry = await (await regional.get(f"/suppressions/{BOB}", headers=auth(SUPPORT))).get_json()
    assert (entry["phone_number"], entry["source"]) == (BOB, "support:support")
    again = await regional.put(f"/suppressions/{BOB}", headers=auth(SUPPORT))
    assert again.status_code == 200
    assert (await regional.delete(f"/suppressions/{BOB}", headers=auth(SUPPORT))
            ).status_code == 204
    assert (await regional.delete(f"/suppressions/{BOB}", headers=auth(SUPPORT))
            ).status_code == 404
    assert (await regional.get(f"/suppressions/{BOB}", headers=auth(SUPPORT))
            ).status_code == 404


@pytest.mark.parametrize("body", [
    b"{}", b'{"from": "+4915112345672", "to": "x"}', b'{"from": 7, "to": "x", "content": "y"}',
    b'{"from": "nonsense", "to": "x", "content": "STOP"}',
    b'{"from": "+4915112345672", "to": "x", "content": "STOP", "received_at": "yesterday"}',
    b"[]", b"not json",
])
async def test_a_malformed_reply_is_a_400_and_changes_nothing(pipeline, body):
    client = client_for(pipeline)
    at = int(wall_clock())
    headers = {SIGNATURE_HEADER: sign(body, SECRET, at), TIMESTAMP_HEADER: str(at)}
    answer = await client.post("/provider/inbound", data=body, headers=headers)
    assert answer.status_code == 400
    assert "error" in await answer.get_json()
    assert (await send(client, SHOP, BOB))[0] == 202


async def test_an_unsigned_reply_is_refused(pipeline):
    client = client_for(pipeline)
    body = json.dumps({"from": BOB, "to": "+4930123456", "content": "STOP"}).encode()
    answer = await client.post("/provider/inbound", data=body)
    assert answer.status_code == 401
    assert (await send(client, SHOP, BOB))[0] == 202


async def test_a_quota_holds_for_a_utc_day_and_opens_at_midnight(start_pipeline,
                                                                 autojump_clock):
    # The memory store: six hours of the dispatcher's looks, jumped through. (Every
    # store counts a day the same way: tests/test_compliance_rules.py.)
    pipeline = await start_pipeline(max_delay=3600.0, batch_size=1000)
    client = client_for(pipeline, quotas={"shop": Quota("shop", 3)})
    for _ in range(3):
        assert (await send(client, SHOP))[0] == 202
    status, body, headers = await send(client, SHOP)
    assert status == 429
    assert body["error"].startswith("Exceeded send limits (3) for today")
    wait = int(headers["Retry-After"])
    assert wait == pytest.approx(seconds_to_midnight(wall_clock()), abs=1)
    assert (await send(client, WAREHOUSE))[0] == 202  # another key, no quota
    bulk = {"messages": [{"phone_number": ALICE, "content": "x"}] * 2}
    assert (await send(client, SHOP, path="/sms/bulk", body=bulk))[0] == 429
    await trio.sleep(wait)
    status, body, _ = await send(client, SHOP, path="/sms/bulk", body=bulk)
    assert status == 202
    assert (await send(client, SHOP))[0] == 202
    assert (await send(client, SHOP))[0] == 429
    assert wait < SECONDS_PER_DAY


async def test_the_bill_counts_messages_and_segments_per_key_name(pipeline):
    client = client_for(pipeline)
    await send(client, SHOP, body={"phone_number": ALICE, "content": "x" * 161})
    await send(client, WAREHOUSE)
    stats = await (await client.get("/stats")).get_json()
    assert stats["keys"] == {"shop": {"messages": 1, "segments": 2, "spend": 0},
                             "warehouse": {"messages": 1, "segments": 1, "spend": 0}}
    metrics = (await (await client.get("/metrics")).get_data()).decode()
    assert 'smsproxy_key_segments_total{key="shop"} 2.0' in metrics
    assert SHOP not in metrics and SHOP not in json.dumps(stats)


async def test_a_named_providers_stop_reply_arrives_in_its_own_format(pipeline):
    infobip = InfobipProvider("ib", "http://x", "k", 1, webhook_user="shop",
                              webhook_password="pw")
    table = RoutingTable([Route("ib", 1, 100, 0.01)], trio.current_time)
    services = dataclasses.replace(pipeline.services,
                                   router=Router({"ib": Routed(infobip, infobip)}, table))
    client = create_app(services, ApiSettings(api_keys=KEYS, clock=wall_clock)).test_client()
    body = {"results": [{"from": BOB.removeprefix("+"), "to": "4930123456", "text": "STOP"}]}
    wrong = await client.post("/providers/ib/inbound", json=body,
                              headers={"Authorization": basic_header("shop", "guess")})
    assert wrong.status_code == 401
    assert (await client.post("/providers/nobody/inbound", json=body)).status_code == 404
    answer = await client.post("/providers/ib/inbound", json=body,
                               headers={"Authorization": basic_header("shop", "pw")})
    assert answer.status_code == 204
    assert (await send(client, SHOP, BOB))[0] == 422
    inbound = await (await client.get("/inbound", headers=auth(SHOP))).get_json()
    assert [(m["provider"], m["from"]) for m in inbound["messages"]] == [("ib", BOB)]
