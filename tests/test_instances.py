"""Several `smsproxy serve` processes on one PostgreSQL database, behind one fake
provider: every message sent once, any instance answers for any message, a dead
instance's batches are taken over."""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import psycopg
import pytest
import trio

from smsproxy.stores.postgres import SCHEMA_VERSION
from tests.conftest import postgres_store_url
from tests.processes import ServiceProcess, free_port, wait_for_event, wait_for_status

pytestmark = pytest.mark.e2e

PHONE = "+4912345678"
SECRET = "hook-secret"


class Cluster:
    def __init__(self, workdir: Path, store: str, provider_options: tuple[str, ...] = ()):
        self.workdir = workdir
        self.store = store
        self.callback_port = free_port()
        self.provider = ServiceProcess(
            workdir, "--callback-url", f"http://127.0.0.1:{self.callback_port}/provider/status",
            "--secret", SECRET, *provider_options, command="fake-provider", name="provider",
        )
        self.instances: dict[str, ServiceProcess] = {}

    def options(self, name: str, *extra: str) -> tuple[str, ...]:
        port = ("--port", str(self.callback_port)) if name == "c" else ()
        return ("--store", self.store, "--instance-name", name, "--provider", self.provider.url,
                "--webhook-secret", SECRET, *port, *extra)

    async def start(self, *extra: str, names: str = "abc") -> None:
        """Start the instances at once (c takes the provider's callbacks)."""
        started = [ServiceProcess(self.workdir, *self.options(n, *extra), name=n, wait=False)
                   for n in names]
        for name, process in zip(names, started, strict=True):
            with trio.fail_after(30):
                process.url = (await wait_for_event(process, "listening"))["binds"][0]
            self.instances[name] = process

    async def provider_stats(self) -> dict[str, int]:
        async with httpx.AsyncClient(base_url=self.provider.url) as client:
            return (await client.get("/v1/stats")).json()  # type: ignore[no-any-return]

    async def wait_delivered(self, count: int, seconds: float) -> dict[str, int]:
        with trio.fail_after(seconds):
            while True:
                stats = await self.provider_stats()
                if stats.get("delivered", 0) >= count:
                    return stats
                await trio.sleep(0.1)

    def stop(self) -> None:
        for process in self.instances.values():
            process.stop()
        self.provider.stop()


@pytest.fixture
def cluster(tmp_path, postgres_url) -> Iterator[Cluster]:
    running = Cluster(tmp_path, postgres_url)
    try:
        yield running
    finally:
        running.stop()


async def post_round_robin(instances: list[ServiceProcess], count: int) -> list[str]:
    """POST ``count`` messages, one instance after the other; the ids acknowledged."""
    ids: list[str] = []
    clients = [p.client() for p in instances]
    limiter = trio.CapacityLimiter(30)

    async def post(n: int) -> None:
        async with limiter:
            try:
                answer = await clients[n % len(clients)].post(
                    "/sms", json={"phone_number": PHONE, "content": f"m{n}"})
            except httpx.TransportError:
                return  # an instance that was killed: not acknowledged, not counted
        if answer.status_code == 202:
            ids.append(answer.json()["id"])

    async with trio.open_nursery() as nursery:
        for n in range(count):
            nursery.start_soon(post, n)
    for client in clients:
        await client.aclose()
    return ids


async def test_three_instances_send_every_message_once_and_answer_for_each_other(cluster):
    await cluster.start("--batch-size", "50", "--max-delay", "0.2")
    a, b, c = (cluster.instances[n] for n in "abc")
    ids = await post_round_robin([a, b, c], 3000)
    assert len(ids) == 3000
    stats = await cluster.wait_delivered(3000, seconds=90)
    assert stats["messages"] == 3000
    assert stats.get("duplicates", 0) == 0  # each message_id sent once
    async with b.client() as reader:  # a message posted to A, read from B; reports went to C
        assert (await reader.get(f"/sms/{ids[0]}")).json()["status"] == "DELIVERED"
        assert (await reader.get(f"/sms/{ids[3]}")).json()["status"] == "DELIVERED"
    claimed = 0
    for instance in (a, b, c):
        async with instance.client() as client:
            claimed += (await client.get("/stats")).json()["messages_claimed"]
        assert instance.error_events() == []
    assert claimed == 3000


async def test_a_killed_instance_s_batches_are_taken_over(cluster):
    lease = 3.0
    await cluster.start("--batch-size", "20", "--max-delay", "0.1", "--claim-lease", str(lease),
                        "--provider-timeout", "1")
    a, b, c = (cluster.instances[n] for n in "abc")
    first = await post_round_robin([a, b, c], 300)
    b.process.send_signal(signal.SIGKILL)  # with whatever it had claimed
    more = await post_round_robin([a, c], 300)
    acknowledged = len(first) + len(more)
    stats = await cluster.wait_delivered(acknowledged, seconds=lease + 30)
    assert stats["messages"] - stats.get("duplicates", 0) == acknowledged
    # at most what B had in flight is sent twice: max-in-flight (4) batches of 20
    assert stats.get("duplicates", 0) <= 4 * 20


async def test_three_instances_starting_at_once_make_one_schema(cluster, postgres_url):
    await cluster.start()
    for instance in cluster.instances.values():
        assert instance.error_events() == []
    with psycopg.connect(postgres_url) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM smsproxy_schema")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))  # each step once
    names = {p.event("starting")["config"]["instance_name"] for p in cluster.instances.values()}
    assert names == {"a", "b", "c"}
    for name, process in cluster.instances.items():  # every event says which instance
        assert {event.get("instance") for event in process.events()} == {name}
        async with process.client() as client:
            metrics = (await client.get("/metrics")).text
        assert f'smsproxy_instance_info{{instance="{name}"}} 1.0' in metrics


# --- a PostgreSQL restart under load ----------------------------------------------------


class PrivateServer:
    """A PostgreSQL server of the test's own (initdb as the postgres user, as CI runs as
    root), so that restarting it disturbs nothing else on the machine."""

    def __init__(self) -> None:
        self.bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.datadir = Path(tempfile.mkdtemp(prefix="smsproxy-pg-"))
        shutil.chown(self.datadir, "postgres")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres("initdb", "-D", str(self.datadir / "data"), "-A", "trust",
                          "-U", "postgres", "--no-sync")
        self.start()

    def _as_postgres(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def _pg_ctl(self, *args: str) -> None:
        options = (f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1")
        self._as_postgres("pg_ctl", "-D", str(self.datadir / "data"), "-o", options,
                          "-l", str(self.datadir / "server.log"), "-w", *args)

    def start(self) -> None:
        self._pg_ctl("start")

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def remove(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.datadir, ignore_errors=True)


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    server = PrivateServer()
    try:
        yield server
    finally:
        server.remove()


async def test_a_database_restart_under_load_is_503s_then_business_as_usual(
    tmp_path, private_server
):
    cluster = Cluster(tmp_path, private_server.url)
    try:
        await cluster.start("--batch-size", "20", "--max-delay", "0.1", names="ac")
        answers: list[int] = []
        ids: list[str] = []
        clients = [p.client() for p in cluster.instances.values()]

        async def post_steadily(seconds: float) -> None:
            deadline = trio.current_time() + seconds
            n = 0
            while trio.current_time() < deadline:
                answer = await clients[n % 2].post("/sms", json={"phone_number": PHONE,
                                                                 "content": f"m{n}"})
                answers.append(answer.status_code)
                if answer.status_code == 202:
                    ids.append(answer.json()["id"])
                else:
                    assert answer.headers.get("Retry-After"), answer.text
                n += 1
                await trio.sleep(0.01)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(post_steadily, 6.0)
            await trio.sleep(2)
            await trio.to_thread.run_sync(private_server.restart)
        for client in clients:
            await client.aclose()
        print(f"answers during the restart: { {c: answers.count(c) for c in set(answers)} }")
        assert set(answers) <= {202, 503}, answers  # never a 500
        assert 503 in answers  # the restart was seen, and answered as it should be
        assert 202 in answers[-20:]  # resumed by itself
        for process in cluster.instances.values():
            assert process.process.poll() is None  # nobody exited
        stats = await cluster.wait_delivered(len(ids), seconds=60)
        assert stats["messages"] - stats.get("duplicates", 0) >= len(ids)
    finally:
        cluster.stop()


# --- the bill does not grow with the number of instances ----------------------------------


async def steady_load(instances: list[ServiceProcess], rate: float, seconds: float) -> int:
    """``rate`` messages a second, spread over the instances in turn; how many acknowledged."""
    acknowledged = 0
    clients = [p.client() for p in instances]
    started = trio.current_time()
    for n in range(int(rate * seconds)):
        await trio.sleep_until(started + n / rate)
        answer = await clients[n % len(clients)].post(
            "/sms", json={"phone_number": PHONE, "content": f"m{n}"})
        acknowledged += answer.status_code == 202
    for client in clients:
        await client.aclose()
    return acknowledged


async def test_three_instances_cost_no_more_provider_calls_than_one(tmp_path, postgres_database):
    """30 messages a second for 30 s, batches of 100, max delay 1 s: one call a second
    or so, whether one instance takes the load or three share it."""
    calls = {}
    options = ("--batch-size", "100", "--max-delay", "1")

    async def measure(names: str) -> None:
        workdir = tmp_path / f"{len(names)}-instances"
        workdir.mkdir()
        schema = f"cost_{len(names)}"
        with psycopg.connect(postgres_database, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {schema}")
        cluster = Cluster(workdir, postgres_store_url(postgres_database, schema))
        try:
            await cluster.start(*options, names=names)
            sent = await steady_load(list(cluster.instances.values()), rate=30, seconds=30)
            stats = await cluster.wait_delivered(sent, seconds=30)
            calls[len(names)] = stats["requests"]
        finally:
            cluster.stop()

    async with trio.open_nursery() as nursery:  # side by side: the same machine, the same time
        nursery.start_soon(measure, "c")
        nursery.start_soon(measure, "abc")
    print(f"provider calls: one instance {calls[1]}, three instances {calls[3]}")
    assert calls[3] <= 1.15 * calls[1]


async def test_a_database_away_at_start_is_not_fatal(tmp_path, private_server):
    private_server.stop()
    proxy = await ServiceProcess.launch(tmp_path, "--store", private_server.url, name="proxy")
    try:
        async with proxy.client() as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert "PostgreSQL" in ready.json()["checks"]["store"]
            refused = await client.post("/sms", json={"phone_number": PHONE, "content": "x"})
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            await trio.to_thread.run_sync(private_server.start)
            with trio.fail_after(20):
                await ready_again(client)
            message = await client.post("/sms", json={"phone_number": PHONE, "content": "x"})
            assert message.status_code == 202
            with trio.fail_after(20):
                await wait_for_status(client, message.json()["id"], "DELIVERED")
        assert proxy.process.poll() is None
    finally:
        proxy.stop()


async def ready_again(client: httpx.AsyncClient) -> None:
    while True:
        if (await client.get("/readyz")).status_code == 200:
            return
        await trio.sleep(0.1)


# --- several processes on one machine -------------------------------------------------------


async def test_two_workers_share_the_port_and_count_as_one(tmp_path, postgres_url):
    port = free_port()
    workers = ServiceProcess(tmp_path, "--workers", "2", "--port", str(port), "--store",
                             postgres_url, "--max-delay", "0.05", name="workers", wait=False)
    try:
        with trio.fail_after(30):
            await listening_twice(workers)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as client:
            for n in range(200):
                answer = await client.post("/sms", json={"phone_number": PHONE, "content": f"{n}"},
                                           headers={"Connection": "close"})  # spread them
                assert answer.status_code == 202
        with trio.fail_after(20):
            await all_counted(url, 200)
        names = {e["config"]["instance_name"] for e in workers.events()
                 if e.get("event") == "starting"}
        assert len(names) == 2 and all(name.endswith(("/1", "/2")) for name in names)
        workers.process.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await workers.exit_code() == 0
        assert workers.error_events() == []
    finally:
        workers.stop()


async def test_workers_stop_when_their_parent_is_killed(tmp_path, postgres_url):
    """SIGKILL leaves the parent no time to forward anything: the kernel's parent-death
    signal stops the workers instead of leaving an orphan set serving the port."""
    workers = ServiceProcess(tmp_path, "--workers", "2", "--port", str(free_port()),
                             "--store", postgres_url, name="workers", wait=False)
    try:
        with trio.fail_after(30):
            await listening_twice(workers)
        pids = workers.event("workers_started")["pids"]
        workers.process.kill()
        workers.process.wait()
        with trio.fail_after(15):
            await all_gone(pids)
        stopped = [e for e in workers.events() if e.get("event") == "stopped"]
        assert sorted(e["instance"][-2:] for e in stopped) == ["/1", "/2"]
    finally:
        workers.stop()
        started = workers.event("workers_started")
        for pid in started["pids"] if started else []:  # not to outlive a failure here
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def all_gone(pids: list[int]) -> None:
    while True:
        if not any(running(pid) for pid in pids):
            return
        await trio.sleep(0.1)


def running(pid: int) -> bool:
    """Alive, and not merely a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def all_counted(url: str, count: int) -> None:
    """Until every scrape, whichever worker takes it, counts ``count`` sent messages."""
    while True:
        seen = set()
        for _ in range(4):
            async with httpx.AsyncClient(base_url=url) as fresh:
                stats = (await fresh.get("/stats")).json()
                metrics = (await fresh.get("/metrics")).text
            seen.add((stats["messages_sent"], stats["messages_accepted"],
                      f"smsproxy_messages_accepted_total {count}.0" in metrics))
        if seen == {(count, count, True)}:
            return
        await trio.sleep(0.2)


async def listening_twice(process: ServiceProcess) -> None:
    while True:
        if len([e for e in process.events() if e.get("event") == "listening"]) >= 2:
            return
        await trio.sleep(0.1)
