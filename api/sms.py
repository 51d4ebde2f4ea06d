"""``POST /sms`` and ``GET /sms/<id>``: the shop's side of the proxy."""

import uuid

from pydantic import ValidationError
from quart import Blueprint, Response
from quart_schema import document_request, document_response

from api.common import ApiSettings, Services, json_response, read_body
from api.errors import error_response
from api.schemas import ErrorBody, SmsAccepted, SmsRequest, SmsStatus, describe_validation_error
from smsproxy.statuses import Status

__all__ = ["sms_routes"]


def sms_routes(services: Services, settings: ApiSettings) -> Blueprint:
    routes = Blueprint("sms", __name__)

    @routes.post("/sms")
    @document_request(SmsRequest)
    @document_response(SmsAccepted, 202)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 413)
    @document_response(ErrorBody, 503)
    async def submit_sms() -> Response:
        """Accept one message for sending; answers at once, sends in a batch shortly."""
        try:
            sms = SmsRequest.model_validate_json(await read_body(settings.sms_max_bytes))
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        message = await services.batcher.submit(sms.phone_number, sms.content)
        return json_response(SmsAccepted(id=message.id, status=Status.ACCEPTED).model_dump(), 202)

    @routes.get("/sms/<message_id>")
    @document_response(SmsStatus, 200)
    @document_response(ErrorBody, 400)
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
