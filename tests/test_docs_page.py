"""/docs renders the operations in a real browser that can reach nothing but the
service: Swagger UI comes from the package, not from a CDN."""

import re
import shutil
import subprocess

import pytest
import trio

from tests.processes import ServiceProcess

pytestmark = pytest.mark.e2e


async def test_docs_render_every_operation_with_no_network(tmp_path):
    browser = shutil.which("chromium")
    assert browser, "chromium is missing: install Debian's chromium package (tests/run does)"
    service = await ServiceProcess.launch(tmp_path, "--store", "memory://")
    try:
        page = await trio.to_thread.run_sync(lambda: subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}",
             # every host but the service's resolves to nothing: offline, as an admin port
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             "--virtual-time-budget=10000", "--dump-dom", f"{service.url}/docs"],
            capture_output=True, text=True, timeout=60,
        ).stdout)
    finally:
        service.stop()
    rendered = set(re.findall(
        r'class="opblock-summary-method">(\w+)</span>.*?class="opblock-summary-path" '
        r'data-path="([^"]+)"', page))
    assert {("POST", "/sms"), ("GET", "/sms/{message_id}"), ("POST", "/sms/bulk"),
            ("GET", "/events"), ("POST", "/provider/status")} <= rendered, rendered
    assert 'href="/openapi.json"' in page
