"""The compliance rules on every store: the suppression list and what it refuses and
fails, replies and their keywords, the daily quota, and each key's own messages."""

import pytest

from smsproxy.compliance import (
    OPTED_OUT_REASON,
    SECONDS_PER_DAY,
    Inbound,
    InboundQuery,
    Keyword,
    Quota,
    Suppression,
    keyword_of,
    seconds_to_midnight,
)
from smsproxy.errors import QuotaExceeded, RecipientOptedOut
from smsproxy.models import Idempotency, Message, MessageQuery, new_id
from smsproxy.repository import Repository
from smsproxy.statuses import Status
from smsproxy.stores import MessageStore
from smsproxy.stores.protocol import ClaimRules

MIDNIGHT = 1_765_152_000.0  # 2025-12-08T00:00:00Z
ALICE, BOB = "+4915112345671", "+4915112345672"


def message(number: str = ALICE, tenant: str | None = None, at: float = MIDNIGHT) -> Message:
    return Message(new_id(), number, "hello", created_at=at, tenant=tenant)


@pytest.fixture
def store(queue) -> MessageStore:
    """Each store in turn (``queue``: memory, SQLite, PostgreSQL), on a manual clock."""
    return queue


def run(store: MessageStore, work):
    with store.transaction():
        return work(Repository(store))


def stop(number: str, at: float = MIDNIGHT) -> Suppression:
    return Suppression(number, "replied STOP", "fastsmsing", at)


@pytest.mark.parametrize(("content", "keyword"), [
    ("STOP", Keyword.OPT_OUT), ("stop", Keyword.OPT_OUT), ("  Stop \n", Keyword.OPT_OUT),
    ("opt out", Keyword.OPT_OUT), ("OPT   OUT", Keyword.OPT_OUT), ("StopAll", Keyword.OPT_OUT),
    ("unsubscribe", Keyword.OPT_OUT), ("cancel", Keyword.OPT_OUT), ("END", Keyword.OPT_OUT),
    ("quit", Keyword.OPT_OUT), ("revoke", Keyword.OPT_OUT),
    ("start", Keyword.OPT_IN), ("UNSTOP", Keyword.OPT_IN), (" yes ", Keyword.OPT_IN),
    ("stop it", None), ("please stop", None), ("STOPP", None), ("", None), ("optout", None),
    ("yes please", None),
])
def test_a_reply_is_a_keyword_only_when_it_is_exactly_one(content, keyword):
    assert keyword_of(content) is keyword


def test_the_quota_day_ends_at_utc_midnight():
    assert seconds_to_midnight(MIDNIGHT) == SECONDS_PER_DAY
    assert seconds_to_midnight(MIDNIGHT - 1.5) == 1.5
    assert seconds_to_midnight(MIDNIGHT + 3600) == SECONDS_PER_DAY - 3600


def test_a_suppressed_number_is_refused_and_nothing_is_stored(store):
    run(store, lambda r: r.suppress(stop(BOB)))
    batch = [message(ALICE), message(BOB), message(ALICE), message(BOB)]
    with pytest.raises(RecipientOptedOut) as refused:
        run(store, lambda r: r.save(batch))
    assert refused.value.indexes == (1, 3)
    assert refused.value.numbers == (BOB,)
    statuses = run(store, lambda r: [r.get(m.id).status for m in batch])
    assert statuses == [Status.NOT_FOUND] * 4
    saved = run(store, lambda r: r.save([message(ALICE)]))
    assert not saved.replayed


def test_in_a_group_only_the_submissions_to_suppressed_numbers_fail(store):
    run(store, lambda r: r.suppress(stop(BOB)))
    to_alice, to_bob = [message(ALICE)], [message(ALICE), message(BOB)]
    results = run(store, lambda r: r.save_all(
        [(to_alice, None, 0.0, None), (to_bob, None, 0.0, None)]))
    assert results[0].message_ids == (to_alice[0].id,)
    assert isinstance(results[1], RecipientOptedOut) and results[1].indexes == (1,)
    assert run(store, lambda r: r.get(to_bob[0].id)).status is Status.NOT_FOUND


def test_a_save_with_an_idempotency_key_is_checked_too(store):
    run(store, lambda r: r.suppress(stop(BOB)))
    with pytest.raises(RecipientOptedOut):
        run(store, lambda r: r.save([message(BOB)], Idempotency("k", "key-1", "x"), 1.0))
    assert run(store, lambda r: r.store.find_idempotency("k", "key-1")) is None


def test_putting_a_number_on_the_list_fails_what_waits_for_it_unsent(store):
    sent, waiting, other = message(BOB), message(BOB), message(ALICE)
    run(store, lambda r: r.save([sent]))
    claimed = store_claim(store)
    assert [m.id for m in claimed] == [sent.id]
    run(store, lambda r: r.store.mark_sent("me", [sent.id], 1, {}, {}))
    run(store, lambda r: r.save([waiting, other]))
    new, failed = run(store, lambda r: r.suppress(stop(BOB)))
    assert new is True
    assert failed == [waiting.id]
    record = run(store, lambda r: r.get(waiting.id))
    assert (record.status, record.reason) == (Status.FAILED, OPTED_OUT_REASON)
    assert run(store, lambda r: r.get(sent.id)).status is Status.ACCEPTED  # with the provider
    assert run(store, lambda r: r.get(other.id)).status is Status.ACCEPTED
    events = run(store, lambda r: r.history(waiting.id))
    assert [(e.status, e.reason) for e in events][-1] == (Status.FAILED, OPTED_OUT_REASON)
    again, _ = run(store, lambda r: r.suppress(stop(BOB)))
    assert again is False


def store_claim(store: MessageStore) -> list[Message]:
    with store.transaction():
        return list(store.claim("me", ClaimRules(1, 0.0, 30.0, 3600.0)).messages)


def test_a_stop_reply_suppresses_its_sender_and_start_lifts_it(store):
    waiting = message(BOB)
    run(store, lambda r: r.save([waiting]))
    reply = Inbound("fastsmsing", BOB, "+4930123456", " Stop ", MIDNIGHT + 5)
    stored, failed = run(store, lambda r: r.receive(reply))
    assert stored.keyword is Keyword.OPT_OUT and stored.id and stored.position >= 1
    assert failed == [waiting.id]
    entry = run(store, lambda r: r.store.suppression(BOB))
    assert (entry.number, entry.reason, entry.source) == (BOB, "replied STOP", "fastsmsing")
    run(store, lambda r: r.receive(Inbound("fastsmsing", BOB, "+4930123456", "start", 6.0)))
    assert run(store, lambda r: r.store.suppression(BOB)) is None
    assert run(store, lambda r: r.save([message(BOB)])).replayed is False


def test_a_spaced_keyword_is_named_as_its_words(store):
    run(store, lambda r: r.receive(Inbound("sinch", BOB, "+4930123456", " opt \n out ", 1.0)))
    assert run(store, lambda r: r.store.suppression(BOB)).reason == "replied OPT OUT"


def test_any_other_reply_is_only_stored_and_read_back_in_order(store):
    for n in range(5):
        run(store, lambda r, n=n: r.receive(
            Inbound("sinch", ALICE, "+4930123456", f"thanks {n}", MIDNIGHT + n)))
    first = run(store, lambda r: r.store.inbound(InboundQuery(limit=2)))
    assert [i.content for i in first] == ["thanks 0", "thanks 1"]
    assert all(i.keyword is None and i.provider == "sinch" for i in first)
    rest = run(store, lambda r: r.store.inbound(InboundQuery(after=first[-1].position)))
    assert [i.content for i in rest] == ["thanks 2", "thanks 3", "thanks 4"]
    recent = run(store, lambda r: r.store.inbound(InboundQuery(since=MIDNIGHT + 3)))
    assert [i.content for i in recent] == ["thanks 3", "thanks 4"]
    assert run(store, lambda r: r.store.suppressions("", 10)) == []


def test_the_list_is_read_in_pages_in_order_of_number(store):
    numbers = [f"+49151000000{n:02d}" for n in (5, 1, 9, 3, 7)]
    for number in numbers:
        run(store, lambda r, number=number: r.suppress(stop(number)))
    first = run(store, lambda r: r.store.suppressions("", 3))
    rest = run(store, lambda r: r.store.suppressions(first[-1].number, 3))
    assert [s.number for s in first + rest] == sorted(numbers)
    assert run(store, lambda r: r.store.unsuppress(numbers[0])) is True
    assert run(store, lambda r: r.store.unsuppress(numbers[0])) is False


def test_a_quota_counts_a_utc_day_and_refuses_past_it(store):
    quota = Quota("shop", 3)
    run(store, lambda r: r.save([message(), message()], None, MIDNIGHT + 10, quota))
    with pytest.raises(QuotaExceeded) as refused:
        run(store, lambda r: r.save([message(), message()], None, MIDNIGHT + 20, quota))
    assert (refused.value.tenant, refused.value.limit, refused.value.used) == ("shop", 3, 2)
    assert refused.value.retry_after == SECONDS_PER_DAY - 20
    assert "3 messages a UTC day" in str(refused.value)
    run(store, lambda r: r.save([message()], None, MIDNIGHT + 30, quota))  # the last one
    with pytest.raises(QuotaExceeded):
        run(store, lambda r: r.save([message()], None, MIDNIGHT + SECONDS_PER_DAY - 1, quota))
    tomorrow = MIDNIGHT + SECONDS_PER_DAY
    run(store, lambda r: r.save([message(), message(), message()], None, tomorrow, quota))
    assert run(store, lambda r: r.store.quota_used("shop", int(tomorrow // 86_400))) == 3
    assert run(store, lambda r: r.store.quota_used("other", int(tomorrow // 86_400))) == 0


def test_a_refused_save_gives_its_quota_back(store):
    quota = Quota("shop", 2)
    run(store, lambda r: r.suppress(stop(BOB)))
    with pytest.raises(RecipientOptedOut):
        run(store, lambda r: r.save([message(BOB)], None, MIDNIGHT, quota))
    first = message()
    run(store, lambda r: r.save([first], None, MIDNIGHT, quota))
    results = run(store, lambda r: r.save_all([([first], None, MIDNIGHT, quota)]))
    assert results[0].kind == "duplicate"
    run(store, lambda r: r.save([message()], None, MIDNIGHT, quota))  # the second of two
    assert run(store, lambda r: r.store.quota_used("shop", int(MIDNIGHT // 86_400))) == 2


def test_a_replayed_request_is_not_counted_again(store):
    quota = Quota("shop", 1)
    key = Idempotency("shop", "order-1", "digest")
    first = run(store, lambda r: r.save([message()], key, MIDNIGHT, quota))
    again = run(store, lambda r: r.save([message()], key, MIDNIGHT + 1, quota))
    assert again.replayed and again.message_ids == first.message_ids


def test_a_key_sees_its_own_messages_only(store):
    mine, theirs = message(tenant="shop"), message(tenant="warehouse", at=MIDNIGHT + 1)
    run(store, lambda r: r.save([mine, theirs]))
    run(store, lambda r: r.apply_in_order([(theirs.id, Status.CONFIRMED)]))
    assert run(store, lambda r: r.get(theirs.id, "shop")).status is Status.NOT_FOUND
    assert run(store, lambda r: r.get(mine.id, "shop")).status is Status.ACCEPTED
    assert run(store, lambda r: r.get(theirs.id)).status is Status.CONFIRMED  # support
    assert run(store, lambda r: r.history(theirs.id, "shop")) == []
    assert len(run(store, lambda r: r.history(theirs.id, "warehouse"))) == 2
    listed = run(store, lambda r: r.find(MessageQuery(tenant="shop")))
    assert [m.id for m in listed] == [mine.id]
    assert [m.id for m in run(store, lambda r: r.find(MessageQuery()))] == [theirs.id, mine.id]
    feed = run(store, lambda r: r.feed(0, 100, "warehouse"))
    assert [(e.message_id, e.status) for e in feed] == [
        (theirs.id, Status.ACCEPTED), (theirs.id, Status.CONFIRMED)]
    assert len(run(store, lambda r: r.feed(0, 100))) == 3
