"""Per-message deadlines in the batcher's bookkeeping: an urgent message flushes at its
deadline and takes the waiting later-deadline ones along, up to the batch size; for
any arrival sequence, none leaves late and no batch leaves with room to spare while a
message waits."""

import math

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from api import ApiSettings, create_app
from api.cli import build_parser
from smsproxy.batching import DEADLINE_LEAD, BatchingRules, BatchQueue
from smsproxy.config import Config, ConfigError
from smsproxy.metrics import Metrics
from smsproxy.models import Message, ProviderTook, new_id
from smsproxy.stores.postgres import PostgresStore
from smsproxy.stores.sqlite import SqliteStore
from tests.fakes import ScriptedProvider
from tests.test_postgres_store import FakeClock

WALL = 1_764_180_000.0
BATCH = 10
RULES = BatchingRules(batch_size=BATCH, max_delay=60.0, max_in_flight=1_000_000,
                      message_ttl=3600.0)


def message(n: int, within: float | None = None, accepted: float = WALL) -> Message:
    return Message(f"m{n}", "+4912345678", "hi", created_at=accepted,
                   deliver_by=None if within is None else accepted + within)


def test_an_urgent_message_leaves_at_its_deadline_with_the_others_riding_along():
    queue = BatchQueue(RULES)
    queue.add(tuple(message(n, within=600) for n in range(5)), now=0.0, wall_now=WALL)
    queue.add((message(99, within=0.5, accepted=WALL + 2),), now=2.0, wall_now=WALL + 2)
    assert queue.next_wakeup() == pytest.approx(2.5 - DEADLINE_LEAD)  # a little early
    assert queue.take_batches(2.4) == []
    [batch] = queue.take_batches(2.5 - DEADLINE_LEAD)
    assert [m.id for m in batch.messages] == ["m99", "m0", "m1", "m2", "m3", "m4"]


def test_the_earliest_deadlines_fill_a_batch_and_the_rest_wait_for_theirs():
    queue = BatchQueue(RULES)
    queue.add(tuple(message(n, within=600 - n) for n in range(12)), now=0.0, wall_now=WALL)
    queue.add((message(99, within=1),), now=0.0, wall_now=WALL)
    [batch] = queue.take_batches(0.0)  # 13 waiting: a full batch leaves at once
    assert [m.id for m in batch.messages] == ["m99", "m11", "m10", "m9", "m8", "m7", "m6",
                                              "m5", "m4", "m3"]
    assert queue.waiting == 3
    assert queue.next_wakeup() == pytest.approx(598.0 - DEADLINE_LEAD)  # m2


def test_without_a_deadline_a_message_waits_the_max_delay():
    queue = BatchQueue(RULES)
    queue.add((message(1),), now=10.0, wall_now=WALL)
    assert queue.next_wakeup() == 70.0


def test_a_recovered_message_keeps_its_deadline_on_the_wall_clock():
    queue = BatchQueue(RULES)
    queue.add((message(1, within=30.0),), now=500.0, wall_now=WALL + 20.0)
    # 10 s of its 30 were left at the restart
    assert queue.next_wakeup() == pytest.approx(510.0 - DEADLINE_LEAD)
    late = BatchQueue(RULES)
    late.add((message(2, within=30.0),), now=500.0, wall_now=WALL + 40.0)
    assert late.next_wakeup() == 500.0  # past it: at once


ARRIVALS = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False),  # arrival, seconds into the run
              st.one_of(st.none(), st.floats(0, 120, allow_nan=False))),  # deliver within
    min_size=1, max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ARRIVALS)
def test_no_message_leaves_late_and_no_batch_leaves_with_room_while_one_waits(arrivals):
    queue = BatchQueue(RULES)
    arrivals = sorted(arrivals, key=lambda a: a[0])
    deadline: dict[str, float] = {}
    left: dict[str, float] = {}
    pending = list(enumerate(arrivals))
    now = 0.0
    while pending or queue.waiting:
        next_arrival = pending[0][1][0] if pending else math.inf
        now = max(now, min(next_arrival, queue.next_wakeup()))
        while pending and pending[0][1][0] <= now:
            n, (at, within) = pending.pop(0)
            queued = message(n, within, accepted=WALL + at)
            deadline[queued.id] = at + (RULES.max_delay if within is None else within)
            queue.add((queued,), now=now, wall_now=WALL + now)
        for batch in queue.take_batches(now):
            for sent in batch.messages:
                left[sent.id] = now
            # room left in a batch while a message still waits: it should have gone along
            assert len(batch.messages) == BATCH or queue.waiting == 0
            queue.succeeded(batch)
    assert set(left) == set(deadline)
    for message_id, at in left.items():
        # 1 µs: wall-clock times near 1.7e9 s carry about 0.2 µs of float rounding
        assert at <= deadline[message_id] + 1e-6, (message_id, at, deadline[message_id])


# --- the same rules where the table is the queue (PostgreSQL), and across restarts ------


def test_claims_take_the_earliest_deadlines_when_the_earliest_comes(postgres_url):
    clock = FakeClock()
    clock.now = WALL
    store = PostgresStore(postgres_url, clock=clock)
    try:
        relaxed = [Message(new_id(), "+4912345678", f"r{n}", WALL + n * 0.001,
                           deliver_by=WALL + 600 + n) for n in range(4)]
        plain = [Message(new_id(), "+4912345678", f"p{n}", WALL + n * 0.001) for n in range(4)]
        urgent = Message(new_id(), "+4912345678", "otp", WALL + 0.5, deliver_by=WALL + 2.0)
        with store.transaction():
            store.insert([*relaxed, *plain, urgent])
        with store.transaction():
            waiting = store.claim("a", 10, max_delay=10.0, lease=30.0)
        assert waiting.messages == () and waiting.next_due == WALL + 2.0
        clock.now = WALL + 2.0
        with store.transaction():
            taken = store.claim("a", 10, max_delay=10.0, lease=30.0)
        # 9 of 10: the OTP's deadline releases them, in deadline order: the OTP, the
        # plain ones (--max-delay, 10 s), then those that could wait 600 s
        assert [m.content for m in taken.messages] == [
            "otp", "p0", "p1", "p2", "p3", "r0", "r1", "r2", "r3"]
        assert taken.messages[0].deliver_by == WALL + 2.0
    finally:
        store.close()


def test_a_deadline_survives_a_restart(tmp_path):
    path = tmp_path / "deadlines.db"
    store = SqliteStore(path)
    with store.transaction():
        store.insert([message(1, within=30.0), message(2)])
    store.close()
    store = SqliteStore(path)
    try:
        assert [(m.id, m.deliver_by) for m in store.accepted()] == [
            ("m1", WALL + 30.0), ("m2", None)]
        assert store.lookup("m1").deliver_by == WALL + 30.0
    finally:
        store.close()


# --- over HTTP, through the batcher, and in the configuration -----------------------------

PHONE = "+4915112345678"
CLASSES = {"otp": 0.5, "marketing": 600.0}


@pytest.fixture
async def service(start_pipeline):
    provider = ScriptedProvider()
    pipeline = await start_pipeline(provider, batch_size=BATCH, max_delay=60.0)
    app = create_app(pipeline.services, ApiSettings(classes=CLASSES, message_ttl=3600.0))
    return app.test_client(), provider


async def test_an_otp_takes_the_waiting_marketing_texts_along(service, autojump_clock):
    client, provider = service
    for n in range(4):
        answer = await client.post("/sms", json={"phone_number": PHONE, "content": f"sale {n}",
                                                 "class": "marketing"})
        assert answer.status_code == 202
    await trio.sleep(5)
    assert provider.calls == []  # marketing can wait 600 s, and the batch is not full
    started = trio.current_time()
    otp = await client.post("/sms", json={"phone_number": PHONE, "content": "code 4711",
                                          "class": "otp"})
    await trio.sleep(1)
    [batch] = provider.calls
    assert [m.content for m in batch.messages] == ["code 4711", "sale 0", "sale 1", "sale 2",
                                                   "sale 3"]
    assert provider.call_times[0] - started <= 0.5
    body = await (await client.get(f"/sms/{(await otp.get_json())['id']}")).get_json()
    assert body["deliver_by"].endswith("Z")


@pytest.mark.parametrize(("fields", "error"), [
    ({"class": "urgent"}, "'urgent' is not a delivery class of this server (it has: "
                          "marketing, otp)"),
    ({"class": "otp", "deliver_within": 1}, "give deliver_within or class, not both"),
    ({"deliver_within": 7200}, "at most the server's --message-ttl (3600 s)"),
    ({"deliver_within": 0}, "greater than 0"),
    ({"deliver_within": "soon"}, "deliver_within"),
])
async def test_a_deadline_the_server_cannot_keep_is_a_400(service, fields, error):
    client, _ = service
    for path, body in (("/sms", {"phone_number": PHONE, "content": "hi", **fields}),
                       ("/sms/bulk", {"messages": [{"phone_number": PHONE, "content": "hi",
                                                    **fields}]})):
        answer = await client.post(path, json=body)
        assert answer.status_code == 400, (path, await answer.get_data())
        assert error in (await answer.get_data()).decode(), path


async def test_a_message_without_a_deadline_shows_none(service):
    client, _ = service
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": "hi",
                                             "deliver_within": 30})
    plain = await client.post("/sms", json={"phone_number": PHONE, "content": "hi"})
    timed = await (await client.get(f"/sms/{(await answer.get_json())['id']}")).get_json()
    untimed = await (await client.get(f"/sms/{(await plain.get_json())['id']}")).get_json()
    assert "deliver_by" in timed and "deliver_by" not in untimed


def test_classes_come_from_repeated_flags_or_the_environment():
    args = build_parser().parse_args(["serve", "--class", "otp=0.5", "--class", "notice=10"])
    assert args.classes == ["otp=0.5", "notice=10"]
    config = Config.from_sources({"classes": "otp=0.5,notice=10"}, {})
    assert config.delivery_classes == {"otp": 0.5, "notice": 10.0}
    from_env = Config.from_sources({}, {"SMSPROXY_CLASSES": "otp=0.5,marketing=600"})
    assert from_env.delivery_classes == {"otp": 0.5, "marketing": 600.0}
    for bad in ("otp", "otp=fast", "otp=-1", "o t p=1", "otp=inf"):
        with pytest.raises(ConfigError):
            Config(classes=bad)
    with pytest.raises(ConfigError, match="at most --message-ttl"):
        Config(classes="slow=7200")


def test_the_provider_s_intake_is_timed_and_late_messages_counted_by_class():
    took = ProviderTook.of([
        Message("a", PHONE, "x", WALL, deliver_by=WALL + 0.5, delivery_class="otp"),
        Message("b", PHONE, "x", WALL, deliver_by=WALL + 5.0, delivery_class="otp"),
        Message("c", PHONE, "x", WALL, deliver_by=WALL + 0.5),
        Message("d", PHONE, "x", WALL),
    ], at=WALL + 1.0)
    assert took.waited == {"otp": [1.0, 1.0], "custom": [1.0], "default": [1.0]}
    assert took.late == {"otp": 1, "custom": 1}
    metrics = Metrics(classes=["otp"])
    metrics.record(took)
    text = generate_latest(metrics.registry).decode()
    assert 'smsproxy_deadlines_missed_total{class="otp"} 1.0' in text
    assert 'smsproxy_time_to_provider_seconds_count{class="otp"} 2.0' in text
    assert 'smsproxy_deadlines_missed_total{class="default"} 0.0' in text


def test_without_a_wall_clock_a_deadline_counts_from_acceptance_as_from_now():
    queue = BatchQueue(RULES)
    queue.add((message(1, within=30.0),), now=5.0)
    assert queue.next_wakeup() == pytest.approx(35.0 - DEADLINE_LEAD)
