"""One scripted scenario on every store, the answers compared: the one engine holds the
same rules on memory, SQLite and PostgreSQL (ids and times aside).

The scenario: plain, bulk, class, deadline, send_at and validity messages; a
provider outage long enough to park batches and fail some at their TTL or validity;
status reports for some of the rest; callbacks recorded in the outbox."""

import re
from collections.abc import Callable
from functools import partial

import trio

from api import ApiSettings, create_app
from smsproxy.callbacks import rfc3339
from smsproxy.stores import MemoryStore, MessageStore
from tests.fakes import (
    InlinePostgresStore,
    InlineSqliteStore,
    ScriptedProvider,
    wall_clock,
)

PHONE = "+4915112345678"
CALLBACK = "http://127.0.0.1:9/callbacks"


def opener(kind: str, tmp_path, request) -> Callable[[], MessageStore]:
    if kind == "memory":
        return partial(MemoryStore, wall_clock)
    if kind == "sqlite":
        return partial(InlineSqliteStore, tmp_path / f"{kind}.db", wall_clock)
    return partial(InlinePostgresStore, request.getfixturevalue("postgres_url"), wall_clock)


async def scenario(start_pipeline, open_store, within: trio.Nursery) -> dict:
    """Run the script; what a shop, support and operations would see, ids as labels."""
    provider = ScriptedProvider(failures=12)  # an outage: the first twelve calls fail
    pipeline = await start_pipeline(provider, batch_size=4, max_delay=1.0, max_attempts=2,
                                    message_ttl=30, status_grace=60, open_store=open_store,
                                    within=within)
    client = create_app(pipeline.services, ApiSettings(
        clock=wall_clock, classes={"otp": 0.5}, callbacks=True,
        callback_allow_private=True)).test_client()
    labels: dict[str, str] = {}

    async def post(label: str, **fields) -> None:
        answer = await client.post("/sms", json={"phone_number": PHONE, "content": label,
                                                 "callback_url": CALLBACK, **fields})
        assert answer.status_code == 202, await answer.get_data()
        labels[(await answer.get_json())["id"]] = label

    await post("plain", sender="MyShop")
    bulk = await client.post("/sms/bulk", json={"messages": [
        {"phone_number": PHONE, "content": f"bulk{n}"} for n in range(3)]})
    assert bulk.status_code == 202
    for item in (await bulk.get_json())["messages"]:
        # Accepted in the same instant: which of them a claim takes first is up to
        # their ids (random), so they are told apart by nothing but their outcome.
        labels[item["id"]] = "bulk"
    await post("otp", **{"class": "otp"})
    await post("soon", deliver_within=5)
    await post("later", send_at=rfc3339(wall_clock() + 30))
    await post("short", valid_for=3)
    await trio.sleep(20)  # the outage parks the first batches
    taken = [i for i, label in labels.items() if label in ("plain", "later")]
    await pipeline.updater.apply(dict.fromkeys(taken, "DELIVERED"))
    await trio.sleep(40)  # past the TTL of what never got through; the outage is over
    await post("after")
    await trio.sleep(2)
    [after] = [i for i, label in labels.items() if label == "after"]
    await pipeline.updater.apply({after: "CONFIRMED"})
    await pipeline.updater.apply({after: "DELIVERED"})
    await trio.sleep(300)
    # Batches in flight at once may reach the provider in either order.
    seen: dict = {"calls": sorted(sorted(labels[m.id] for m in batch.messages)
                                  for batch in provider.calls)}
    for message_id, label in labels.items():
        body = await (await client.get(f"/sms/{message_id}")).get_json()
        events = await (await client.get(f"/sms/{message_id}/events")).get_json()
        reason = re.sub(r"failure \d+", "failure N", body.get("reason") or "")
        seen.setdefault(label, []).append((
            body["status"], reason, body.get("deliver_by") is not None,
            body.get("sender"), body.get("provider"), [e["status"] for e in events["events"]]))
        seen[label].sort()
    snapshot = await pipeline.stats.snapshot()
    seen["stats"] = (snapshot.messages_accepted, snapshot.messages_sent,
                     snapshot.messages_expired, snapshot.failed, snapshot.success,
                     snapshot.leases_lost)
    with trio.CancelScope(shield=True):
        seen["callbacks pending"] = (await pipeline.repository.callback_backlog())[0]
    return seen


async def test_one_scenario_gives_the_same_answers_on_every_store(
    start_pipeline, tmp_path, request, autojump_clock
):
    answers = {}
    for kind in ("memory", "sqlite", "postgres"):
        async with trio.open_nursery() as own:  # each store's actors stop after its run
            answers[kind] = await scenario(start_pipeline, opener(kind, tmp_path, request),
                                           own)
            own.cancel_scope.cancel()
    assert answers["sqlite"] == answers["memory"]
    assert answers["postgres"] == answers["memory"]
    memory = answers["memory"]
    [short], [plain], [later], [soon] = (memory[k] for k in ("short", "plain", "later", "soon"))
    assert short[:2] == ("FAILED", "validity period expired")
    assert plain[0] == later[0] == "DELIVERED"
    assert later[2] is False  # a scheduled message has no deadline of its own
    assert plain[3:5] == ("MyShop", None)  # reported on while parked: none took it on record
    assert short[4] is None  # it never reached a provider
    assert soon[:2] == ("FAILED", "not accepted by the provider within the message TTL of "
                                  "30 s; no attempt reached it; last error: "
                                  "ProviderUnavailable: failure N")
    assert soon[5] == ["ACCEPTED", "FAILED"]  # the expiry is an event, as every step
    assert memory["after"] == [("DELIVERED", "", False, None, "scripted",
                                ["ACCEPTED", "CONFIRMED", "DELIVERED"])]
    assert ["after"] in memory["calls"]
    # every event of the six that name a callback URL waits for a receiver (none here)
    assert memory["callbacks pending"] == 13
