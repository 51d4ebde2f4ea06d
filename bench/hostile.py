"""Hostile clients against a running smsproxy: does anyone else still get served?

All at once, for ``--seconds``: 500 slowloris connections (a header line every few
seconds, never finishing the head), 2,000 idle connections, 300 connections sending
a body a byte at a time, and one 100 MiB chunked body. Meanwhile a prober asks
``/healthz`` on a fresh connection every 20 ms. Reported: the prober's p50 and p99,
its answers that were not 200, the server's RSS growth, and its open descriptors
before the attack and 2 s after the attackers have left.

Targets (issue 15): p99 <= 100 ms, zero 5xx, zero tracebacks, RSS growth <= 50 MB,
descriptors back to where they were.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import trio

ATTACK_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


@dataclass
class Server:
    host: str
    port: int
    pid: int
    log: Path

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@contextmanager
def smsproxy(*options: str) -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as workdir:
        log = Path(workdir) / "server.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--port", "0", "--store",
                 "memory://", *options], stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for line in log.read_text().splitlines():
                    if '"listening"' in line:
                        url = json.loads(line)["binds"][0].removeprefix("http://")
                        host, port = url.rsplit(":", 1)
                        yield Server(host, int(port), process.pid, log)
                        return
                time.sleep(0.05)
            raise RuntimeError(log.read_text())
        finally:
            process.terminate()
            process.wait(timeout=15)


async def hold(server: Server, opened: list[trio.SocketStream]) -> None:
    with suppress(*ATTACK_ERRORS):
        opened.append(await trio.open_tcp_stream(server.host, server.port))


async def slowloris(server: Server) -> None:
    with suppress(*ATTACK_ERRORS):
        stream = await trio.open_tcp_stream(server.host, server.port)
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for n in range(10_000):
            await trio.sleep(3)
            await stream.send_all(f"X-{n}: y\r\n".encode())


async def slow_body(server: Server) -> None:
    with suppress(*ATTACK_ERRORS):
        stream = await trio.open_tcp_stream(server.host, server.port)
        await stream.send_all(b"POST /sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                              b"\r\nContent-Length: 60000\r\n\r\n")
        for _ in range(60_000):
            await trio.sleep(1)
            await stream.send_all(b" ")


async def huge_chunked_body(server: Server) -> None:
    chunk = b"x" * 65536
    with suppress(*ATTACK_ERRORS):
        stream = await trio.open_tcp_stream(server.host, server.port)
        await stream.send_all(b"POST /sms/bulk HTTP/1.1\r\nHost: x\r\nContent-Type: "
                              b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        for _ in range(100 * 16):  # 100 MiB
            await stream.send_all(frame)
        await stream.send_all(b"0\r\n\r\n")


async def probe(server: Server, seconds: float) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    deadline = trio.current_time() + seconds
    while trio.current_time() < deadline:
        started = trio.current_time()
        answers[await healthz(server)] += 1
        latencies.append((trio.current_time() - started) * 1000)
        await trio.sleep(0.02)
    return latencies, answers


async def healthz(server: Server) -> str:
    try:
        with trio.fail_after(5):
            stream = await trio.open_tcp_stream(server.host, server.port)
            async with stream:
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close"
                                      b"\r\n\r\n")
                answer = b""
                while chunk := await stream.receive_some(65536):
                    answer += chunk
        return answer.split(b" ", 2)[1].decode() if answer else "no answer"
    except trio.TooSlowError:
        return "timeout"
    except ATTACK_ERRORS as error:
        return type(error).__name__


async def attack(server: Server, seconds: float) -> tuple[list[float], Counter[str]]:
    held: list[trio.SocketStream] = []
    async with trio.open_nursery() as attackers:
        for _ in range(2000):
            attackers.start_soon(hold, server, held)
        for _ in range(500):
            attackers.start_soon(slowloris, server)
        for _ in range(300):
            attackers.start_soon(slow_body, server)
        attackers.start_soon(huge_chunked_body, server)
        await trio.sleep(1)  # let them all connect
        result = await probe(server, seconds)
        attackers.cancel_scope.cancel()
    for stream in held:
        with suppress(*ATTACK_ERRORS):
            await stream.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this client holds ~2,800
    with smsproxy() as server:
        time.sleep(0.5)
        rss_before, fds_before = server.rss_mb(), server.descriptors()
        latencies, answers = trio.run(attack, server, args.seconds)
        rss_after = server.rss_mb()
        time.sleep(2)
        fds_after = server.descriptors()
        tracebacks = server.log.read_text().count("Traceback")
    quantiles = statistics.quantiles(latencies, n=100)
    errors = sum(n for code, n in answers.items() if code != "200")
    print(f"/healthz during the attack: {len(latencies)} probes, p50 {quantiles[49]:.1f} ms, "
          f"p99 {quantiles[98]:.1f} ms (target <= 100); answers {dict(answers)}")
    print(f"not 200: {errors} (target 0); tracebacks in the log: {tracebacks} (target 0)")
    print(f"RSS {rss_before:.0f} -> {rss_after:.0f} MB: +{rss_after - rss_before:.0f} MB "
          f"(target <= 50)")
    print(f"descriptors {fds_before} before, {fds_after} 2 s after the attackers left "
          f"(target: back to the baseline)")


if __name__ == "__main__":
    main()
