"""A headless Chromium driven over the W3C WebDriver protocol (Debian's chromedriver),
with httpx: enough to sign in, fill a form, click, read text and take a screenshot."""

import base64
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.processes import free_port

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


class Browser:
    def __init__(self, profile: Path) -> None:
        driver = shutil.which("chromedriver")
        assert driver, "chromedriver is missing: install Debian's chromium-driver (tests/run does)"
        port = free_port()
        self._driver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._http.get("/status").json()["value"]["ready"]:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        options = {"binary": shutil.which("chromium") or "/usr/bin/chromium", "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--disable-sync",
            "--disable-component-update", "--window-size=1200,900",
            f"--user-data-dir={profile}",
            # every host but the service's resolves to nothing: no asset from elsewhere
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]}
        created = self._call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})
        self._session = f"/session/{created['sessionId']}"
        # A find waits for its element, up to this long: a form's POST and the page it
        # leads to may still be on their way when a click returns (on a busy machine).
        self._call("POST", f"{self._session}/timeouts", {"implicit": 15_000})

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self._http.request(method, path, json=body)
        value = answer.json()["value"]
        assert answer.status_code == 200, value
        return value

    def open(self, url: str) -> None:
        self._call("POST", f"{self._session}/url", {"url": url})

    @property
    def url(self) -> str:
        return str(self._call("GET", f"{self._session}/url"))

    def find(self, css: str) -> str:
        found = self._call("POST", f"{self._session}/element",
                           {"using": "css selector", "value": css})
        return str(found[ELEMENT])

    def type(self, css: str, text: str) -> None:
        self._call("POST", f"{self._session}/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", f"{self._session}/element/{self.find(css)}/click", {})

    def text(self, css: str) -> str:
        return str(self._call("GET", f"{self._session}/element/{self.find(css)}/text"))

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", f"{self._session}/screenshot")))
        return path

    def close(self) -> None:
        try:
            self._http.delete(self._session)
        finally:
            self._http.close()
            self._driver.kill()
            self._driver.wait()
