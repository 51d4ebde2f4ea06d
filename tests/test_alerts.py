"""The shipped Prometheus alert rules: valid, firing on what they name (promtool's own
unit tests in deploy/), on metrics the service exports, each with its runbook entry."""

import re
import shutil
import subprocess
from pathlib import Path

import trio
import yaml
from prometheus_client import generate_latest

from api import create_app
from smsproxy.metrics import Metrics
from smsproxy.provider_stats import provider_exposition
from smsproxy.routing import Route

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RUNBOOK = DEPLOY.parent / "docs" / "operations.md"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    assert path, "promtool is missing: install Debian's prometheus package (tests/run does)"
    return subprocess.run([path, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60)


def rules() -> list[dict]:
    document = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_rules_are_valid_and_their_unit_tests_pass():
    checked = promtool("check", "rules", "prometheus-rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "prometheus-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test():
    tests = (DEPLOY / "prometheus-rules.test.yml").read_text()
    for rule in rules():
        assert re.search(rf"alertname: {rule['alert']}\n\s+exp_alerts:\n\s+- exp_labels",
                         tests), f"no test makes {rule['alert']} fire"


def test_the_rules_query_metrics_the_service_exports():
    exposition = (generate_latest(Metrics(store_operations=["save"]).registry).decode()
                  + provider_exposition({"p": Route("p", 0.01, 100, 0.01)}))
    exported = set(re.findall(r"^([a-z_]+?)(?:\{| )", exposition, re.MULTILINE))
    for rule in rules():
        for name in re.findall(r"\b(smsproxy_[a-z_]+)", rule["expr"]):
            assert name in exported, f"{rule['alert']} queries {name}, which is not exported"


def test_every_alert_links_a_runbook_entry():
    headings = {line.removeprefix("### ").strip().lower()
                for line in RUNBOOK.read_text().splitlines() if line.startswith("### ")}
    for rule in rules():
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert anchor in headings, f"{rule['alert']}: no '### ' heading for #{anchor}"


async def test_promtool_finds_nothing_to_fix_in_the_exposition(start_pipeline):
    pipeline = await start_pipeline()
    client = create_app(pipeline.services).test_client()
    await client.post("/sms", json={"phone_number": "+4915112345678", "content": "hi"})
    await client.get("/sms/not-an-id")
    exposition = await (await client.get("/metrics")).get_data()
    path = shutil.which("promtool")
    assert path, "promtool is missing: install Debian's prometheus package (tests/run does)"
    with trio.fail_after(60):
        checked = await trio.run_process([path, "check", "metrics"], stdin=exposition,
                                         capture_stdout=True, capture_stderr=True,
                                         check=False)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    assert b"smsproxy_http_request_duration_seconds_bucket" in exposition
