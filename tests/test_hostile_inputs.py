"""No request and no stored value ends the service: every awkward input, sent to a real
process on its default store (SQLite), is answered below 500, and the process serves
the next request; a callback URL that cannot be delivered, written straight into the
store, is given up, and the process survives it and a restart."""

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import trio

from smsproxy.models import Message, new_id
from smsproxy.stores import SqliteStore
from tests.processes import ServiceProcess, free_port, until, wait_for_status
from tests.test_callback_delivery import received, start_receiver

pytestmark = pytest.mark.e2e

PHONE = "+4912345678"
HUGE = [str(2**63), str(2**64), "9" * 40, "-1", "1e400", "nan"]
IMPOSSIBLE_TIMES = ["2026-02-30T00:00:00Z", "2026-12-01T24:00:00Z", "2026-12-01T23:59:60Z",
                    "2026-13-01T00:00:00Z", "2026-12-01T00:00:00+25:00", "2026-00-10T00:00:00Z",
                    "2026-12-01T12:60:00Z", "0000-01-01T00:00:00Z"]
UNDELIVERABLE_URLS = ["http://a b.example/", "http://example.com/a b", "http://example.com/\r\n",
                      "http://example.com/\x00", "http://example.com:0/", "http://example.com:65536/",
                      f"http://{'a' * 64}.example/", "http://exa%mple.com/", "http://[zz]/",
                      "http://user:pw@example.com/", "javascript:alert(1)", "http://"]


def hostile_requests() -> list[tuple[str, str, dict | None]]:
    cursor = f"{'9' * 40}~{uuid.uuid4()}"
    gets: list[tuple[str, str, dict | None]] = [
        *(("GET", f"/events?after={n}", None) for n in HUGE),
        *(("GET", f"/events?limit={n}", None) for n in HUGE),
        *(("GET", f"/sms?limit={n}", None) for n in HUGE),
        ("GET", f"/sms?status=ACCEPTED&cursor={cursor}", None),
        ("GET", f"/sms?cursor={'1' * 13}.5~{uuid.uuid4()}", None),
        *(("GET", f"/sms?since={t}", None) for t in IMPOSSIBLE_TIMES),
    ]
    posts = [("POST", "/sms", {"phone_number": PHONE, "content": "x", field: t})
             for t in IMPOSSIBLE_TIMES for field in ("send_at", "valid_until")]
    posts += [("POST", "/sms", {"phone_number": PHONE, "content": "x", "callback_url": url})
              for url in UNDELIVERABLE_URLS]
    posts.append(("POST", "/sms/bulk", {"messages": [
        {"phone_number": PHONE, "content": "x", "send_at": IMPOSSIBLE_TIMES[0]}]}))
    return gets + posts


async def test_every_hostile_request_is_answered_below_500_and_the_next_is_served(tmp_path):
    proxy = await ServiceProcess.launch(tmp_path, "--callback-secret", "s",
                                        "--callback-allow-private")
    try:
        async with proxy.client() as client:
            for method, path, body in hostile_requests():
                answer = await client.request(method, path, json=body)
                assert 400 <= answer.status_code < 500, (method, path, body, answer.text)
                assert "error" in answer.json()
                assert (await client.get("/healthz")).status_code == 200, (method, path, body)
        assert proxy.process.poll() is None
        assert proxy.error_events() == []
    finally:
        proxy.stop()


async def test_times_at_the_calendar_s_edges_are_written_back_in_rfc_3339_form(tmp_path):
    proxy = await ServiceProcess.launch(tmp_path)
    try:
        async with proxy.client() as client:
            for field, sent, shown in [
                ("send_at", "0396-01-06T13:08:46Z", "0396-01-06T13:08:46.000Z"),
                ("send_at", "0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00.000Z"),
                ("valid_until", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.000Z"),
            ]:
                answer = await client.post("/sms", json={"phone_number": PHONE, "content": "x",
                                                         field: sent})
                assert answer.status_code == 202, answer.text
                status = (await client.get(f"/sms/{answer.json()['id']}")).json()
                assert status[field] == shown
            for since in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
                assert (await client.get(f"/sms?since={since}".replace("+", "%2B"))
                        ).status_code == 200
        assert proxy.error_events() == []
    finally:
        proxy.stop()


async def test_a_non_ascii_callback_url_is_delivered_percent_encoded(tmp_path):
    port = free_port()
    receiver = start_receiver(port, tmp_path / "received.jsonl")
    proxy = await ServiceProcess.launch(tmp_path, "--callback-secret", "s",
                                        "--callback-allow-private")
    try:
        async with proxy.client() as client:
            answer = await client.post("/sms", json={
                "phone_number": PHONE, "content": "x",
                "callback_url": f"http://127.0.0.1:{port}/é/ü?name=José"})
            assert answer.status_code == 202, answer.text
            await wait_for_status(client, answer.json()["id"], "DELIVERED")
        with trio.fail_after(20):
            # ACCEPTED, CONFIRMED, DELIVERED
            await until(lambda: len(received(tmp_path / "received.jsonl")) == 3)
        paths = {entry["path"] for entry in received(tmp_path / "received.jsonl")}
        assert paths == {"/%C3%A9/%C3%BC?name=Jos%C3%A9"}
        assert proxy.error_events() == []
    finally:
        proxy.stop()
        receiver.kill()


def write_undeliverable_rows(database: Path, urls: list[str]) -> list[str]:
    """Messages whose callback URLs the door would refuse, as an older version or a
    hand-edited database may hold them."""
    store = SqliteStore(database)
    ids = [new_id() for _ in urls]
    with store.transaction():
        store.insert([Message(i, PHONE, "x", created_at=time.time(), callback_url=url)
                      for i, url in zip(ids, urls, strict=True)])
    store.close()
    return ids


async def test_stored_callback_urls_are_delivered_encoded_or_given_up_across_a_restart(
        tmp_path):
    port = free_port()
    receiver = start_receiver(port, tmp_path / "received.jsonl")
    invalid = [f"http://{'a' * 70}.example/", f"http://127.0.0.1:{port}/\x00",
               f"http://127.0.0.1:{port}/\r\nX-Injected: 1", f"http://127.0.0.1:{port}/a b",
               "http://127.0.0.1:0/", "http:///nohost"]
    database = tmp_path / "smsproxy.db"
    [encoded, *_] = write_undeliverable_rows(
        database, [f"http://127.0.0.1:{port}/é?q=ü", *invalid])
    args = ("--callback-secret", "s", "--callback-allow-private")
    try:
        proxy = await ServiceProcess.launch(tmp_path, *args, name="run0")
        try:
            with trio.fail_after(30):
                await until(lambda: sum(e.get("reason") == "invalid_url"
                                        for e in proxy.events()) == 3 * len(invalid))
                await until(lambda: len(received(tmp_path / "received.jsonl")) == 3)
            assert {e["path"] for e in received(tmp_path / "received.jsonl")} == {
                "/%C3%A9?q=%C3%BC"}
            assert {json.loads(e["body"])["message_id"]
                    for e in received(tmp_path / "received.jsonl")} == {encoded}
            assert proxy.error_events() == []
        finally:
            proxy.stop()  # kill -9
        again = await ServiceProcess.launch(tmp_path, *args, name="run1")
        try:
            async with again.client() as client:
                assert (await client.get("/healthz")).status_code == 200
                await trio.sleep(1)  # a notifier round or more: nothing left to crash on
                assert (await client.get("/healthz")).status_code == 200
            assert again.process.poll() is None
            assert again.error_events() == []
        finally:
            again.stop()
    finally:
        receiver.kill()


def json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def test_the_callback_transport_maps_any_url_to_an_answer_or_unreachable():
    from actors._callback_http import HttpCallbackTransport, Unreachable

    transport = HttpCallbackTransport(timeout=1, allow_private=True)
    try:
        for url in ["http://127.0.0.1:1/é", f"http://{'a' * 70}.example/", "http://h:0/",
                    "http://127.0.0.1:1/\x00", "ftp://h/", "http://", "not a url"]:
            with pytest.raises(Unreachable):
                await transport.post(url, b"{}", {})
    finally:
        await transport.aclose()


_ = httpx  # the client type the processes hand out
