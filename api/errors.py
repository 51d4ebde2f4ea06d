"""Every failure becomes ``{"error": "..."}`` with its status code; never a stack trace."""

import math
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError
from quart import Quart, Response
from quart_schema import document_response
from werkzeug.exceptions import HTTPException

from actors.errors import ActorError, ActorFailed
from api.common import MalformedJson, json_response
from api.schemas import ErrorBody, describe_validation_error
from smsproxy.errors import (
    IdempotencyConflict,
    InvalidMessage,
    LargerThanQueue,
    QueueFull,
    QuotaExceeded,
    RecipientOptedOut,
    ShuttingDown,
    StoreError,
)

__all__ = ["document_errors", "error_response", "register_error_handlers"]

T = TypeVar("T", bound=Callable[..., Any])


def document_errors(*statuses: int) -> Callable[[T], T]:
    """The error answers a route documents in the OpenAPI document (each the one
    error body)."""
    def document(route: T) -> T:
        for status in statuses:
            route = document_response(ErrorBody, status)(route)
        return route
    return document

log = structlog.get_logger("smsproxy.api")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = json_response({"error": message}, status)
    response.headers.update(headers or {})
    return response


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        # Keep the headers that matter to clients, such as Allow on a 405.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return error_response(error.code or 500, error.description or error.name, headers)

    @app.errorhandler(MalformedJson)
    async def malformed_json(error: MalformedJson) -> Response:
        return error_response(400, str(error))

    @app.errorhandler(ValidationError)
    async def invalid_body(error: ValidationError) -> Response:
        return error_response(400, describe_validation_error(error))

    @app.errorhandler(InvalidMessage)
    async def invalid_message(error: InvalidMessage) -> Response:
        return error_response(400, str(error))

    @app.errorhandler(IdempotencyConflict)
    async def idempotency_conflict(error: IdempotencyConflict) -> Response:
        return error_response(422, "this Idempotency-Key was used for a different request")

    @app.errorhandler(RecipientOptedOut)
    async def opted_out(error: RecipientOptedOut) -> Response:
        numbers = ", ".join(error.numbers)
        body = {"error": f"the recipient opted out (replied STOP): {numbers}; nothing was "
                         "accepted, nothing sent",
                "opted_out": [{"index": i} for i in error.indexes]}
        return json_response(body, 422)

    @app.errorhandler(QuotaExceeded)
    async def quota_exceeded(error: QuotaExceeded) -> Response:
        seconds = str(max(1, math.ceil(error.retry_after)))
        return error_response(429, f"Exceeded send limits ({error.limit}) for today (UTC): "
                                   f"{error.used} sent; the limit resets at midnight UTC",
                              {"Retry-After": seconds})

    @app.errorhandler(QueueFull)
    async def queue_full(error: QueueFull) -> Response:
        return error_response(503, str(error), {"Retry-After": str(error.retry_after)})

    @app.errorhandler(LargerThanQueue)
    async def larger_than_queue(error: LargerThanQueue) -> Response:
        return error_response(413, str(error))

    @app.errorhandler(ShuttingDown)
    async def shutting_down(error: ShuttingDown) -> Response:
        return error_response(503, str(error), {"Retry-After": "5"})

    @app.errorhandler(ActorFailed)
    async def actor_failed(error: ActorFailed) -> Response:
        # Logged once, with its traceback, by the actor whose work raised it.
        return error_response(500, "internal error")

    @app.errorhandler(ActorError)
    async def actor_error(error: ActorError) -> Response:
        log.error("actor_unavailable", actor=error.actor, error=str(error))
        return error_response(503, "temporarily unavailable, retry later", {"Retry-After": "1"})

    @app.errorhandler(StoreError)
    async def store_error(error: StoreError) -> Response:
        # Already logged by the repository actor; nothing of the request was stored.
        return error_response(503, "storage unavailable, retry later", {"Retry-After": "1"})

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled_error")
        return error_response(500, "internal error")
