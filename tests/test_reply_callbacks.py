"""Replies POSTed to the shop as ``inbound`` events: from the store's outbox on every
store, signed, retried as status callbacks are, given up when refused, and claimed by
one instance at a time."""

import json
import time
from functools import partial

import trio

from actors import notifier, repository, stats
from smsproxy.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, RetrySchedule
from smsproxy.compliance import Inbound
from smsproxy.signing import verify
from tests.test_callbacks import Receiver

SECRET = "shop-secret"
HOOK = "https://shop.example/hook"
BOB = "+4915112345672"


async def start(nursery, store_factory):
    repo = await nursery.start(partial(repository.run, store_factory))
    counts = await nursery.start(stats.run)
    receiver = Receiver()
    settings = notifier.NotifierSettings(secret=SECRET, schedule=RetrySchedule(max_age=600))
    await nursery.start(partial(notifier.run, repo, counts, receiver, settings))
    return repo, receiver, counts


def reply(content: str) -> Inbound:
    """Forwarded long after the phone sent it: the callback's age counts from storing."""
    return Inbound("fastsmsing", BOB, "+4930123456", content, 1_700_000_000.0)


async def test_a_reply_reaches_the_shop_as_a_signed_inbound_event(nursery, store_factory):
    repo, receiver, counts = await start(nursery, store_factory)
    [(stored, _)] = await repo.compliance.receive([reply("STOP")], HOOK)
    await repo.compliance.receive([reply("no hook")])  # callbacks off: nothing to send
    with trio.fail_after(10):
        while not receiver.received:  # noqa: ASYNC110 (a receiver of the tests' own)
            await trio.sleep(0.05)
    await trio.sleep(0.5)
    [(_, url, body, headers)] = receiver.received
    assert url == HOOK
    assert body == {"event_id": stored.id, "type": "inbound", "from": BOB,
                    "to": "+4930123456", "content": "STOP", "received_at": body["received_at"],
                    "provider": "fastsmsing", "keyword": "opt_out"}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert verify(raw, SECRET, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER],
                  now=int(headers[TIMESTAMP_HEADER])) is None
    assert (await counts.snapshot()).callbacks_delivered == 1


async def test_a_failing_receiver_gets_the_reply_again_and_a_refusal_ends_it(
        nursery, store_factory):
    repo, receiver, counts = await start(nursery, store_factory)
    receiver.script[HOOK] = [503, 503, 200]
    await repo.compliance.receive([reply("thanks")], HOOK)
    refusing = "https://other.example/hook"
    receiver.script[refusing] = [410]
    await repo.compliance.receive([reply("hello")], refusing)
    with trio.fail_after(30):
        while len(receiver.received) < 4:  # noqa: ASYNC110
            await trio.sleep(0.1)
    await trio.sleep(2)
    contents = [body["content"] for _, _, body, _ in receiver.received]
    assert sorted(contents) == ["hello", "thanks", "thanks", "thanks"]
    snapshot = await counts.snapshot()
    assert (snapshot.callbacks_delivered, snapshot.callbacks_abandoned) == (1, 1)


async def test_a_claimed_reply_callback_is_not_claimed_again_until_its_lease_ends(
        nursery, store_factory):
    repo = await nursery.start(partial(repository.run, store_factory))
    await repo.compliance.receive([reply("STOP")], HOOK)
    now = time.time() + 1
    [claimed] = await repo.compliance.claim_reply_callbacks("a", now, 10, 30)
    assert (claimed.url, claimed.attempts, claimed.inbound.content) == (HOOK, 0, "STOP")
    assert await repo.compliance.claim_reply_callbacks("b", now + 29, 10, 30) == []
    await repo.compliance.settle_reply_callback(claimed.inbound.id, "retry", 1, now + 60, "5xx")
    assert await repo.compliance.claim_reply_callbacks("b", now + 59, 10, 30) == []
    [again] = await repo.compliance.claim_reply_callbacks("b", now + 61, 10, 30)
    assert again.attempts == 1
    await repo.compliance.settle_reply_callback(again.inbound.id, "delivered", 2, -1, "2xx")
    assert await repo.compliance.claim_reply_callbacks("c", now + 1e6, 10, 30) == []
