"""Two instances on one PostgreSQL share the routing: when one finds Infobip down, the
other stops sending to it without a failure of its own, the dead provider gets one
probe per interval from the pair (not one from each), and both see it come back."""

from pathlib import Path

import trio

from actors.router import Router
from actors.supervisor import Runtime, running
from api.fake_apis import FakeInfobip, FakeTwilio
from smsproxy.config import Config
from tests.test_routing_e2e import infobip_entry, providers_file, serve, twilio_entry, until


async def test_instances_share_a_provider_s_outage_and_its_probes(
        nursery: trio.Nursery, postgres_url: str, tmp_path: Path) -> None:
    infobip, twilio = FakeInfobip(secret="ib-key"), FakeTwilio(secret="tw-token")
    path = providers_file(tmp_path, [infobip_entry(await serve(nursery, infobip)),
                                     twilio_entry(await serve(nursery, twilio))])

    def config(name: str) -> Config:
        return Config(store=postgres_url, providers=path, instance_name=name, batch_size=1,
                      max_delay=0.01, status_linger=0.0, max_attempts=1, provider_timeout=2.0)

    async with running(config("a")) as a:
        assert isinstance(a.provider, Router)
        routes_a = a.provider.table.routes
        infobip.script.extend([503] * 1000)  # Infobip is down from now on
        for i in range(3):  # a's batches fail over: three refusals take it out
            await a.dispatcher.submit(f"+49151000000{i}", "via a")
            await until(lambda i=i: twilio.counts["messages"] == i + 1)
        assert routes_a["ib"].state == "down"
        async with running(config("b")) as b:  # a second instance joins
            assert isinstance(b.provider, Router)
            routes_b = b.provider.table.routes
            await until(lambda: routes_b["ib"].state == "down", 5)  # told, not hurt
            assert routes_b["ib"].failures == 0
            await both_share_the_probes_and_see_it_back(a, b, infobip, twilio)


async def both_share_the_probes_and_see_it_back(a: Runtime, b: Runtime, infobip: FakeInfobip,
                                                twilio: FakeTwilio) -> None:
    assert isinstance(a.provider, Router) and isinstance(b.provider, Router)
    routes_a, routes_b = a.provider.table.routes, b.provider.table.routes
    before = infobip.counts["requests"]
    sent = 0
    with trio.move_on_after(4.5):  # both keep sending; the probes are shared
        while True:
            for instance in (a, b):
                await instance.dispatcher.submit(f"+4915200000{sent:02d}", "both")
                sent += 1
            await trio.sleep(0.1)
    probes = infobip.counts["requests"] - before
    # one prober: at 1 s and 3 s after the outage (+ up to a sharing round each);
    # one each would be twice that
    assert 1 <= probes <= 3, probes
    infobip.script.clear()  # it comes back
    with trio.fail_after(30):
        while routes_a["ib"].state != "up" or routes_b["ib"].state != "up":
            for instance in (a, b):
                await instance.dispatcher.submit(f"+4915300{sent:05d}", "back")
                sent += 1
            await trio.sleep(0.2)
    assert infobip.counts["duplicates"] == twilio.counts["duplicates"] == 0
