"""One compliance scenario on every store, the answers compared (ids and times aside):
two keys and a support key, a quota, STOP and START replies, support's own entries,
a waiting message failed by an opt-out, and what each key then reads."""

import json

import trio

from api import ApiSettings, create_app
from smsproxy.callbacks import rfc3339
from smsproxy.compliance import Quota
from smsproxy.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from smsproxy.tenants import parse_keys
from tests.fakes import wall_clock
from tests.test_differential import opener

KEYS = parse_keys("shop=k1,warehouse=k2") + parse_keys("support=k3", admin=True)
SHOP, WAREHOUSE, SUPPORT = ({"Authorization": f"Bearer {k}"} for k in ("k1", "k2", "k3"))
NUMBERS = [f"+4915112345{n:03d}" for n in range(6)]


async def scenario(start_pipeline, open_store, within: trio.Nursery) -> dict:
    pipeline = await start_pipeline(simulate=True, batch_size=2, max_delay=0.5,
                                    open_store=open_store, within=within)
    client = create_app(pipeline.services, ApiSettings(
        api_keys=KEYS, quotas={"warehouse": Quota("warehouse", 4)}, clock=wall_clock,
        webhook_secret="s")).test_client()
    seen: dict = {"answers": []}
    labels: dict[str, str] = {}

    async def post(key, label, number, **fields):
        answer = await client.post("/sms", headers=key, json={
            "phone_number": number, "content": label, **fields})
        body = await answer.get_json()
        seen["answers"].append((label, answer.status_code, body.get("opted_out")))
        if answer.status_code == 202:
            labels[body["id"]] = label

    async def reply(number, content):
        body = json.dumps({"from": number, "to": "+4930123456", "content": content}).encode()
        at = int(wall_clock())
        answer = await client.post("/provider/inbound", data=body, headers={
            SIGNATURE_HEADER: sign(body, "s", at), TIMESTAMP_HEADER: str(at)})
        seen["answers"].append((content, answer.status_code, None))

    for n in range(3):
        await post(SHOP, f"shop{n}", NUMBERS[n])
    await post(SHOP, "scheduled", NUMBERS[1], send_at=rfc3339(wall_clock() + 600))
    for n in range(5):  # the fifth is past the quota
        await post(WAREHOUSE, f"warehouse{n}", NUMBERS[3 + n % 3])
    await trio.sleep(5)
    await reply(NUMBERS[1], "stop")
    await reply(NUMBERS[2], "Thanks!")
    await post(SHOP, "refused", NUMBERS[1])
    bulk = await client.post("/sms/bulk", headers=SHOP, json={"messages": [
        {"phone_number": number, "content": "bulk"} for number in NUMBERS[:3]]})
    seen["answers"].append(("bulk", bulk.status_code, (await bulk.get_json()).get("opted_out")))
    await client.put(f"/suppressions/{NUMBERS[4]}", headers=SUPPORT, json={"reason": "asked"})
    await reply(NUMBERS[1], "START")
    await post(SHOP, "welcome back", NUMBERS[1])
    await trio.sleep(5)
    for name, key in (("shop", SHOP), ("warehouse", WAREHOUSE), ("support", SUPPORT)):
        listed = await (await client.get("/sms", headers=key)).get_json()
        seen[name] = sorted((labels[m["id"]], m["status"], m["reason"])
                            for m in listed["messages"])
        feed = await (await client.get("/events?limit=1000", headers=key)).get_json()
        seen[f"{name} events"] = sorted((labels[e["message_id"]], e["sequence"], e["status"])
                                        for e in feed["events"])
    suppressions = await (await client.get("/suppressions", headers=SUPPORT)).get_json()
    seen["suppressions"] = [(s["phone_number"], s["reason"], s["source"])
                            for s in suppressions["suppressions"]]
    inbound = await (await client.get("/inbound", headers=SHOP)).get_json()
    seen["inbound"] = [(m["from"], m["content"], m["keyword"]) for m in inbound["messages"]]
    seen["keys"] = (await pipeline.stats.snapshot()).keys
    return seen


async def test_one_compliance_scenario_gives_the_same_answers_on_every_store(
        start_pipeline, tmp_path, request, autojump_clock):
    answers = {}
    for kind in ("memory", "sqlite", "postgres"):
        async with trio.open_nursery() as own:
            answers[kind] = await scenario(start_pipeline, opener(kind, tmp_path, request), own)
            own.cancel_scope.cancel()
    assert answers["sqlite"] == answers["memory"]
    assert answers["postgres"] == answers["memory"]
    memory = answers["memory"]
    statuses = [status for _, status, _ in memory["answers"]]
    assert statuses == [202] * 8 + [429, 204, 204, 422, 422, 204, 202]
    assert memory["answers"][12] == ("bulk", 422, [{"index": 1}])
    assert ("scheduled", "FAILED", "recipient opted out") in memory["shop"]
    assert {label for label, _, _ in memory["warehouse"]} == {f"warehouse{n}" for n in range(4)}
    assert len(memory["support"]) == len(memory["shop"]) + len(memory["warehouse"])
    assert memory["suppressions"] == [(NUMBERS[4], "asked", "support:support")]
    assert [keyword for _, _, keyword in memory["inbound"]] == ["opt_out", None, "opt_in"]
    assert memory["keys"] == {"shop": {"messages": 5, "segments": 5, "spend": 0},
                              "warehouse": {"messages": 4, "segments": 4, "spend": 0}}
