"""``/readyz`` checks every lane a request can wait on: an instance whose saves hang
is taken out of the balancer, though its other requests are still answered."""

import time

import httpx
import psycopg
import pytest
import trio

from api.ops import READY_CHECK_SECONDS
from tests.processes import ServiceProcess

pytestmark = pytest.mark.e2e

STALL = 8.0
"""Seconds each insert sleeps in the trigger."""


async def test_an_instance_whose_saves_hang_is_not_ready(tmp_path, postgres_url):
    proxy = await ServiceProcess.launch(tmp_path, "--store", postgres_url)
    try:
        async with proxy.client() as client:
            assert (await client.get("/readyz")).status_code == 200
            with psycopg.connect(postgres_url, autocommit=True) as db:
                db.execute(f"CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS "
                           f"$$ BEGIN PERFORM pg_sleep({STALL}); RETURN NEW; END $$")
                db.execute("CREATE TRIGGER stall BEFORE INSERT ON smsproxy_messages "
                           "FOR EACH ROW EXECUTE FUNCTION stall()")

            async def post_and_wait() -> None:
                async with httpx.AsyncClient(base_url=proxy.url, timeout=STALL * 4) as poster:
                    await poster.post("/sms", json={"phone_number": "+4912345678",
                                                    "content": "held"})

            async with trio.open_nursery() as nursery:
                nursery.start_soon(post_and_wait)
                await trio.sleep(0.3)  # the save is in the trigger now
                started = time.monotonic()
                ready = await client.get("/readyz")
                waited = time.monotonic() - started
                assert ready.status_code == 503, ready.text
                checks = ready.json()["checks"]
                assert checks["store"] == "ok"  # the other lane still answers
                assert "no answer" in checks["store_saves"]
                assert waited <= READY_CHECK_SECONDS * 2 + 1.0
                assert (await client.get("/sms/00000000-0000-0000-0000-000000000000")
                        ).status_code == 200
                with psycopg.connect(postgres_url, autocommit=True) as db:
                    db.execute("DROP TRIGGER stall ON smsproxy_messages")
            assert (await client.get("/readyz")).status_code == 200
        assert proxy.process.poll() is None
    finally:
        proxy.stop()
