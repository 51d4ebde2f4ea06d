"""Two providers of different price, a mixed load, one outage (issue 29).

In one process: an Infobip fake (0.01 a request) and a Sinch fake (0.03 a request)
over HTTP, and the service routing between them from a providers file (memory
store). The load mixes one-off texts and a campaign (one text to many numbers).
Printed: requests and spend against the ideal (every batch through the cheaper
provider while it is up: the requests it would have needed at its price), and the
time from the cheaper provider's failure (its server stopped mid-load) to the first
batch the other one takes.

    .venv/bin/python bench/providers.py [--messages 4000]
"""

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from actors.router import Router
from actors.supervisor import running
from api.fake_apis import FakeApi, FakeInfobip, FakeSinch
from api.serving import serve_app
from smsproxy.config import Config

PRICES = {"cheap": 0.01, "dear": 0.03}


async def serve(nursery: trio.Nursery, fake: FakeApi, stop: trio.Event) -> str:
    [url] = await nursery.start(lambda task_status: serve_app(
        fake.create_app(), "127.0.0.1", 0, grace=0.1, stop=stop, handle_signals=False,
        task_status=task_status))
    return str(url)


def providers_file(folder: Path, cheap_url: str, dear_url: str) -> str:
    path = folder / "providers.toml"
    entries = [
        {"name": "cheap", "api": "infobip", "url": cheap_url, "api_key": "k", "price": 0.01,
         "webhook_user": "u", "webhook_password": "p"},
        {"name": "dear", "api": "sinch", "url": dear_url, "service_plan_id": "plan",
         "api_token": "t", "sender": "Shop", "price": 0.03, "webhook_user": "u",
         "webhook_password": "p"},
    ]
    path.write_text("\n".join("[[providers]]\n" + "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in e.items()) for e in entries) + "\n")
    return str(path)


async def submit(runtime: object, count: int, offset: int) -> None:
    dispatcher = runtime.dispatcher  # type: ignore[attr-defined]
    for i in range(count):
        text = "Summer sale!" if i % 2 else f"Your order {offset + i} has shipped"
        await dispatcher.submit(f"+49151{(offset + i) % 1_000_000:07d}", text)


async def until(condition: Callable[[], bool], limit: float, every: float = 0.01) -> None:
    with trio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - polling counters another task updates
            await trio.sleep(every)


async def main(messages: int) -> None:
    cheap, dear = FakeInfobip(secret="k"), FakeSinch(secret="t")
    cheap_stop = trio.Event()
    async with trio.open_nursery() as nursery:
        cheap_url = await serve(nursery, cheap, cheap_stop)
        dear_url = await serve(nursery, dear, trio.Event())
        with tempfile.TemporaryDirectory() as folder:
            config = Config(store="memory://", providers=providers_file(Path(folder), cheap_url,
                                                                        dear_url),
                            batch_size=100, max_delay=0.05, status_linger=0.0,
                            provider_timeout=2.0, max_queue=10 * messages)
            async with running(config) as runtime:
                assert isinstance(runtime.provider, Router)
                routes = runtime.provider.table.routes
                await submit(runtime, messages, 0)
                await until(lambda: routes["cheap"].messages >= messages, 120)
                ideal = routes["cheap"].requests * PRICES["cheap"]
                spend = routes["cheap"].spend + routes["dear"].spend
                print(f"up: {messages} messages, requests cheap {routes['cheap'].requests}, "
                      f"dear {routes['dear'].requests}; spend {spend:.2f} against the ideal "
                      f"{ideal:.2f}: {spend / ideal:.3f}x (target <= 1.05x)")

                cheap_stop.set()  # the cheaper provider dies
                await trio.sleep(0.5)
                failed_at = time.monotonic()
                before = dear.counts["requests"]
                nursery.start_soon(submit, runtime, messages, messages)
                await until(lambda: dear.counts["requests"] != before, 60, every=0.001)
                taken_after = time.monotonic() - failed_at
                await until(lambda: routes["dear"].messages >= messages, 120)
                print(f"outage: the first batch after the failure reached the other provider "
                      f"{taken_after * 1000:.0f} ms after the first message of the next load "
                      f"was submitted (target <= 2 s); cheap is {routes['cheap'].state}; "
                      f"dear took {routes['dear'].messages} messages in "
                      f"{routes['dear'].requests} requests (campaigns share one)")
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    trio.run(main, parser.parse_args().messages)
