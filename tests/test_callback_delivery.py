"""Status callbacks end to end, with real processes: a receiver that is down, then up,
and a proxy killed with SIGKILL while callbacks wait; the address guard over HTTP."""

import json
import re
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
import trio

from smsproxy.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER
from smsproxy.signing import verify
from tests.processes import ServiceProcess, free_port, run_to_exit

SECRET = "shop-secret"
PHONE = "+4912345678"

RECEIVER = textwrap.dedent('''
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with open(sys.argv[2], "a") as out:
                out.write(json.dumps({"body": body.decode(), "headers": dict(self.headers),
                                      "path": self.path}) + "\\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receive).serve_forever()
''')


def start_receiver(port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), str(log)])


def received(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def post_with_callbacks(proxy: ServiceProcess, url: str, count: int) -> list[str]:
    ids = []
    async with proxy.client() as client:
        for n in range(count):
            answer = await client.post("/sms", json={"phone_number": PHONE, "content": f"m{n}",
                                                     "callback_url": url})
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
    return ids


OUTAGE = 20.0
"""Seconds the receiver is down: callbacks fail, pile up, and survive a kill -9."""


async def test_callbacks_survive_a_receiver_outage_and_a_kill_9(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook?token=abc"
    log = tmp_path / "received.jsonl"
    options = ("--store", f"sqlite:///{tmp_path / 'proxy.db'}", "--callback-secret", SECRET,
               "--callback-allow-private", "--callback-timeout", "1", "--max-delay", "0.1",
               "--callback-retry-max", "4")
    outage_ends = trio.current_time() + OUTAGE
    proxy = await ServiceProcess.launch(tmp_path, *options, name="first")
    receiver = None
    try:
        ids = await post_with_callbacks(proxy, url, 20)
        await trio.sleep(OUTAGE / 2)  # delivered by the simulator; the callbacks fail
        async with proxy.client() as client:
            metrics = (await client.get("/metrics")).text
        [failed] = re.findall(r'^smsproxy_callback_attempts_total\{outcome="retry",'
                              r'reason="connection"\} (\S+)$', metrics, re.MULTILINE)
        assert float(failed) >= 20  # each message's first event, tried at least once
        assert received(log) == []
        proxy.stop()  # SIGKILL, with every callback still pending
        proxy = await ServiceProcess.launch(tmp_path, *options, name="second")
        ids += await post_with_callbacks(proxy, url, 10)
        await trio.sleep_until(outage_ends)
        receiver = start_receiver(port, log)
        with trio.fail_after(30):  # within a few --callback-retry-max of its return
            while True:  # every event (30 messages, 3 each) at least once
                if len({json.loads(r["body"])["event_id"] for r in received(log)}) == 90:
                    break
                await trio.sleep(0.2)
    finally:
        proxy.stop()
        if receiver is not None:
            receiver.kill()
    by_message: defaultdict[str, list[int]] = defaultdict(list)
    for record in received(log):
        body = record["body"].encode()
        headers = {k.lower(): v for k, v in record["headers"].items()}
        assert verify(body, SECRET, headers[SIGNATURE_HEADER.lower()],
                      headers[TIMESTAMP_HEADER.lower()], now=float(headers[
                          TIMESTAMP_HEADER.lower()])) is None
        event = json.loads(body)
        by_message[event["message_id"]].append(event["sequence"])
    assert sorted(by_message) == sorted(ids)
    for sequences in by_message.values():  # in order, each once (the kill was while
        assert sequences == [1, 2, 3]        # nothing was in flight: the receiver was down)
    assert not any("token=abc" in line for line in proxy.log_path.read_text().splitlines())


@pytest.mark.parametrize("url", ["http://127.0.0.1/hook", "http://169.254.169.254/latest",
                                 "http://10.0.0.1/hook", "http://localhost:9/hook"])
async def test_private_callback_addresses_are_refused_at_post(tmp_path, url):
    proxy = await ServiceProcess.launch(tmp_path, "--store", "memory://",
                                        "--callback-secret", SECRET)
    try:
        async with proxy.client() as client:
            answer = await client.post("/sms", json={"phone_number": PHONE, "content": "x",
                                                     "callback_url": url})
            bulk = await client.post("/sms/bulk", json={"messages": [
                {"phone_number": PHONE, "content": "x"},
                {"phone_number": PHONE, "content": "y", "callback_url": url}]})
    finally:
        proxy.stop()
    assert answer.status_code == 400
    assert "private" in answer.json()["error"]
    assert bulk.status_code == 400


async def test_a_callback_url_without_a_secret_is_refused(tmp_path):
    proxy = await ServiceProcess.launch(tmp_path, "--store", "memory://")
    try:
        async with proxy.client() as client:
            answer = await client.post("/sms", json={"phone_number": PHONE, "content": "x",
                                                     "callback_url": "https://shop.example/"})
    finally:
        proxy.stop()
    assert answer.status_code == 400
    assert "--callback-secret" in answer.json()["error"]


async def test_a_default_callback_url_needs_a_secret(tmp_path):
    done = await trio.to_thread.run_sync(lambda: run_to_exit(
        tmp_path, "serve", "--callback-url", "https://shop.example/hook"))
    assert done.returncode == 2
    assert "--callback-secret" in done.stderr + done.stdout

