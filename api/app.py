"""``create_app(services)`` builds the quart-trio app around the actors' handles.

The routes parse, call a handle, and shape the answer. Tests hand in handles of
actors they started themselves.
"""

import uuid
from dataclasses import asdict, dataclass

from pydantic import ValidationError
from quart import Response, jsonify, request
from quart_trio import QuartTrio

from actors.batcher import BatcherHandle
from actors.repository import RepositoryHandle
from actors.stats import StatsHandle
from api.errors import error_response, register_error_handlers
from api.schemas import SmsAccepted, SmsRequest, SmsStatus, describe_validation_error
from smsproxy.statuses import Status

__all__ = ["MAX_BODY_BYTES", "Services", "create_app"]

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Services:
    repository: RepositoryHandle
    batcher: BatcherHandle
    stats: StatsHandle


def create_app(services: Services, *, max_body_bytes: int = MAX_BODY_BYTES) -> QuartTrio:
    app = QuartTrio("smsproxy")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    register_error_handlers(app)

    @app.post("/sms")
    async def submit_sms() -> Response:
        try:
            sms = SmsRequest.model_validate_json(await request.get_data(as_text=False))
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


def _json(body: object, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
