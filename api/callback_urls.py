"""Which callback URL each submitted message gets, refused with 400 when it may not
have it: callbacks are off, or the host resolves to an address the proxy must not
reach (checked again when connecting, see ``actors/_callback_http.py``)."""

import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

import trio

from api.common import ApiSettings
from smsproxy.callbacks import refused_address
from smsproxy.errors import InvalidMessage

__all__ = ["RESOLVE_TIMEOUT", "callback_urls"]

RESOLVE_TIMEOUT = 2.0
"""Seconds a POST waits for a callback URL's host to resolve."""


async def callback_urls(requested: Sequence[str | None], settings: ApiSettings) -> list[str | None]:
    """Each message's URL: its own, else the default (--callback-url), else none."""
    if not settings.callbacks:
        if any(requested):
            raise InvalidMessage("callback_url", "status callbacks are off on this server "
                                                 "(it has no --callback-secret)")
        return [None] * len(requested)
    if not settings.callback_allow_private:
        for url in dict.fromkeys(url for url in requested if url):
            await _check_public(url)
    return [url or settings.callback_url for url in requested]


async def _check_public(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    with trio.move_on_after(RESOLVE_TIMEOUT):
        try:
            found = await trio.socket.getaddrinfo(host, parts.port or 0,
                                                  type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise InvalidMessage("callback_url", f"{host} does not resolve ({error})") from None
        refused = refused_address(str(entry[4][0]) for entry in found)
        if refused:
            raise InvalidMessage("callback_url", f"{host} resolves to {refused}, a loopback, "
                                                 f"private or link-local address")
        return
    raise InvalidMessage("callback_url", f"{host} did not resolve within {RESOLVE_TIMEOUT:g} s")
