"""POSTs a callback over HTTP, for the notifier: no redirects, a short timeout, at most
a few KB of the answer read, and the receiver's address checked when connecting.

The check sits in the network backend (httpcore's, the layer under httpx): the host
is resolved there, every address is checked, and the connection goes to the address
that was checked, so a name that resolves elsewhere the second time (DNS rebinding)
reaches nothing private. TLS still verifies the certificate against the host name.
"""

import math
from collections.abc import Iterable
from typing import Protocol

import httpcore
import trio

from smsproxy.callbacks import check_url, refused_address
from smsproxy.errors import InvalidMessage

__all__ = ["Answer", "CallbackTransport", "HttpCallbackTransport", "Unreachable"]

Answer = tuple[int, str | None]
"""(status code, Retry-After header)"""


class Unreachable(Exception):
    """The callback did not get an HTTP answer."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        """timeout, connection, refused_address or invalid_url (a metric label)"""


class CallbackTransport(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """The receiver's answer; :class:`Unreachable` when there is none in time."""
        ...


class _CheckedAddresses(httpcore.AsyncNetworkBackend):
    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.TrioBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 (httpcore's)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        with trio.move_on_after(timeout if timeout is not None else math.inf):
            found = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
            addresses = [str(entry[4][0]) for entry in found]
            if not self._allow_private and (refused := refused_address(addresses)):
                raise Unreachable("refused_address", f"{host} resolves to {refused}")
            return await self._inner.connect_tcp(addresses[0], port, timeout, local_address,
                                                 socket_options)
        raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class HttpCallbackTransport:
    def __init__(self, *, timeout: float, allow_private: bool, max_answer_bytes: int = 4096,
                 max_connections: int = 100) -> None:
        self._timeout = timeout
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_CheckedAddresses(allow_private), max_connections=max_connections,
            keepalive_expiry=30.0)
        self._max_answer_bytes = max_answer_bytes

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """Every way the URL or the connection can fail is :class:`Unreachable`. The URL
        is checked and normalised again, by the door's own rule: a row stored before
        that rule (or by hand) that it refuses is ``invalid_url``, never sent."""
        try:
            target = check_url(url)
        except InvalidMessage as error:
            raise Unreachable("invalid_url", error.reason) from None
        timeout = self._timeout
        extensions = {"timeout": {"connect": timeout, "read": timeout, "write": timeout,
                                  "pool": timeout}}
        try:
            with trio.fail_after(timeout):
                async with self._pool.stream("POST", target, headers=list(headers.items()),
                                             content=body, extensions=extensions) as answer:
                    await self._read_some(answer)
                    retry_after = next((value.decode("latin-1") for name, value
                                        in answer.headers if name.lower() == b"retry-after"),
                                       None)
                    return answer.status, retry_after
        except trio.TooSlowError:
            raise Unreachable("timeout", f"no answer within {timeout} s") from None
        except httpcore.TimeoutException as error:
            raise Unreachable("timeout", str(error) or type(error).__name__) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError,
                OSError) as error:
            raise Unreachable("connection", str(error) or type(error).__name__) from None
        except (httpcore.UnsupportedProtocol, UnicodeError, TypeError, ValueError) as error:
            # UnicodeError: the resolver's IDNA codec refuses the host (a label too long).
            raise Unreachable("invalid_url", str(error) or type(error).__name__) from None

    async def _read_some(self, answer: httpcore.Response) -> None:
        """Read no more than a few KB: the body means nothing to us, and a receiver
        that streams forever must not hold a connection (it is closed instead)."""
        read = 0
        async for chunk in answer.aiter_stream():
            read += len(chunk)
            if read >= self._max_answer_bytes:
                break

    async def aclose(self) -> None:
        await self._pool.aclose()
