"""What operations rely on: metrics that move, readiness, the OpenAPI document, safe logs."""

import io
import json
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from openapi_spec_validator import validate
from prometheus_client import generate_latest

from actors import updater
from api import create_app
from smsproxy.errors import StoreError
from smsproxy.logs import configure_logging
from smsproxy.metrics import Metrics
from smsproxy.stores import MemoryStore
from tests.fakes import ScriptedProvider

PHONE = "+4915112345678"


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
async def pipeline(start_pipeline):
    return await start_pipeline(ScriptedProvider(failures=1), batch_size=2, max_delay=0.5)


async def scrape(client) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return (await response.get_data()).decode()


async def test_metrics_move_when_messages_flow(pipeline, nursery, autojump_clock):
    nursery.start_soon(updater.report_errors, pipeline.errors, pipeline.stats)
    client = create_app(pipeline.services).test_client()
    before = await scrape(client)
    for _ in range(4):
        await client.post("/sms", json={"phone_number": PHONE, "content": "hi"})
    await client.post("/sms", json={"phone_number": "bad", "content": "hi"})
    await trio.sleep(5)
    await pipeline.updater.submit({"not-a-message": "DELIVERED"})
    await pipeline.updater.flush()
    await trio.testing.wait_all_tasks_blocked()
    after = await scrape(client)

    assert metric(before, "smsproxy_messages_accepted_total") == 0
    assert metric(after, "smsproxy_messages_accepted_total") == 4
    assert metric(after, "smsproxy_batches_total", '{attempts="2",outcome="sent"}') == 1
    assert metric(after, "smsproxy_batches_total", '{attempts="1",outcome="sent"}') == 1
    assert metric(after, "smsproxy_batch_messages_count") == 2
    assert metric(after, "smsproxy_batch_messages_sum") == 4
    assert metric(after, "smsproxy_provider_attempt_seconds_count", '{outcome="error"}') == 1
    assert metric(after, "smsproxy_provider_calls_total") == 3
    # messages the provider took, minus the successful calls that carried them
    assert metric(after, "smsproxy_provider_calls_saved") == 4 - 2
    assert metric(after, "smsproxy_queue_depth") == 0
    assert metric(after, "smsproxy_status_updates_rejected_total",
                  '{reason="unknown_message"}') == 1
    assert metric(after, "smsproxy_http_requests_total",
                  '{code="202",method="POST",route="/sms"}') == 4
    assert metric(after, "smsproxy_http_requests_total",
                  '{code="400",method="POST",route="/sms"}') == 1


async def test_unknown_paths_share_one_route_label(pipeline):
    client = create_app(pipeline.services).test_client()
    for path in ("/a", "/b", "/c/d"):
        await client.get(path)
    text = await scrape(client)
    assert metric(text, "smsproxy_http_requests_total",
                  '{code="404",method="GET",route="unmatched"}') == 3


def test_labelled_counters_start_at_zero_for_every_known_label_value():
    text = generate_latest(Metrics(max_attempts=2, store_operations=["save"]).registry).decode()
    for series in ('smsproxy_batches_total{attempts="2",outcome="failed"}',
                   'smsproxy_batches_total{attempts="1",outcome="sent"}',
                   'smsproxy_status_updates_rejected_total{reason="final_status"}',
                   'smsproxy_store_errors_total{operation="save"}',
                   'smsproxy_callback_attempts_total{outcome="retry",reason="5xx"}',
                   'smsproxy_callback_attempts_total{outcome="abandon",reason="4xx"}',
                   'smsproxy_webhook_refused_total{reason="wrong_signature"}'):
        assert f"{series} 0.0\n" in text, series
    assert 'smsproxy_batches_total{attempts="3"' not in text
    assert re.search(r"^process_cpu_seconds_total \d", text, re.MULTILINE)


async def test_every_answer_is_timed_by_route_and_method(pipeline):
    client = create_app(pipeline.services).test_client()
    for _ in range(3):
        await client.get("/healthz")
    await client.post("/sms", json={"phone_number": PHONE, "content": "hi"})
    text = await scrape(client)
    labels = '{method="GET",route="/healthz"}'
    assert metric(text, "smsproxy_http_request_duration_seconds_count", labels) == 3
    assert metric(text, "smsproxy_http_request_duration_seconds_bucket",
                  '{le="5.0",method="GET",route="/healthz"}') == 3
    assert metric(text, "smsproxy_http_request_duration_seconds_count",
                  '{method="POST",route="/sms"}') == 1


async def test_queue_depth_and_in_flight_are_gauges(start_pipeline):
    pipeline = await start_pipeline(ScriptedProvider(latency=float("inf")), batch_size=1)
    client = create_app(pipeline.services).test_client()
    for _ in range(3):
        await client.post("/sms", json={"phone_number": PHONE, "content": "hi"})
    await trio.testing.wait_all_tasks_blocked()
    text = await scrape(client)
    assert metric(text, "smsproxy_queue_depth") == 3
    assert metric(text, "smsproxy_batches_in_flight") == 3
    stats = await (await client.get("/stats")).get_json()
    assert (stats["queue_depth"], stats["batches_in_flight"]) == (3, 3)


async def test_readyz_is_200_when_all_is_well(pipeline):
    response = await create_app(pipeline.services).test_client().get("/readyz")
    assert response.status_code == 200
    body = await response.get_json()
    assert body == {"status": "ready", "checks": {
        "store": "ok", "store_saves": "ok", "stats": "ok", "updater": "ok", "dispatcher": "ok"}}


class BrokenStore(MemoryStore):
    broken = False

    @contextmanager
    def transaction(self):
        if self.broken:
            raise StoreError("SQLite: disk I/O error")
        yield


async def test_readyz_is_503_when_the_store_is_broken(start_pipeline, nursery):
    store = BrokenStore()
    pipeline = await start_pipeline(store=store)
    client = create_app(pipeline.services).test_client()
    assert (await client.get("/readyz")).status_code == 200
    store.broken = True
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = await response.get_json()
    assert body["status"] == "unavailable"
    assert "disk I/O error" in body["checks"]["store"]
    assert (await client.get("/healthz")).status_code == 200  # alive, just not ready
    posted = await client.post("/sms", json={"phone_number": PHONE, "content": "hi"})
    assert posted.status_code == 503


async def test_readyz_is_503_while_draining(pipeline):
    await pipeline.dispatcher.drain()
    response = await create_app(pipeline.services).test_client().get("/readyz")
    assert response.status_code == 503
    assert (await response.get_json())["checks"]["dispatcher"] == "not accepting messages"


async def test_openapi_document_is_valid_and_lists_every_route(pipeline):
    app = create_app(pipeline.services)
    document = await (await app.test_client().get("/openapi.json")).get_json()
    validate(document)
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
        if rule.endpoint not in {"static", "openapi"}
        and not rule.endpoint.startswith(("QUART_SCHEMA", "docs.", "console."))  # pages
    }
    documented = {(path, m) for path, ops in document["paths"].items() for m in ops}
    assert routes <= documented
    for path, method in routes:
        assert document["paths"][path][method]["responses"], (path, method)
    assert "400" in document["paths"]["/sms"]["post"]["responses"]
    assert "401" in document["paths"]["/provider/status"]["post"]["responses"]


async def test_docs_page_and_its_assets_come_from_the_service_itself(pipeline):
    client = create_app(pipeline.services).test_client()
    response = await client.get("/docs")
    assert response.status_code == 200
    page = (await response.get_data()).decode()
    assert '<a href="/openapi.json">' in page
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/") for source in sources), sources
    for source in sources:
        asset = await client.get(source)
        assert asset.status_code == 200, source
    bundle = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["Content-Type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in await bundle.get_data()


async def test_logs_mask_phone_numbers_and_never_hold_content(start_pipeline, autojump_clock):
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    try:
        pipeline = await start_pipeline(ScriptedProvider(failures=1), batch_size=1,
                                        max_attempts=2)
        client = create_app(pipeline.services).test_client()
        await client.post("/sms", json={"phone_number": PHONE, "content": "secret code 4711"})
        await trio.sleep(60)  # past the retry backoff, on the mock clock
    finally:
        configure_logging("console")
    text = stream.getvalue()
    events = [json.loads(line) for line in text.splitlines()]
    assert any(e.get("phone_number") == "***********678" for e in events)
    assert PHONE not in text and PHONE[1:] not in text
    assert "secret code" not in text
    assert any(e["event"] == "batch_attempt_failed" and "batch_id" in e for e in events)
    assert any(e["event"] == "message_queued" and "message_id" in e for e in events)


ROOT = Path(__file__).resolve().parent.parent


async def test_dashboard_and_runbook_match_the_metrics(pipeline):
    exposed = await scrape(create_app(pipeline.services).test_client())
    # Declared families; labelled counters with no children yet have no samples.
    families = set(re.findall(r"^# TYPE (smsproxy_\w+) ", exposed, re.MULTILINE))
    series = families | {f"{f}_{part}" for f in families for part in ("bucket", "sum", "count")}
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"smsproxy_\w+", target["expr"])
    }
    assert queried <= series, queried - series
    runbook = (ROOT / "docs" / "operations.md").read_text()
    undocumented = {f for f in families if not re.search(rf"`{f}[`{{]", runbook)}
    assert undocumented == set()


async def test_the_openapi_document_states_what_the_models_cannot(pipeline):
    app = create_app(pipeline.services)
    document = await (await app.test_client().get("/openapi.json")).get_json()
    paths = document["paths"]
    for path in ("/sms", "/sms/bulk", "/provider/status"):
        assert paths[path]["post"]["requestBody"]["required"] is True, path
    for path in ("/sms/{message_id}", "/sms/{message_id}/events"):
        [parameter] = paths[path]["get"]["parameters"]
        assert parameter["schema"]["format"] == "uuid"
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert paths["/sms"]["post"]["security"] == [{"bearer": []}, {}]
    assert "security" not in paths["/provider/status"]["post"]  # signed, not keyed
    submit = paths["/sms"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in submit["parameters"]}
    assert "Idempotent-Replayed" in submit["responses"]["202"]["headers"]
    assert "Retry-After" in submit["responses"]["429"]["headers"]
    assert "Retry-After" in submit["responses"]["503"]["headers"]
    assert "Retry-After" in paths["/provider/status"]["post"]["responses"]["503"]["headers"]


async def test_options_and_allow_are_true_to_the_routes(pipeline):
    client = create_app(pipeline.services).test_client()
    options = await client.options("/sms/bulk")
    assert set(options.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}
    wrong_method = await client.get("/sms/bulk")
    assert wrong_method.status_code == 405
    assert "GET" not in wrong_method.headers["Allow"]
    malformed = await client.get("/sms/not-a-uuid")  # a malformed id is still a 400
    assert malformed.status_code == 400
    assert "not a message id" in (await malformed.get_json())["error"]
    assert (await client.get("/sms/bulk/events")).status_code == 400
