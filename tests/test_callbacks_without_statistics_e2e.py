"""Callbacks from three instances on one PostgreSQL database that has no statistics (a
fresh schema, autovacuum off for its tables, as on many new test servers): the claims
keep their plans, and the backlog drains as fast as the receiver takes it."""

import subprocess
import sys
import textwrap
import time

import httpx
import psycopg
import pytest
import trio

from smsproxy.stores.postgres import PostgresStore
from tests.processes import ServiceProcess, free_port, until

pytestmark = pytest.mark.e2e

MESSAGES = 3_600
EVENTS_EACH = 3  # ACCEPTED, CONFIRMED, DELIVERED: one callback each
DRAINED_WITHIN = 60.0
"""The issue's 30 s, for a machine that may have both cores busy: 19 s on a quiet one,
over 30 s once under stress-ng; with the old claim, whose cost grew with the backlog,
the drain took minutes."""

RECEIVER = textwrap.dedent('''
    import sys, threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen, lock = set(), threading.Lock()

    class Receive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                seen.add(body)
            self.answer(b"")

        def do_GET(self):
            with lock:
                self.answer(str(len(seen)).encode())

        def answer(self, body):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receive).serve_forever()
''')


def start_receiver(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])


def received(port: int) -> int:
    return int(httpx.get(f"http://127.0.0.1:{port}/").text)


def delivered(instances: list[ServiceProcess]) -> int:
    return sum(httpx.get(f"{instance.url}/stats").json()["messages_delivered"]
               for instance in instances)


async def test_callbacks_of_three_instances_drain_on_a_database_without_statistics(
    tmp_path, postgres_url
):
    port = free_port()
    receiver = start_receiver(port)
    options = ("--store", postgres_url, "--callback-url", f"http://127.0.0.1:{port}/hook",
               "--callback-secret", "shop-secret", "--callback-allow-private",
               "--max-delay", "0.1")
    PostgresStore(postgres_url).close()  # the schema, before anyone holds its tables
    with psycopg.connect(postgres_url, autocommit=True) as db:
        for table in ("smsproxy_messages", "smsproxy_events"):
            db.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    instances: list[ServiceProcess] = []
    try:
        for name in "abc":
            instances.append(await ServiceProcess.launch(
                tmp_path, "--port", str(free_port()), "--instance-name", name, *options,
                name=name))
        with psycopg.connect(postgres_url) as db:
            analysed = db.execute(
                "SELECT count(*) FROM pg_stats WHERE tablename LIKE 'smsproxy_%'").fetchone()
        assert analysed == (0,)  # no statistics, and none will come
        bodies = [{"messages": [{"phone_number": "+4912345678", "content": f"m{r}.{n}"}
                                for n in range(100)]} for r in range(MESSAGES // 100)]
        clients = [instance.client() for instance in instances]
        for n, body in enumerate(bodies):
            answer = await clients[n % 3].post("/sms/bulk", json=body)
            assert answer.status_code == 202, answer.text
        for client in clients:
            await client.aclose()
        with trio.fail_after(60):
            await until(lambda: delivered(instances) >= MESSAGES)
        last_report = time.monotonic()
        with trio.fail_after(DRAINED_WITHIN):
            await until(lambda: received(port) >= MESSAGES * EVENTS_EACH)
        print(f"drained {time.monotonic() - last_report:.1f} s after the last report")
        assert all(instance.process.poll() is None for instance in instances)
    finally:
        for instance in instances:
            instance.stop()
        receiver.kill()
        receiver.wait()
