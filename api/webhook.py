"""``POST /provider/status``: the provider's delivery reports, signed and validated."""

import structlog
import trio
from pydantic import TypeAdapter
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response

from api.common import (
    ApiSettings,
    Services,
    no_content,
    parse_json_object,
    read_body,
)
from api.errors import error_response
from api.schemas import ErrorBody, StatusReport
from smsproxy.records import WebhookRefused
from smsproxy.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

__all__ = ["fastsmsing_refusal", "refuse", "webhook_routes"]

log = structlog.get_logger("smsproxy.api")

_STATUS_UPDATES = TypeAdapter(dict[str, str])


def webhook_routes(services: Services, settings: ApiSettings) -> Blueprint:
    routes = Blueprint("webhook", __name__)

    @routes.post("/provider/status")
    @document_request(StatusReport)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    @document_response(ErrorBody, 413)
    @document_response(ErrorBody, 503)
    async def provider_status() -> Response:
        """Status updates from the provider; answered 204 once they are committed."""
        body = await read_body(settings.webhook_max_bytes)
        refusal = fastsmsing_refusal(body, services, settings)
        if refusal is not None:
            return refusal
        updates = _STATUS_UPDATES.validate_python(parse_json_object(body), strict=True)
        if updates:
            # 204 only once the reports are committed: the provider does not send
            # them again, so an acknowledged report must survive a crash. A store
            # failure raises StoreError: 503, and the provider retries.
            with trio.move_on_after(services.updater.linger + settings.webhook_wait):
                await services.updater.apply(updates)
                return no_content()
            return error_response(503, "status updates are backing up; retry later",
                                  {"Retry-After": "1"})
        return no_content()

    return routes


def fastsmsing_refusal(body: bytes, services: Services, settings: ApiSettings
                       ) -> Response | None:
    """FastSMSing's signature on a request to us (its status reports and its replies):
    None when it holds, or when no ``--webhook-secret`` is set; else the refusal."""
    if settings.webhook_secret is None:
        return None
    problem = verify(body, settings.webhook_secret, request.headers.get(SIGNATURE_HEADER),
                     request.headers.get(TIMESTAMP_HEADER), now=settings.clock())
    return refuse(services, problem) if problem else None


def refuse(services: Services, problem: str, **fields: str) -> Response:
    """A provider's request that failed its authentication: logged, counted, 401."""
    log.warning("webhook_refused", reason=problem, **fields)
    services.stats.record(WebhookRefused(problem.replace(" ", "_")))
    return error_response(401, problem)
