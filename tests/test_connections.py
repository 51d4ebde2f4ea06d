"""Hostile and careless connections against a real server process, over raw sockets:
no hang after an early answer, every time limit kept, no lock-out when descriptors
run short. Sync tests: plain blocking sockets say best what a client sees."""

import json
import os
import resource
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest
import structlog
import trio

from api.connections import ConnectionLimits, Connections
from tests.processes import ServiceProcess, free_port

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
KEEP_ALIVE_TIMEOUT = 2.0
BODY = b'{"phone_number": "+4912345678", "content": "hello"}'


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServiceProcess]:
    proxy = ServiceProcess(
        tmp_path_factory.mktemp("connections"), "--store", "memory://", "--api-keys", "key-1",
        "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
        "--keep-alive-timeout", str(KEEP_ALIVE_TIMEOUT), name="proxy",
    )
    try:
        yield proxy
    finally:
        proxy.stop()


def address(server: ServiceProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(server: ServiceProcess) -> socket.socket:
    sock = socket.create_connection(address(server))
    sock.settimeout(5)
    return sock


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, bool]:
    """Everything the server sends within ``limit`` seconds, and whether it closed."""
    sock.settimeout(0.05)
    received = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def server_sockets_in_close_wait(port: int) -> int:
    """Sockets on the server's port that the client closed and the server did not."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "08":  # 08: CLOSE_WAIT
                count += 1
    return count


def within(seconds: float, condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` holds at some point within ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def descriptors_for(process: ServiceProcess, ports: set[int]) -> int:
    """The process's open descriptors for connections from these client ports: its
    socket descriptors whose TCP entry's far end is one of them. (Counting all its
    descriptors would also count a connection of an earlier test closing meanwhile.)"""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) in ports:
                inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{process.process.pid}/fd").iterdir():
        with suppress(FileNotFoundError):
            target = os.readlink(fd)
            held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


# --- an answer before the body ---------------------------------------------------------

EARLY_ANSWERS = {
    401: ("POST", "/sms", {}, BODY),
    404: ("POST", "/nowhere", {"Authorization": "Bearer key-1"}, BODY),
    405: ("POST", "/healthz", {}, BODY),
    413: ("POST", "/sms", {"Authorization": "Bearer key-1"}, b"x" * (2 * 1024 * 1024)),
}


@pytest.mark.parametrize("status", sorted(EARLY_ANSWERS))
def test_after_an_early_answer_the_next_request_is_served_or_the_connection_closed(
    server, status
):
    method, path, headers, body = EARLY_ANSWERS[status]
    head = f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    sock = connect(server)
    sock.sendall(head.encode())
    time.sleep(0.1)  # headers first, the body later: as many clients and proxies write them
    # The server may close while the body is on its way: allowed, its answer says so.
    with suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(body + b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
    received, closed = read_until_closed(sock, limit=1.0)
    sock.close()
    first_line, _, rest = received.partition(b"\r\n")
    assert first_line.startswith(f"HTTP/1.1 {status}".encode()), received[:200]
    if b"HTTP/1.1 200" in rest:
        pass  # the next request was served
    else:
        assert closed, "neither served the next request nor closed the connection"
        assert b"connection: close" in rest.lower()
    time.sleep(0.3)
    assert server_sockets_in_close_wait(address(server)[1]) == 0


# --- time limits ---------------------------------------------------------------------------


def closed_after(sock: socket.socket, trickle: bytes = b"", every: float = 0.2) -> float:
    """Seconds until the server closes; meanwhile send ``trickle`` a byte at a time."""
    started = time.monotonic()
    sock.settimeout(every)
    remaining = iter(trickle)
    while time.monotonic() - started < 15:
        try:
            if not sock.recv(65536):
                break
        except TimeoutError:
            byte = next(remaining, None)
            if byte is not None:
                try:
                    sock.send(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
        except ConnectionResetError:
            break
    return time.monotonic() - started


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(server):
    waited = closed_after(connect(server))
    assert KEEP_ALIVE_TIMEOUT - 0.2 <= waited <= KEEP_ALIVE_TIMEOUT + 1.0


@pytest.mark.parametrize("requests", [1, 3])
def test_a_connection_idle_after_its_answers_is_closed_after_the_keep_alive_timeout(
        server, requests):
    sock = connect(server)
    for _ in range(requests):
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = b""
        while not answer.endswith(b"}"):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    received, closed = read_until_closed(sock, KEEP_ALIVE_TIMEOUT + 3.0)
    assert closed and received == b""
    assert KEEP_ALIVE_TIMEOUT - 0.2 <= time.monotonic() - started <= KEEP_ALIVE_TIMEOUT + 1.0


def test_a_head_sent_a_byte_at_a_time_is_cut_off_at_the_header_timeout(server):
    head = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 200
    waited = closed_after(connect(server), trickle=head)
    assert HEADER_TIMEOUT - 0.2 <= waited <= HEADER_TIMEOUT + 1.0


def test_a_body_sent_a_byte_at_a_time_is_cut_off_at_the_body_timeout(server):
    sock = connect(server)
    sock.sendall(b"POST /sms HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer key-1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    waited = closed_after(sock, trickle=b" " * 1000)
    assert BODY_TIMEOUT - 0.2 <= waited <= BODY_TIMEOUT + 1.0


def test_a_client_that_leaves_without_a_byte_frees_its_descriptor_at_once(server):
    clients = [connect(server) for _ in range(50)]
    ports = {client.getsockname()[1] for client in clients}
    # Setting up: wait until the server has accepted them all (slower on a busy machine).
    assert within(10.0, lambda: descriptors_for(server, ports) == 50)
    for client in clients:
        client.close()
    assert within(0.5, lambda: descriptors_for(server, ports) == 0)


def test_the_limits_are_logged_at_start(server):
    limits = server.event("connection_limits")
    assert (limits["header_timeout"], limits["body_timeout"], limits["keep_alive_timeout"]) == (
        HEADER_TIMEOUT, BODY_TIMEOUT, KEEP_ALIVE_TIMEOUT)


# --- running short of descriptors ----------------------------------------------------------


def test_more_idle_clients_than_descriptors_lock_nobody_out(tmp_path):
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proxy_port = free_port()
    provider = ServiceProcess(
        tmp_path, "--callback-url", f"http://127.0.0.1:{proxy_port}/provider/status",
        "--secret", "s", command="fake-provider", name="provider",
    )
    # The provider is reached over HTTP, so sending needs descriptors of the reserve.
    proxy = ServiceProcess(tmp_path, "--port", str(proxy_port), "--store", "sqlite:///m.db",
                           "--max-delay", "0.05", "--provider", provider.url,
                           "--webhook-secret", "s", preexec_fn=low_limit, name="proxy")
    try:
        limits = proxy.event("connection_limits")
        assert limits["descriptors"] == 256
        assert limits["max_connections"] == 128
        attackers = [socket.create_connection(address(proxy)) for _ in range(400)]
        with httpx.Client(base_url=proxy.url, timeout=5) as client:
            ids = []
            for _ in range(20):
                answer = client.post("/sms", json={"phone_number": "+4912345678", "content": "x"})
                assert answer.status_code == 202
                ids.append(answer.json()["id"])
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                statuses = {client.get(f"/sms/{i}").json()["status"] for i in ids}
                if statuses == {"DELIVERED"}:
                    break
                time.sleep(0.05)
            assert statuses == {"DELIVERED"}  # batches and store writes went on
        for attacker in attackers:
            attacker.close()
        started = time.monotonic()
        assert httpx.get(f"{proxy.url}/healthz", timeout=1).status_code == 200
        assert time.monotonic() - started < 1
        log = proxy.log_path.read_text()
        assert "Traceback" not in log
        assert proxy.error_events() == []
        assert all(json.loads(line)["event"] != "fatal" for line in log.splitlines()
                   if line.startswith("{"))
    finally:
        proxy.stop()
        provider.stop()


def test_sigterm_does_not_wait_for_idle_keep_alive_connections(tmp_path):
    proxy = ServiceProcess(tmp_path, "--store", "memory://", "--shutdown-grace", "10",
                           name="proxy")
    try:
        idle = []
        for _ in range(10):
            sock = connect(proxy)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # now idle, kept alive
            idle.append(sock)
        started = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=15) == 0
        assert time.monotonic() - started < 2  # not the 10 s grace
        for sock in idle:
            assert read_until_closed(sock, limit=0.5)[1]
            sock.close()
    finally:
        proxy.stop()


async def test_timed_out_connections_are_logged_once_per_interval_with_counts(autojump_clock):
    registry = Connections(ConnectionLimits(100, 30, 10, 30, warn_interval=10))
    with structlog.testing.capture_logs() as logs:
        for _ in range(500):
            registry.note_timeout("header")
        await trio.sleep(11)
        registry.note_timeout("body")
    lines = [e for e in logs if e["event"] == "connections_timed_out"]
    assert [(e.get("header"), e.get("body")) for e in lines] == [(1, None), (499, 1)]
