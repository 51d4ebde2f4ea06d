"""``create_app(services, settings)`` builds the quart-trio app around the actors' handles.

The routes parse, call a handle, and shape the answer. Tests hand in handles of
actors they started themselves.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

import structlog
import trio
from pydantic import TypeAdapter, ValidationError
from quart import Response, jsonify, request
from quart_trio import QuartTrio
from quart_trio.wrappers import TrioResponse
from werkzeug.exceptions import RequestEntityTooLarge

from actors.batcher import BatcherHandle
from actors.repository import RepositoryHandle
from actors.stats import StatsHandle
from actors.updater import UpdaterHandle
from api.errors import error_response, register_error_handlers
from api.schemas import SmsAccepted, SmsRequest, SmsStatus, describe_validation_error
from smsproxy.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from smsproxy.statuses import Status

__all__ = ["ApiSettings", "Services", "create_app"]

log = structlog.get_logger("smsproxy.api")

_STATUS_UPDATES = TypeAdapter(dict[str, str])


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


def create_app(services: Services, settings: ApiSettings | None = None) -> QuartTrio:
    settings = settings or ApiSettings()
    app = QuartTrio("smsproxy")
    # The hard cap for any body; each route checks its own, lower limit.
    app.config["MAX_CONTENT_LENGTH"] = max(settings.sms_max_bytes, settings.webhook_max_bytes)
    register_error_handlers(app)

    @app.post("/sms")
    async def submit_sms() -> Response:
        try:
            sms = SmsRequest.model_validate_json(await _read_body(settings.sms_max_bytes))
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        message = await services.batcher.submit(sms.phone_number, sms.content)
        accepted = SmsAccepted(id=message.id, status=Status.ACCEPTED)
        return _json(accepted.model_dump(), 202)

    @app.get("/sms/<message_id>")
    async def sms_status(message_id: str) -> Response:
        try:
            canonical = str(uuid.UUID(message_id))
        except ValueError:
            return error_response(400, f"{message_id!r} is not a message id (a UUID)")
        record = await services.repository.get(canonical)
        status = SmsStatus(id=record.id, status=record.status, reason=record.reason)
        return _json(status.model_dump(exclude_none=True), 200)

    @app.post("/provider/status")
    async def provider_status() -> Response:
        body = await _read_body(settings.webhook_max_bytes)
        if settings.webhook_secret is not None:
            problem = verify(
                body,
                settings.webhook_secret,
                request.headers.get(SIGNATURE_HEADER),
                request.headers.get(TIMESTAMP_HEADER),
                now=settings.clock(),
            )
            if problem:
                log.warning("webhook_refused", reason=problem)
                return error_response(401, problem)
        try:
            updates = _STATUS_UPDATES.validate_json(body, strict=True)
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        if updates:
            with trio.move_on_after(settings.webhook_wait):
                await services.updater.submit(updates)
                return _no_content()
            return error_response(503, "status updates are backing up; retry later",
                                  {"Retry-After": "1"})
        return _no_content()

    @app.get("/stats")
    async def stats() -> Response:
        snapshot = await services.stats.snapshot()
        body = asdict(snapshot) | {
            "batches_sent": snapshot.batches_sent,
            "success_percentage": snapshot.success_percentage,
            "queue_depth": services.batcher.queue_depth,
        }
        return _json(body, 200)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"}, 200)

    return app


async def _read_body(limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to be over ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    body = await request.get_data(as_text=False)
    assert isinstance(body, bytes)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def _no_content() -> Response:
    # quart-trio's own response class: quart's default one iterates bodies with asyncio.
    return TrioResponse(b"", status=204)


def _json(body: object, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
