"""The OpenAPI document works with code generators: openapi-python-client makes a
client of it without one warning, and that client sends a message to a real server
and reads its status back."""

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import ServiceProcess

pytestmark = pytest.mark.e2e


def test_a_generated_client_sends_and_reads_a_status(tmp_path):
    proxy = ServiceProcess(tmp_path, "--store", "memory://", "--api-keys", "shop=k",
                           "--max-delay", "0.05")
    try:
        document = httpx.get(f"{proxy.url}/openapi.json", timeout=10).json()
        (tmp_path / "openapi.json").write_text(json.dumps(document))
        (tmp_path / "config.json").write_text(json.dumps({
            "project_name_override": "smsproxy-generated",
            "package_name_override": "smsproxy_generated"}))
        generated = subprocess.run(
            [str(Path(sys.executable).with_name("openapi-python-client")), "generate",
             "--path", "openapi.json", "--config", "config.json", "--meta", "none",
             "--output-path", "smsproxy_generated"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert generated.returncode == 0, generated.stdout + generated.stderr
        assert "WARNING" not in generated.stdout + generated.stderr, generated.stdout
        sys.path.insert(0, str(tmp_path))
        try:
            sent, status = _send_and_read(proxy.url)
        finally:
            sys.path.remove(str(tmp_path))
        assert sent.status_code == 202 and sent.parsed.status.value == "ACCEPTED"
        assert status.value in ("ACCEPTED", "CONFIRMED", "DELIVERED")
        assert proxy.error_events() == []
    finally:
        proxy.stop()


def _send_and_read(url: str):  # the generated package's names, as it makes them
    client_module = importlib.import_module("smsproxy_generated")
    submit = importlib.import_module("smsproxy_generated.api.messages.post_submit_sms")
    read = importlib.import_module("smsproxy_generated.api.messages.get_sms_status")
    models = importlib.import_module("smsproxy_generated.models")
    client = client_module.AuthenticatedClient(base_url=url, token="k")
    sent = submit.sync_detailed(client=client, body=models.SmsRequest(
        phone_number="+491511234567", content="from a generated client"))
    deadline = time.monotonic() + 10
    while True:
        status = read.sync(client=client, message_id=sent.parsed.id).status
        if status.value == "DELIVERED" or time.monotonic() > deadline:
            return sent, status
        time.sleep(0.05)
