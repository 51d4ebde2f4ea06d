"""POST /provider/status: signed, validated, handed to the updater as one batch."""

import json

import pytest
import trio
import trio.testing

from actors._mailbox import Mailbox
from actors.updater import UpdaterHandle
from api import ApiSettings, Services, create_app
from smsproxy.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from smsproxy.statuses import Status
from tests.fakes import FailingStore, drain_channel

SECRET = "webhook-secret"
NOW = 1_764_180_000


@pytest.fixture
async def pipeline(start_pipeline):
    return await start_pipeline(batch_size=1000, max_delay=3600)


@pytest.fixture
def app(pipeline):
    return create_app(pipeline.services, ApiSettings(webhook_secret=SECRET, clock=lambda: NOW))


async def accepted(pipeline, count: int) -> list[str]:
    return await pipeline.accept(count)


def signed_headers(body: bytes, secret: str = SECRET, at: int = NOW) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(body, secret, at), TIMESTAMP_HEADER: str(at),
            "Content-Type": "application/json"}


async def post_status(app, updates, headers=None):
    body = updates if isinstance(updates, bytes) else json.dumps(updates).encode()
    headers = signed_headers(body) if headers is None else headers
    return await app.test_client().post("/provider/status", data=body, headers=headers)




async def test_good_signature_is_applied(app, pipeline):
    a, b = await accepted(pipeline, 2)
    response = await post_status(app, {a: "CONFIRMED", b: "DELIVERED"})
    assert response.status_code == 204
    await pipeline.updater.flush()
    assert (await pipeline.repository.get(a)).status is Status.CONFIRMED
    assert (await pipeline.repository.get(b)).status is Status.DELIVERED


@pytest.mark.parametrize(
    ("make_headers", "reason"),
    [
        (lambda body: {}, "missing signature"),
        (lambda body: signed_headers(body, secret="guess"), "wrong signature"),
        (lambda body: signed_headers(body, at=NOW - 3600), "stale signature"),
        (lambda body: signed_headers(b"{}"), "wrong signature"),
    ],
)
async def test_bad_signature_is_401_and_changes_nothing(app, pipeline, make_headers, reason):
    [a] = await accepted(pipeline, 1)
    body = json.dumps({a: "DELIVERED"}).encode()
    response = await post_status(app, body, headers=make_headers(body))
    assert response.status_code == 401
    assert (await response.get_json())["error"] == reason
    await pipeline.updater.flush()
    assert (await pipeline.repository.get(a)).status is Status.ACCEPTED
    metrics = (await (await app.test_client().get("/metrics")).get_data()).decode()
    label = reason.replace(" ", "_")
    assert f'smsproxy_webhook_refused_total{{reason="{label}"}} 1.0' in metrics


async def test_unknown_status_and_id_are_reported_and_the_rest_applied(app, pipeline):
    a, b = await accepted(pipeline, 2)
    stranger = "6f1c1a52-5d0c-4a56-9e0d-3f3b1d0c2a11"
    response = await post_status(app, {a: "VAPORISED", b: "DELIVERED", stranger: "DELIVERED"})
    assert response.status_code == 204
    await pipeline.updater.flush()
    rejected = {r.message_id: r for r in drain_channel(pipeline.errors)}
    assert set(rejected) == {a, stranger}
    assert "unknown provider status" in rejected[a].reason
    assert "unknown message" in rejected[stranger].reason
    assert (await pipeline.repository.get(a)).status is Status.ACCEPTED
    assert (await pipeline.repository.get(b)).status is Status.DELIVERED


async def test_a_final_status_is_never_overwritten_through_the_webhook(app, pipeline):
    [a] = await accepted(pipeline, 1)
    await post_status(app, {a: "DELIVERED"})
    await post_status(app, {a: "FAILED"})
    await pipeline.updater.flush()
    assert (await pipeline.repository.get(a)).status is Status.DELIVERED
    assert [r.status for r in drain_channel(pipeline.errors)] == ["FAILED"]


@pytest.mark.parametrize(
    "body",
    [b"{nope", b"[]", b'"DELIVERED"', b'{"a": 1}', b'{"a": ["DELIVERED"]}', b'{"a": null}',
     b"\xff\xfe"],
)
async def test_malformed_body_is_400_and_applies_nothing(app, pipeline, body):
    response = await post_status(app, body)
    assert response.status_code == 400
    assert "error" in await response.get_json()


async def test_empty_report_is_fine(app):
    assert (await post_status(app, {})).status_code == 204


async def test_without_a_secret_unsigned_reports_are_taken(pipeline):
    app = create_app(pipeline.services)
    [a] = await accepted(pipeline, 1)
    response = await post_status(app, {a: "DELIVERED"}, headers={})
    assert response.status_code == 204
    await pipeline.updater.flush()
    assert (await pipeline.repository.get(a)).status is Status.DELIVERED


async def test_body_over_one_mib_is_413(app):
    updates = {f"{i:036d}": "DELIVERED" for i in range(30_000)}
    response = await post_status(app, updates)
    assert response.status_code == 413


@pytest.mark.parametrize("linger", [0.0, 5.0])
async def test_a_stuck_updater_answers_503_after_its_linger_and_the_wait(
    pipeline, autojump_clock, linger
):
    mailbox, _inbox = Mailbox.open("updater", capacity=1)  # nobody serves this inbox
    stuck = UpdaterHandle(mailbox, linger)
    services = Services(pipeline.repository, pipeline.dispatcher, pipeline.stats, stuck)
    app = create_app(services, ApiSettings(webhook_wait=2.0))
    started = trio.current_time()
    response = await post_status(app, {"b": "DELIVERED"}, headers={})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    # A long linger is not a reason to refuse: the wait is the linger plus the margin.
    assert trio.current_time() - started == pytest.approx(linger + 2.0)


async def test_204_means_the_reports_are_committed(start_pipeline, autojump_clock):
    pipeline = await start_pipeline(batch_size=1000, max_delay=3600, status_linger=3.0)
    app = create_app(pipeline.services)
    [a] = await accepted(pipeline, 1)
    started = trio.current_time()
    response = await post_status(app, {a: "DELIVERED"}, headers={})
    assert response.status_code == 204
    assert trio.current_time() - started == pytest.approx(3.0)  # it waited out the linger
    assert (await pipeline.repository.get(a)).status is Status.DELIVERED  # no flush needed


async def test_a_failing_store_answers_503_so_the_provider_retries(start_pipeline):
    store = FailingStore()
    pipeline = await start_pipeline(batch_size=1000, max_delay=3600, store=store)
    app = create_app(pipeline.services)
    [a] = await accepted(pipeline, 1)
    store.failing = True
    response = await post_status(app, {a: "DELIVERED"}, headers={})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "storage" in (await response.get_json())["error"]
    store.failing = False
    assert (await pipeline.repository.get(a)).status is Status.ACCEPTED  # not held: retried
    assert (await post_status(app, {a: "DELIVERED"}, headers={})).status_code == 204
    assert (await pipeline.repository.get(a)).status is Status.DELIVERED
