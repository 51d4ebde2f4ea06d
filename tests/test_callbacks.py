"""Status callbacks to the shop: the rules (URLs, addresses, answers, schedule, signing),
pending callbacks in every store, and the notifier on trio's MockClock."""

import itertools
import json
import random
import re
import time
from functools import partial

import pytest
import trio

from actors import notifier, repository, stats
from actors._callback_http import Unreachable
from smsproxy.callbacks import (
    CHECKED_URLS_KEPT,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RetrySchedule,
    check_url,
    decide,
    origin,
    payload,
    refused_address,
    rfc3339,
    safe_url,
)
from smsproxy.errors import InvalidMessage
from smsproxy.models import Message, event_id_of, new_ids
from smsproxy.signing import verify
from smsproxy.statuses import Status
from smsproxy.stores import MemoryStore

PHONE = "+4912345678"
SECRET = "shop-secret"


# --- the rules ------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://shop.example/hooks/sms", "http://shop.example:8080/x?t=1"])
def test_http_and_https_urls_with_a_host_are_taken(url):
    assert check_url(url) == url


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://shop.example/x", "http or https"), ("javascript:alert(1)", "http or https"),
    ("https:///path", "no host"), ("https://user:pw@shop.example/", "credentials"),
    ("https://user@shop.example/", "credentials"),
    ("https://shop.example:99999/", "port 99999"), ("https://shop.example:0/", "port 0"),
    ("https://shop.example/" + "x" * 2100, "longer"),
    ("https://shop example/", "' '"), ("https://shop.example/a b", "' '"),
    ("https://shop.example/\r\nX: 1", r"'\r'"), ("https://shop.example/\x00", "'\\x00'"),
    ("https://shop.example/\x7f", "'\\x7f'"), ("https://shop.example/\t", "'\\t'"),
    (f"https://{'a' * 64}.example/", "63"), ("https://shop..example/", "empty"),
    (f"https://{'a.' * 127}example/", "253"), ("https://sh%6fp.example/", "'%'"),
    ("https://[zz]/", "not a URL"),
])
def test_other_urls_are_refused_saying_why(url, why):
    with pytest.raises(InvalidMessage, match=re.escape(why)) as refused:
        check_url(url)
    assert refused.value.field == "callback_url"


@pytest.mark.parametrize(("url", "stored"), [
    ("https://shop.example/cb?name=José", "https://shop.example/cb?name=Jos%C3%A9"),
    ("https://shop.example/é/ü", "https://shop.example/%C3%A9/%C3%BC"),
    ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
    ("HTTPS://Shop.Example:443/x", "https://shop.example/x"),
    (f"https://{'a' * 63}.example/", f"https://{'a' * 63}.example/"),
    ("https://[::1]:8443/x", "https://[::1]:8443/x"),
])
def test_urls_are_stored_in_the_form_they_are_sent(url, stored):
    assert check_url(url) == stored
    assert check_url(stored) == stored


def test_a_checked_url_is_remembered_and_a_refused_one_is_refused_every_time():
    check_url.cache_clear()
    for _ in range(3):
        assert check_url("HTTPS://Shop.Example:443/x") == "https://shop.example/x"
        with pytest.raises(InvalidMessage, match="credentials"):
            check_url("https://user@shop.example/")
    assert check_url.cache_info().hits == 2
    assert check_url.cache_info().maxsize == CHECKED_URLS_KEPT


def test_a_url_may_be_2048_characters_long_and_no_longer():
    base = "https://shop.example/"
    assert check_url(base + "x" * (2048 - len(base)))
    with pytest.raises(InvalidMessage, match="longer"):
        check_url(base + "x" * (2049 - len(base)))


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "10.0.0.1", "192.168.1.9",
                                     "172.16.0.1", "::1", "fe80::1%eth0", "0.0.0.0", "224.0.0.1",
                                     "::ffff:127.0.0.1", "fd00::1"])
def test_addresses_a_callback_must_not_reach(address):
    assert refused_address(["93.184.216.34", address]) is not None


def test_the_refused_address_is_named():
    assert refused_address(["93.184.216.34", "10.0.0.1"]) == "10.0.0.1"


def test_public_addresses_are_fine():
    assert refused_address(["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]) is None


def test_the_origin_bounds_one_receiver_and_logs_drop_the_query():
    assert origin("https://Shop.example/a") == "https://shop.example:443"
    assert origin("http://shop.example:81/a") == "http://shop.example:81"
    assert origin("http://shop.example/a") == "http://shop.example:80"
    assert safe_url("https://shop.example/hook?token=secret#x") == "https://shop.example/hook"


@pytest.mark.parametrize(("status", "outcome", "reason"), [
    (200, "delivered", "2xx"), (204, "delivered", "2xx"), (408, "retry", "408"),
    (429, "retry", "429"), (500, "retry", "5xx"), (503, "retry", "5xx"),
    (400, "abandon", "4xx"), (404, "abandon", "4xx"), (410, "abandon", "4xx"),
    (301, "abandon", "3xx"), (300, "abandon", "3xx"), (499, "abandon", "4xx"),
    (299, "delivered", "2xx"), (407, "abandon", "4xx"),
])
def test_what_an_answer_means(status, outcome, reason):
    decision = decide(status)
    assert (decision.outcome, decision.reason) == (outcome, reason)


def test_retry_after_is_read_in_seconds():
    assert decide(429, "30").retry_after == 30.0
    assert decide(503, "Wed, 21 Oct 2026 07:28:00 GMT").retry_after is None
    assert decide(429, "-5").retry_after is None
    assert decide(429, "0").retry_after == 0.0


def test_the_schedule_backs_off_with_jitter_and_gives_up_at_the_max_age():
    schedule = RetrySchedule(initial=1.0, maximum=3600.0, max_age=86_400.0)
    rng = random.Random(7)
    delays = [schedule.next_attempt(n, 0.0, 0.0, rng=rng) for n in (1, 2, 3, 10, 20)]
    assert delays[0] is not None and 0.5 <= delays[0] <= 1.0
    assert delays[1] is not None and 1.0 <= delays[1] <= 2.0
    assert delays[2] is not None and 2.0 <= delays[2] <= 4.0
    assert delays[3] is not None and 256.0 <= delays[3] <= 512.0
    assert delays[4] is not None and 1800.0 <= delays[4] <= 3600.0  # capped
    assert schedule.next_attempt(30, 86_000.0, 0.0, rng=rng) is None  # past the day
    assert schedule.next_attempt(1, 0.0, 0.0, retry_after=120.0, rng=rng) == 120.0
    last = RetrySchedule(initial=1.0, maximum=100.0, max_age=100.0)
    assert last.next_attempt(1, 0.0, 0.0, retry_after=100.0, rng=rng) == 100.0  # just in time


def test_callbacks_are_json_and_signed_over_timestamp_and_body():
    from smsproxy.callbacks import signed_headers

    headers = signed_headers(b'{"a":1}', SECRET, 1_795_860_000.9)
    assert headers["Content-Type"] == "application/json"
    assert headers[TIMESTAMP_HEADER] == "1795860000"
    assert verify(b'{"a":1}', SECRET, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER],
                  now=1_795_860_000.0) is None


def test_the_payload_is_the_documented_one():
    from smsproxy.models import Event

    event = Event("m-1", 3, Status.DELIVERED, Status.CONFIRMED, None, 1_795_860_000.123)
    assert json.loads(payload(event)) == {
        "event_id": event_id_of("m-1", 3), "message_id": "m-1", "status": "DELIVERED",
        "previous_status": "CONFIRMED", "reason": None, "at": "2026-11-28T10:00:00.123Z",
        "sequence": 3}


# --- pending callbacks in the store ----------------------------------------------------

def hooked(count: int, url: str = "https://shop.example/hook") -> list[Message]:
    return [Message(i, PHONE, "x", 1_764_180_000.0 + n, 0, url)
            for n, i in enumerate(new_ids(count))]


async def test_a_message_s_events_wait_their_turn_in_the_store(repo):
    [message] = hooked(1)
    [plain] = [Message(i, PHONE, "y", 1_764_180_000.0) for i in new_ids(1)]
    await repo.save(message, plain)
    await repo.apply_in_order([(message.id, Status.CONFIRMED), (message.id, Status.DELIVERED),
                               (plain.id, Status.CONFIRMED)])
    now = time.time() + 10
    [first] = await repo.claim_callbacks("a", now, 10, 30, 10)
    assert (first.event.sequence, first.url, first.attempts) == (1, message.callback_url, 0)
    assert await repo.claim_callbacks("b", now, 10, 30, 10) == []  # held, and the rest wait
    await repo.settle_callback(message.id, 1, "retry", 1, now + 5, "5xx")
    assert await repo.claim_callbacks("a", now + 1, 10, 30, 10) == []  # not due yet
    [again] = await repo.claim_callbacks("a", now + 5, 10, 30, 10)
    assert (again.event.sequence, again.attempts) == (1, 1)
    await repo.settle_callback(message.id, 1, "delivered", 2, -1, None)
    [second] = await repo.claim_callbacks("a", now + 5, 10, 30, 10)
    assert second.event.status is Status.CONFIRMED
    assert (await repo.callback_backlog())[0] == 2
    await repo.settle_callback(message.id, 2, "abandoned", 1, -1, "4xx")
    [third] = await repo.claim_callbacks("a", now + 5, 10, 30, 10)
    assert third.event.status is Status.DELIVERED
    pending, _ = await repo.callback_backlog()
    assert pending == 1  # the plain message has no callbacks at all


async def test_a_lapsed_claim_is_taken_again(repo):
    [message] = hooked(1)
    await repo.save(message)
    now = time.time() + 10
    assert len(await repo.claim_callbacks("dead", now, 10, 30, 10)) == 1
    assert await repo.claim_callbacks("live", now + 29, 10, 30, 10) == []
    [taken] = await repo.claim_callbacks("live", now + 31, 10, 30, 10)
    assert taken.event.sequence == 1


# --- the notifier ------------------------------------------------------------------------

class Receiver:
    """Answers callbacks as scripted, per URL; records what arrived, and when."""

    def __init__(self) -> None:
        self.script: dict[str, list[object]] = {}
        self.received: list[tuple[float, str, dict, dict[str, str]]] = []
        self.latency: dict[str, float] = {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        await trio.sleep(self.latency.get(url, 0.0))
        self.received.append((trio.current_time(), url, json.loads(body), headers))
        answers = self.script.get(url) or [200]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, tuple) else (answer, None)  # type: ignore[return-value]

    def statuses(self, url: str | None = None) -> list[tuple[str, int]]:
        return [(body["status"], body["sequence"]) for _, u, body, _ in self.received
                if url is None or u == url]


@pytest.fixture
async def setup(nursery):
    async def start(max_age: float = 86_400.0):
        store = MemoryStore()
        repo = await nursery.start(partial(repository.run, lambda: store,
                                           clock=trio.current_time))
        counts = await nursery.start(stats.run)
        receiver = Receiver()
        settings = notifier.NotifierSettings(
            secret=SECRET, schedule=RetrySchedule(max_age=max_age), timeout=5.0)
        await nursery.start(partial(notifier.run, repo, counts, receiver, settings,
                                    clock=trio.current_time))
        return repo, receiver, counts

    return start


async def save_hooked(repo, url: str = "https://shop.example/hook", at: float = 0.0) -> Message:
    [message_id] = new_ids(1)
    message = Message(message_id, PHONE, "x", at or trio.current_time(), 0, url)
    await repo.save(message)
    return message


async def test_events_arrive_signed_and_in_order(setup, autojump_clock):
    repo, receiver, _ = await setup()
    message = await save_hooked(repo)
    await repo.update(message.id, Status.CONFIRMED)
    await repo.update(message.id, Status.DELIVERED)
    await trio.sleep(5)
    assert receiver.statuses() == [("ACCEPTED", 1), ("CONFIRMED", 2), ("DELIVERED", 3)]
    for at, _, body, headers in receiver.received:
        raw = json.dumps(body, separators=(",", ":")).encode()
        assert verify(raw, SECRET, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER],
                      now=at) is None
    assert len({body["event_id"] for _, _, body, _ in receiver.received}) == 3


async def test_a_failing_receiver_is_retried_with_backoff_and_the_order_holds(
    setup, autojump_clock
):
    repo, receiver, _ = await setup()
    url = "https://shop.example/hook"
    receiver.script[url] = [503, Unreachable("timeout", "slow"), 500, 200]
    message = await save_hooked(repo, url)
    await repo.update(message.id, Status.CONFIRMED)
    await trio.sleep(60)
    times = [at for at, *_ in receiver.received]
    assert receiver.statuses() == [("ACCEPTED", 1)] * 4 + [("CONFIRMED", 2)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert 0.5 <= gaps[0] <= 1.5 and 1.0 <= gaps[1] <= 2.5 and 2.0 <= gaps[2] <= 4.5


async def test_another_4xx_gives_up_at_once_and_the_next_event_goes(setup, autojump_clock):
    repo, receiver, counts = await setup()
    url = "https://shop.example/hook"
    receiver.script[url] = [410, 200]
    message = await save_hooked(repo, url)
    await repo.update(message.id, Status.CONFIRMED)
    await trio.sleep(10)
    assert receiver.statuses() == [("ACCEPTED", 1), ("CONFIRMED", 2)]
    snapshot = await counts.snapshot()
    assert (snapshot.callbacks_abandoned, snapshot.callbacks_delivered) == (1, 1)


async def test_429_waits_for_its_retry_after(setup, autojump_clock):
    repo, receiver, _ = await setup()
    url = "https://shop.example/hook"
    receiver.script[url] = [(429, "30"), 200]
    await save_hooked(repo, url)
    await trio.sleep(60)
    first, second = (at for at, *_ in receiver.received)
    assert 30 <= second - first <= 31


async def test_an_event_is_given_up_after_the_max_age(setup, autojump_clock):
    repo, receiver, counts = await setup(max_age=60)
    url = "https://shop.example/hook"
    receiver.script[url] = [503]
    await save_hooked(repo, url)
    await trio.sleep(600)
    attempts = len(receiver.received)
    assert 4 <= attempts <= 8  # 1, 2, 4, 8, 16, 32 s apart at most, within a minute
    assert receiver.received[-1][0] <= 60 + 1
    assert (await counts.snapshot()).callbacks_abandoned == 1
    await trio.sleep(600)
    assert len(receiver.received) == attempts


async def test_a_slow_receiver_does_not_delay_another(setup, autojump_clock):
    repo, receiver, _ = await setup()
    slow, fast = "https://slow.example/hook", "https://fast.example/hook"
    receiver.latency[slow] = 5.0
    for _ in range(100):  # more than the notifier sends at once, in all
        await save_hooked(repo, slow)
    started = trio.current_time()
    await save_hooked(repo, fast)
    await trio.sleep(1)
    [(arrived, *_)] = [r for r in receiver.received if r[1] == fast]
    assert arrived - started < 1
    await trio.sleep(200)
    assert len(receiver.statuses(slow)) == 100  # 4 at once, 5 s each


async def test_one_receiver_cannot_fill_a_claim_and_a_busy_one_is_skipped(repo):
    slow = hooked(6, "https://slow.example/hook")
    [fast] = hooked(1, "https://fast.example/hook")
    await repo.save(*slow, fast)
    now = time.time() + 10
    first = await repo.claim_callbacks("a", now, 5, 30, 2)
    assert sorted(c.url for c in first) == ["https://fast.example/hook",
                                            "https://slow.example/hook",
                                            "https://slow.example/hook"]
    second = await repo.claim_callbacks("a", now, 5, 30, 2, ["https://slow.example:443"])
    assert second == []  # the fast one is claimed; the slow ones are skipped
    third = await repo.claim_callbacks("a", now, 5, 30, 10)
    assert len(third) == 4 and {c.url for c in third} == {"https://slow.example/hook"}


async def test_a_callback_whose_delivery_crashes_is_given_up_after_a_few_tries(
    setup, autojump_clock
):
    repo, receiver, counts = await setup()
    crashing, fine = "https://shop.example/crash", "https://shop.example/fine"
    receiver.script[crashing] = [TypeError("a bug the transport did not map")]
    message = await save_hooked(repo, crashing)
    await save_hooked(repo, fine)
    await trio.sleep(120)
    crashed = [body for _, url, body, _ in receiver.received if url == crashing]
    assert len(crashed) == notifier.INTERNAL_ERROR_TRIES
    assert {body["message_id"] for body in crashed} == {message.id}
    assert receiver.statuses(fine) == [("ACCEPTED", 1)]  # the notifier kept serving
    assert (await counts.snapshot()).callbacks_abandoned == 1
    exposed = (await counts.exposition(0, 0)).decode()
    assert 'smsproxy_callback_attempts_total{outcome="abandon",reason="internal error"} 1.0' \
        in exposed


def test_times_are_written_with_four_digit_years():
    assert rfc3339(-49_000_000_000) == "0417-04-02T08:53:20.000Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize("url", [
    "https://shop.example:1/x", "https://shop.example:65535/x", "https://a.b.example/",
    "https://shop.example./x", "https://" + ".".join(["a" * 63] * 3 + ["b" * 61]) + "/",
])
def test_urls_at_the_edges_of_the_rules_are_taken(url):
    assert check_url(url)


@pytest.mark.parametrize(("url", "reason"), [
    ("https://shop.example:65536/x", "port 65536 is not from 1 to 65535"),
    ("https://" + ".".join(["a" * 63] * 3 + ["b" * 62]) + "/",
     "host name longer than 253 characters"),
    ("https://shop.example/" + "é" * 600, "longer than 2048 characters once encoded"),
    ("ftp://shop.example/", "must be an http or https URL"),
    ("https:///x", "has no host"),
    ("https://u:p@shop.example/", "must not carry credentials"),
    ("https://" + "a" * 64 + ".example/", "host name label empty or longer than 63 characters"),
])
def test_each_refusal_says_exactly_why(url, reason):
    with pytest.raises(InvalidMessage) as refused:
        check_url(url)
    assert (refused.value.field, refused.value.reason) == ("callback_url", reason)


def test_times_are_written_in_utc_whatever_the_machine_s_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert rfc3339(1_764_180_000.5) == "2025-11-26T18:00:00.500Z"
    finally:
        monkeypatch.undo()
        time.tzset()
