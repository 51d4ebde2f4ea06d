"""The Python client (``client/``, installed on its own) against real smsproxy
processes: sync, and async under trio and asyncio; typed results and errors; retries
on 503 and on a dropped connection that keep the Idempotency-Key, so nothing is sent
twice; bulk split by the server's limit; callback signatures."""

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from smsproxy_client import (
    AsyncClient,
    Client,
    InvalidRequest,
    InvalidSignature,
    OptedOut,
    Outgoing,
    QuotaExceeded,
    RetryPolicy,
    Status,
    TransportError,
    Unauthorized,
    verify_callback,
)

from tests.processes import ServiceProcess, free_port

pytestmark = pytest.mark.e2e

BOB = "+4915112345672"
FAST = RetryPolicy(attempts=4, backoff=0.05, max_backoff=0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("client")
    proxy = ServiceProcess(folder, "--store", "memory://", "--api-keys", "shop=shop-key",
                           "--admin-keys", "support=support-key", "--quota", "shop=40",
                           "--bulk-max", "3", "--max-delay", "0.05", "--sim-latency", "0")
    yield proxy
    proxy.stop()


def test_the_sync_client_sends_and_reads_back(server):
    with Client(server.url, "shop-key", retry=FAST, bulk_limit=3) as sms:
        sent = sms.send("0049 151 12345671", "Your order has shipped", sender="MyShop")
        assert (sent.status, sent.segments, sent.phone_number) == (
            Status.ACCEPTED, 1, "+4915112345671")
        deadline = time.monotonic() + 10
        while (status := sms.status(sent.id)).status is not Status.DELIVERED:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (status.sender, status.phone_number) == ("MyShop", "+4915112345671")
        assert [e.status for e in sms.events(sent.id)] == [
            Status.ACCEPTED, Status.CONFIRMED, Status.DELIVERED]
        many = sms.send_many([Outgoing(BOB, f"bulk {n}") for n in range(7)])
        assert len(many) == 7 and len({m.id for m in many}) == 7
        page = sms.find(limit=5)
        assert len(page.messages) == 5 and page.next is not None
        rest = sms.find(limit=100, cursor=page.next)
        assert {m.id for m in page.messages + rest.messages} >= {m.id for m in many}


def test_errors_are_typed(server):
    with Client(server.url, "shop-key", retry=FAST) as sms:
        with pytest.raises(InvalidRequest, match="phone_number"):
            sms.send("+999 12", "x")
        with pytest.raises(InvalidRequest, match="senderr"):
            sms.send(BOB, "x", senderr="typo")
        with pytest.raises(InvalidRequest, match="status"):
            sms.find(status="LOST")
        with pytest.raises(InvalidRequest, match="not a message id"):
            sms.status("42")
    with Client(server.url, "wrong", retry=FAST) as stranger, pytest.raises(Unauthorized):
        stranger.send(BOB, "x")


def test_an_opted_out_recipient_is_named(server):
    with Client(server.url, "support-key", retry=FAST) as support:
        support._http.put(f"/suppressions/{BOB}").raise_for_status()
    try:
        with Client(server.url, "shop-key", retry=FAST, bulk_limit=3) as sms:
            with pytest.raises(OptedOut) as refused:
                sms.send(BOB, "x")
            assert refused.value.indexes == [0]
            with pytest.raises(OptedOut) as refused:
                sms.send_many([Outgoing("+4915112345671", "a"), Outgoing("+4915112345671", "b"),
                               Outgoing("+4915112345671", "c"), Outgoing(BOB, "d")])
            assert refused.value.indexes == [0]  # the second request's first item
            assert len(refused.value.accepted) == 3  # the first request went through
    finally:
        with Client(server.url, "support-key", retry=FAST) as support:
            support._http.delete(f"/suppressions/{BOB}")


async def test_the_async_client_under_trio(server):
    async with AsyncClient(server.url, "shop-key", retry=FAST) as sms:
        sent = await sms.send(BOB, "from trio")
        assert (await sms.status(sent.id)).id == sent.id
        assert (await sms.events(sent.id))[0].status is Status.ACCEPTED


def test_the_async_client_under_asyncio(server):
    async def main() -> Status:
        async with AsyncClient(server.url, "shop-key", retry=FAST) as sms:
            sent = await sms.send(BOB, "from asyncio")
            return (await sms.status(sent.id)).status

    assert asyncio.run(main()) in (Status.ACCEPTED, Status.CONFIRMED, Status.DELIVERED)


FLAKY = textwrap.dedent('''
    import json, socket, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer

    script = sys.argv[2].split(",")  # per request: "drop", "503" or "202"
    seen = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers.get("Idempotency-Key"))
            with open(sys.argv[3], "w") as out:
                json.dump(seen, out)
            step = script[min(len(seen), len(script)) - 1]
            if step == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if step == "503":
                answer = b'{"error": "queue full"}'
                self.send_response(503)
                self.send_header("Retry-After", "0")
            else:
                item = json.loads(body)
                answer = json.dumps({"id": "0190c7a4-0000-7000-8000-000000000001",
                                     "status": "ACCEPTED", "segments": 1,
                                     "phone_number": item["phone_number"]}).encode()
                self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Flaky)
    print("ready", flush=True)
    server.serve_forever()
''')


@pytest.mark.parametrize("script", ["503,202", "drop,503,202"])
def test_a_retry_keeps_its_idempotency_key(tmp_path, script):
    port, log = free_port(), tmp_path / "seen.json"
    flaky = subprocess.Popen([sys.executable, "-c", FLAKY, str(port), script, str(log)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert flaky.stdout is not None and flaky.stdout.readline().strip() == "ready"
        with Client(f"http://127.0.0.1:{port}", retry=FAST) as sms:
            sent = sms.send(BOB, "once")
        assert sent.status is Status.ACCEPTED
        keys = json.loads(log.read_text())
        assert len(keys) == len(script.split(",")) and len(set(keys)) == 1 and keys[0]
    finally:
        flaky.kill()
        flaky.wait()


def test_no_server_is_a_transport_error_after_the_retries():
    with Client(f"http://127.0.0.1:{free_port()}", retry=FAST) as sms, \
            pytest.raises(TransportError):
        sms.send(BOB, "nobody listens")


def test_a_spent_quota_is_not_waited_for(server):
    with Client(server.url, "shop-key", retry=FAST) as sms:
        with pytest.raises(QuotaExceeded) as spent:
            for n in range(50):
                sms.send("+4915112345671", f"quota {n}")
        assert 0 < spent.value.retry_after <= 86_400


def test_a_callback_is_verified_by_signature_and_age():
    body = json.dumps({"event_id": "e", "status": "DELIVERED"}).encode()
    now = 1_765_000_000
    signature = hmac.new(b"s", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"x-smsproxy-timestamp": str(now), "X-Smsproxy-Signature": f"sha256={signature}"}
    assert verify_callback(body, headers, "s", now=now + 10)["status"] == "DELIVERED"
    for wrong, why in (({**headers, "X-Smsproxy-Signature": "sha256=00"}, "wrong"),
                       ({"x-smsproxy-timestamp": str(now)}, "missing"),
                       ({**headers, "x-smsproxy-timestamp": "soon"}, "malformed")):
        with pytest.raises(InvalidSignature, match=why):
            verify_callback(body, wrong, "s", now=now)
    with pytest.raises(InvalidSignature, match="stale"):
        verify_callback(body, headers, "s", now=now + 301)
    with pytest.raises(InvalidSignature, match="wrong"):
        verify_callback(body, headers, "other secret", now=now)


def test_the_client_depends_on_nothing_of_the_server():
    package = Path(__file__).resolve().parent.parent / "client" / "smsproxy_client"
    for source in package.glob("*.py"):
        text = source.read_text()
        imports = [line for line in text.replace("smsproxy_client", "").splitlines()
                   if line.startswith(("import ", "from "))]
        for server_package in ("smsproxy", "actors", "api"):
            assert not any(server_package in line for line in imports), source.name
