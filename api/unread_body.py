"""An ASGI wrapper for answers given before the request's body was read.

Such an answer (a 401, 404, 413) says ``connection: close``: the client learns that
the connection ends with it, and does not send its next request into a connection
that will not serve it (see ``api.connections``, which closes it).
"""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "close_when_the_body_is_left_unread"]

ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]],
                    Callable[[MutableMapping[str, Any]], Awaitable[None]]], Awaitable[None]]


def close_when_the_body_is_left_unread(app: ASGIApp) -> ASGIApp:
    """An answer given before the request's body arrived (401, 404, 413) says
    ``connection: close``: the client learns that the connection ends with it, and
    does not send its next request into a connection that will not serve it."""

    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await app(scope, receive, send)
            return
        body_read = False

        async def tracking_receive() -> Any:
            nonlocal body_read
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read = True
            return message

        async def closing_send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start" and not body_read:
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        await app(scope, tracking_receive, closing_send)

    return wrapped


def _has_body(scope: MutableMapping[str, Any]) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False
