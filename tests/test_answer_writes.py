"""An answer leaves in one write: its head goes out with its first body bytes.

hypercorn hands the connection an answer's head, each body chunk and the end of the
message separately; smsproxy's connection writes the head with the first chunk, and
never holds back a chunk of a streamed answer.
"""

from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from typing import Any

import pytest
import trio
from hypercorn.events import Event, RawData
from hypercorn.trio.tcp_server import TCPServer

from api.connections import ConnectionLimits
from api.http_server import serve_http
from api.serving import hypercorn_config

LIMITS = ConnectionLimits(max_connections=10, keep_alive_timeout=5, header_timeout=5,
                          body_timeout=5)
Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[Any]]

second_chunk_may_go = trio.Event()  # trio's Event belongs to no run: one for this module


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body", False):
        pass
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first|", "more_body": True})
        await second_chunk_may_go.wait()
        await send({"type": "http.response.body", "body": b"second"})
    elif scope["path"] == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.start", "status": 202,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", b"16")]})
        await send({"type": "http.response.body", "body": b'{"status": "ok"}'})


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write the server's connections make to their sockets."""
    seen: list[bytes] = []
    original = TCPServer.protocol_send

    async def recording(self: TCPServer, event: Event) -> None:
        if isinstance(event, RawData):
            seen.append(event.data)
        await original(self, event)

    monkeypatch.setattr(TCPServer, "protocol_send", recording)
    return seen


async def serving(nursery: trio.Nursery) -> trio.SocketStream:
    stop = trio.Event()
    config = hypercorn_config("127.0.0.1", 0, 1.0, LIMITS.keep_alive_timeout, False)
    [url] = await nursery.start(partial(serve_http, app, config, LIMITS,
                                        shutdown_trigger=stop.wait))
    nursery.cancel_scope.deadline = trio.current_time() + 10
    port = int(url.rsplit(":", 1)[1])
    return await trio.open_tcp_stream("127.0.0.1", port)


async def read_until(stream: trio.SocketStream, end: bytes) -> bytes:
    received = b""
    while not received.endswith(end):
        chunk = await stream.receive_some()
        assert chunk, f"connection closed after {received!r}"
        received += chunk
    return received


def request(path: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nhost: test\r\ncontent-length: 2\r\n\r\n{{}}".encode()


async def test_each_answer_is_one_write_of_head_and_body(nursery, writes):
    client = await serving(nursery)
    for _ in range(3):  # keep-alive: the same connection, answer after answer
        await client.send_all(request("/sms"))
        answer = await read_until(client, b'{"status": "ok"}')
        assert answer.startswith(b"HTTP/1.1 202 ")
    assert len(writes) == 3
    assert all(w.startswith(b"HTTP/1.1 202 ") and w.endswith(b'{"status": "ok"}')
               for w in writes)
    await client.aclose()


async def test_an_answer_without_a_body_is_written_at_its_end(nursery, writes):
    client = await serving(nursery)
    await client.send_all(request("/empty"))
    assert (await read_until(client, b"\r\n\r\n")).startswith(b"HTTP/1.1 204 ")
    assert len(writes) == 1
    await client.aclose()


async def test_a_streamed_answer_sends_each_chunk_when_it_comes(nursery, writes):
    client = await serving(nursery)
    await client.send_all(request("/stream"))
    first = await read_until(client, b"first|\r\n")  # chunked: before the app goes on
    assert first.startswith(b"HTTP/1.1 200 ")
    second_chunk_may_go.set()
    await read_until(client, b"0\r\n\r\n")
    assert len(writes) == 3  # the head with the first chunk, the second, the end
    await client.aclose()
