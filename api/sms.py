"""``POST /sms`` and ``GET /sms/<id>``: the shop's side of the proxy."""

import uuid

from pydantic import ValidationError
from quart import Blueprint, Response, g
from quart_schema import document_request, document_response

from api.common import (
    ApiSettings,
    MalformedJson,
    Services,
    json_response,
    parse_json_object,
    read_body,
)
from api.errors import error_response
from api.guard import Guard, idempotency_from_request
from api.schemas import ErrorBody, SmsAccepted, SmsRequest, SmsStatus, describe_validation_error
from smsproxy.statuses import Status

__all__ = ["sms_routes"]


def sms_routes(services: Services, settings: ApiSettings, guard: Guard) -> Blueprint:
    routes = Blueprint("sms", __name__)

    @routes.before_request
    async def authenticate() -> None:
        g.client = guard.client()

    @routes.post("/sms")
    @document_request(SmsRequest)
    @document_response(SmsAccepted, 202)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    @document_response(ErrorBody, 413)
    @document_response(ErrorBody, 422)
    @document_response(ErrorBody, 429)
    @document_response(ErrorBody, 503)
    async def submit_sms() -> Response:
        """Accept one message for sending; answers at once, sends in a batch shortly."""
        body = await read_body(settings.sms_max_bytes)
        try:
            sms = SmsRequest.model_validate(parse_json_object(body))
        except MalformedJson as error:
            return error_response(400, str(error))
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        idempotency = idempotency_from_request(g.client, (sms.phone_number, sms.content))
        guard.admit(g.client, 1)
        saved = await services.batcher.submit(sms.phone_number, sms.content, idempotency)
        [message_id] = saved.message_ids
        accepted = SmsAccepted(id=message_id, status=Status.ACCEPTED, segments=sms.segments)
        response = json_response(accepted.model_dump(), 202)
        if saved.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    @routes.get("/sms/<message_id>")
    @document_response(SmsStatus, 200)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    async def sms_status(message_id: str) -> Response:
        """The message's status; NOT_FOUND for an id never accepted."""
        try:
            canonical = str(uuid.UUID(message_id))
        except ValueError:
            return error_response(400, f"{message_id!r} is not a message id (a UUID)")
        record = await services.repository.get(canonical)
        status = SmsStatus(id=record.id, status=record.status, reason=record.reason)
        return json_response(status.model_dump(exclude_none=True), 200)

    return routes
