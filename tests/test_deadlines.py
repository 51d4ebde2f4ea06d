"""Per-message deadlines in the batcher's bookkeeping: an urgent message flushes at its
deadline and takes the waiting later-deadline ones along, up to the batch size; for
any arrival sequence, none leaves late and no batch leaves with room to spare while a
message waits."""


import pytest
import trio
from prometheus_client import generate_latest

from api import ApiSettings, create_app
from api.cli import build_parser
from smsproxy.config import Config, ConfigError
from smsproxy.dispatching import BatchingRules
from smsproxy.metrics import Metrics
from smsproxy.models import Message
from smsproxy.records import ProviderTook
from smsproxy.stores.sqlite import SqliteStore
from tests.fakes import ScriptedProvider

WALL = 1_764_180_000.0
BATCH = 10
RULES = BatchingRules(batch_size=BATCH, max_delay=60.0, max_in_flight=1_000_000,
                      message_ttl=3600.0)


def message(n: int, within: float | None = None, accepted: float = WALL) -> Message:
    return Message(f"m{n}", "+4912345678", "hi", created_at=accepted,
                   deliver_by=None if within is None else accepted + within)


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
    first, *along = [m.content for m in batch.messages]
    assert first == "code 4711"  # the earliest deadline leads
    # The rest share one deadline (the mock clock stands still), and ties go by id,
    # which orders by time only to the millisecond.
    assert sorted(along) == ["sale 0", "sale 1", "sale 2", "sale 3"]
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
