"""Faults an operator meets, on real processes: a kill inside the webhook's window,
a full disk, a provider that answers garbage, a port or a database file in use."""

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
from quart import Response
from quart_trio import QuartTrio

from api.serving import serve_app
from tests.processes import (
    ServiceProcess,
    free_port,
    log_events,
    run_to_exit,
    wait_for_event,
    wait_for_status,
)

pytestmark = pytest.mark.e2e

PHONE = "+4912345678"


async def post_one(client: httpx.AsyncClient, content: str = "hello") -> str:
    answer = await client.post("/sms", json={"phone_number": PHONE, "content": content})
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


# --- a status report acknowledged is a status report stored ---------------------------


def test_kill_9_while_a_report_lingers_loses_no_status(tmp_path):
    """The provider does not report twice what we acknowledged: acknowledge only commits."""
    proxy_port = free_port()
    provider = ServiceProcess(
        tmp_path, "--callback-url", f"http://127.0.0.1:{proxy_port}/provider/status",
        "--secret", "s", command="fake-provider", name="provider",
    )
    proxy_args = ("--port", str(proxy_port), "--provider", provider.url, "--webhook-secret", "s",
                  "--status-linger", "3", "--max-delay", "0.05", "--store", "sqlite:///m.db")
    try:
        first = ServiceProcess(tmp_path, *proxy_args, name="first")
        with httpx.Client(base_url=first.url, timeout=10) as client:
            answer = client.post("/sms", json={"phone_number": PHONE, "content": "x"})
            message_id = answer.json()["id"]
        first._wait_for("batch_sent", timeout=10)
        trio.run(trio.sleep, 1.0)  # the CONFIRMED report is lingering in the updater now
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        second = ServiceProcess(tmp_path, *proxy_args, name="second")
        try:

            async def delivered() -> None:
                async with second.client() as client:
                    with trio.fail_after(30):
                        await wait_for_status(client, message_id, "DELIVERED")

            trio.run(delivered)
            assert second.error_events() == []
        finally:
            second.stop()
    finally:
        provider.stop()


# --- a full disk -----------------------------------------------------------------------


@contextmanager
def mounted_disk(tmp_path: Path, size: str) -> Iterator[Path]:
    """A filesystem of its own (tmpfs; CI runs as root, as this workplace does)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                   check=True, capture_output=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    with mounted_disk(tmp_path, "4m") as disk:
        yield disk


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fill the disk with one file until only about ``leave_bytes`` are free."""
    filler = disk / "filler"
    stats = os.statvfs(disk)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave_bytes))
    return filler


async def test_a_full_disk_is_answered_503_and_the_service_resumes_when_room_comes_back(
    tmp_path, small_disk
):
    proxy = await ServiceProcess.launch(tmp_path, "--store", f"sqlite:///{small_disk}/m.db",
                                        "--max-delay", "0.05", name="proxy")
    try:
        async with proxy.client() as client:
            before = await post_one(client)
            filler = fill(small_disk, leave_bytes=64 * 1024)
            big = "x" * 1500  # ten segments of GSM-7 text: the disk fills in a few dozen posts
            codes: list[int] = []
            for _ in range(400):
                answer = await client.post("/sms", json={"phone_number": PHONE, "content": big})
                codes.append(answer.status_code)
                if answer.status_code == 503:
                    assert answer.headers["Retry-After"] == "1"
                    assert answer.json() == {"error": "storage unavailable, retry later"}
                    break
            assert codes[-1] == 503, "the disk never filled"
            assert proxy.process.poll() is None  # still running
            assert (await client.get("/healthz")).status_code == 200
            metrics = (await client.get("/metrics")).text
            assert 'smsproxy_store_errors_total{operation="save"}' in metrics

            filler.unlink()  # room again: the service writes again by itself
            after = await post_one(client)
            with trio.fail_after(20):
                for message_id in (before, after):
                    await wait_for_status(client, message_id, "DELIVERED")
        failures = [e for e in proxy.events() if e.get("event") == "store_transaction_failed"]
        assert failures and "full" in failures[0]["error"]
        assert proxy.event("store_recovered") is not None
        unexpected = [e for e in proxy.error_events()
                      if not (isinstance(e, dict) and e.get("event") == "store_transaction_failed")]
        assert unexpected == []
    finally:
        proxy.stop()


async def test_a_small_disk_filled_and_freed_under_load_stays_writable(tmp_path):
    """The WAL must never need more room than the disk has: on 16 MiB, SQLite's own
    checkpoint size (10,000 pages, 40 MB) is never reached, and without a checkpoint
    the WAL grows until the disk is full again, for good."""
    with mounted_disk(tmp_path, "16m") as disk:
        proxy = await ServiceProcess.launch(tmp_path, "--store", f"sqlite:///{disk}/m.db",
                                            "--max-delay", "0.05", name="proxy")
        try:
            async with proxy.client() as client:
                filler = fill(disk, leave_bytes=256 * 1024)
                with trio.fail_after(60):
                    while (await client.post("/sms", json={
                            "phone_number": PHONE, "content": "x" * 1500})).status_code != 503:
                        pass
                filler.unlink()
                codes: list[int] = []
                with trio.fail_after(120):
                    for n in range(1500):  # one commit each: the WAL grows fastest so
                        answer = await client.post("/sms", json={"phone_number": PHONE,
                                                                 "content": f"m{n}"})
                        codes.append(answer.status_code)
                assert codes[-1000:] == [202] * 1000, (codes.count(503), codes.index(202))
                assert (await client.get("/readyz")).status_code == 200
            wal = disk / "m.db-wal"
            assert not wal.exists() or wal.stat().st_size < 8 * 1024 * 1024
            failures = [e for e in proxy.events() if e.get("event") == "store_transaction_failed"]
            recoveries = [e for e in proxy.events() if e.get("event") == "store_recovered"]
            assert 1 <= len(failures) <= 3 and len(recoveries) <= len(failures)
            assert proxy.process.poll() is None
        finally:
            proxy.stop()


# --- a provider that answers garbage ---------------------------------------------------


def garbage_provider() -> QuartTrio:
    """Takes every batch and answers 202 with a body that claims gzip and is not."""
    app = QuartTrio("garbage-provider")

    @app.post("/v1/batches")
    async def take() -> Response:
        response = Response(b"this is not gzip", 202)
        response.headers["Content-Encoding"] = "gzip"
        return response

    return app


async def test_a_malformed_provider_answer_is_a_failed_attempt_not_the_end(nursery, tmp_path):
    stop = trio.Event()
    [provider_url] = await nursery.start(partial(
        serve_app, garbage_provider(), "127.0.0.1", 0, grace=0.1, stop=stop,
        handle_signals=False,
    ))
    proxy = await ServiceProcess.launch(
        tmp_path, "--store", "memory://", "--provider", provider_url, "--webhook-insecure",
        "--max-delay", "0.05", "--max-attempts", "2", name="proxy",
    )
    try:
        async with proxy.client() as client:
            await post_one(client)
            with trio.fail_after(20):
                await wait_for_event(proxy, "batch_failed")
            assert proxy.process.poll() is None
            assert (await client.get("/readyz")).status_code == 200
            stats = (await client.get("/stats")).json()
            assert (stats["failed"], stats["attempts"]) == (1, 2)
        [failed] = [e for e in proxy.events() if e.get("event") == "batch_failed"]
        assert "DecodingError" in failed["error"]
        assert failed["maybe_delivered"] is True
        assert proxy.error_events() == []
    finally:
        proxy.stop()
        stop.set()


# --- clear exits ----------------------------------------------------------------------


def test_a_port_in_use_exits_1_with_one_line_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_to_exit(tmp_path, "serve", "--store", "memory://", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr == f"smsproxy: cannot listen on 127.0.0.1:{port}: address already in use\n"
    [fatal] = [e for e in log_events(done.stdout) if e.get("event") == "fatal"]
    assert fatal["level"] == "critical"
    assert "OSError" in fatal["exception"]  # the traceback, for whoever digs deeper


@pytest.mark.parametrize("link", ["symbolic", "hard", "linked folder"])
def test_a_second_process_through_a_link_to_the_file_exits_2(tmp_path, link):
    first = ServiceProcess(tmp_path, "--store", "sqlite:///shared.db", name="first")
    try:
        if link == "symbolic":
            (tmp_path / "other.db").symlink_to(tmp_path / "shared.db")
            other = "other.db"
        elif link == "hard":
            os.link(tmp_path / "shared.db", tmp_path / "other.db")
            other = "other.db"
        else:
            (tmp_path / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
            other = "elsewhere/shared.db"
        done = run_to_exit(tmp_path, "serve", "--store", f"sqlite:///{other}")
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.splitlines()
        assert "is in use by another smsproxy" in line
        assert f"pid {first.process.pid}" in line
        assert first.process.poll() is None
    finally:
        first.stop()


def test_a_second_process_on_one_sqlite_file_exits_2_naming_the_holder(tmp_path):
    first = ServiceProcess(tmp_path, "--store", "sqlite:///shared.db", name="first")
    try:
        done = run_to_exit(tmp_path, "serve", "--store", "sqlite:///shared.db")
        assert done.returncode == 2
        [line] = done.stderr.splitlines()
        assert "'shared.db' is in use by another smsproxy" in line
        assert f"pid {first.process.pid}" in line
    finally:
        first.stop()
    # Once the holder is gone, even by kill -9, the file is free again.
    again = ServiceProcess(tmp_path, "--store", "sqlite:///shared.db", name="again")
    again.stop()
