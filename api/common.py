"""What every route module shares: the handles, the settings, body and answer helpers."""

import time
from collections.abc import Callable
from dataclasses import dataclass

from quart import Response, jsonify, request
from quart_trio.wrappers import TrioResponse
from werkzeug.exceptions import RequestEntityTooLarge

from actors.batcher import BatcherHandle
from actors.repository import RepositoryHandle
from actors.stats import StatsHandle
from actors.updater import UpdaterHandle

__all__ = ["ApiSettings", "Services", "json_response", "no_content", "read_body"]


@dataclass(frozen=True, slots=True)
class Services:
    repository: RepositoryHandle
    batcher: BatcherHandle
    stats: StatsHandle
    updater: UpdaterHandle


@dataclass(frozen=True, slots=True)
class ApiSettings:
    webhook_secret: str | None = None
    sms_max_bytes: int = 64 * 1024
    webhook_max_bytes: int = 1024 * 1024
    webhook_wait: float = 2.0
    """Longest a status webhook waits for room at the updater before answering 503."""
    clock: Callable[[], float] = time.time


async def read_body(limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to be over ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    body = await request.get_data(as_text=False)
    assert isinstance(body, bytes)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def json_response(body: object, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def no_content() -> Response:
    # quart-trio's own response class: quart's default one iterates bodies with asyncio.
    return TrioResponse(b"", status=204)
