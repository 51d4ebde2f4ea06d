"""The support console in headless Chromium (Debian's, through chromedriver), against a
real smsproxy process: sign in with a support key, search by status, open a message,
read its history and its callbacks. Screenshots go to the test's folder (and to
SMSPROXY_SCREENSHOTS, when set)."""

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import ServiceProcess
from tests.webdriver import Browser

pytestmark = pytest.mark.e2e


def test_support_signs_in_finds_a_message_and_reads_its_history(tmp_path):
    proxy = ServiceProcess(
        tmp_path, "--store", "memory://", "--api-keys", "shop=shop-key",
        "--admin-keys", "support=support-key", "--max-delay", "0.05",
        "--callback-secret", "s", "--callback-allow-private",
        "--callback-url", "http://127.0.0.1:9/hooks?token=t0p-s3cret")  # nobody listens
    browser = Browser(tmp_path / "profile")
    shots: list[Path] = []
    try:
        sent = httpx.post(f"{proxy.url}/sms", headers={"Authorization": "Bearer shop-key"},
                          json={"phone_number": "+491511234567", "content": "hello"}).json()
        _until_delivered(proxy.url, sent["id"])
        browser.open(f"{proxy.url}/console/")
        assert browser.url.endswith("/console/sign-in")
        browser.type("#key", "support-key")
        shots.append(browser.screenshot(tmp_path / "console-sign-in.png"))
        browser.click("#submit")
        assert browser.text("#who") == "support"
        browser.type("#search-status", "DELIVERED")
        shots.append(browser.screenshot(tmp_path / "console-overview.png"))
        browser.click("#search-submit")
        assert sent["id"] in browser.text("#listing")
        browser.click(f"a[href='/console/messages/{sent['id']}']")
        assert browser.text("#status") == "DELIVERED"
        assert browser.text("#recipient") == "+491511234567"
        history = browser.text("#history")
        assert all(step in history for step in ("ACCEPTED", "CONFIRMED", "DELIVERED"))
        callbacks = browser.text("#callbacks")
        assert "127.0.0.1:9/hooks" in callbacks and "t0p-s3cret" not in callbacks
        shots.append(browser.screenshot(tmp_path / "console-message.png"))
        browser.click("#sign-out")
        browser.find("#key")  # the sign-in form again
        assert browser.url.endswith("/console/sign-in")
        assert proxy.error_events() == []
    finally:
        browser.close()
        proxy.stop()
        keep = os.environ.get("SMSPROXY_SCREENSHOTS")
        for shot in shots:
            assert shot.read_bytes().startswith(b"\x89PNG")
            if keep:
                shutil.copy(shot, Path(keep) / shot.name)


def _until_delivered(url: str, message_id: str) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{url}/sms/{message_id}", headers={
            "Authorization": "Bearer shop-key"}).json()["status"] != "DELIVERED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
