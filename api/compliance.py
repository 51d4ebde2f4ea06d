"""Replies and the suppression list: ``POST /provider/inbound`` (FastSMSing) and
``POST /providers/<name>/inbound`` (each provider's own format, authenticated as its
status reports are), ``GET /inbound``, and ``/suppressions`` for support staff.

A reply is stored (``204`` once committed: the provider does not send it again); one
that is an opt-out keyword puts its sender on the suppression list and fails what
still waits for that number, unsent; an opt-in keyword takes it off.
"""

from collections.abc import Sequence

import structlog
from pydantic import ValidationError
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_request, document_response

from api.common import (
    ApiSettings,
    Services,
    json_response,
    no_content,
    parse_json_object,
    read_body,
)
from api.compliance_schemas import (
    FastSmsInbound,
    InboundPage,
    InboundQueryParams,
    InboundReply,
    SuppressionBody,
    SuppressionEntry,
    SuppressionPage,
    SuppressionQuery,
)
from api.errors import document_errors, error_response
from api.guard import Guard
from api.provider_webhooks import authenticated
from api.schemas import describe_validation_error, timestamp
from api.webhook import fastsmsing_refusal
from smsproxy.compliance import Inbound, InboundQuery, Suppression
from smsproxy.errors import InvalidMessage
from smsproxy.providers.fastsmsing import fastsmsing_reply
from smsproxy.providers.protocol import Reply
from smsproxy.records import InboundReceived
from smsproxy.validation import validate_phone_number

__all__ = ["compliance_routes"]

log = structlog.get_logger("smsproxy.api")


def compliance_routes(services: Services, settings: ApiSettings, guard: Guard) -> Blueprint:
    routes = Blueprint("compliance", __name__)
    compliance = services.repository.compliance

    async def receive(provider: str, replies: Sequence[Reply]) -> Response:
        try:
            received = [_inbound(provider, reply, settings) for reply in replies]
        except InvalidMessage as error:
            return error_response(400, f"a reply's sender ('from') {error.reason}")
        # All of a request's replies in one transaction: a provider that retries a
        # request we could not store finds none of it stored twice.
        outcomes = await compliance.receive(
            received, settings.callback_url if settings.callbacks else None)
        for stored, failed in outcomes:
            keyword = stored.keyword.value if stored.keyword else None
            services.stats.record(InboundReceived(keyword or "none", len(failed)))
            log.info("inbound_received", provider=provider, inbound_id=stored.id,
                     keyword=keyword, waiting_failed=len(failed))
        return no_content()

    @routes.post("/provider/inbound")
    @document_request(FastSmsInbound)
    @document_errors(400, 401, 413, 503)
    async def fastsmsing_inbound() -> Response:
        """A reply to one of the shop's numbers, from FastSMSing (signed as its status
        reports are); 204 once stored."""
        body = await read_body(settings.webhook_max_bytes)
        refusal = fastsmsing_refusal(body, services, settings)
        if refusal is not None:
            return refusal
        try:
            reply = fastsmsing_reply(parse_json_object(body))
        except ValueError as error:
            return error_response(400, str(error))
        return await receive("fastsmsing", [reply])

    @routes.post("/providers/<name>/inbound")
    @document_errors(400, 401, 404, 413, 503)
    async def provider_inbound(name: str) -> Response:
        """Replies from a named provider (``--providers``), in its own format."""
        called = await authenticated(services, settings, name, inbound=True)
        if isinstance(called, Response):
            return called
        webhook, request_as_made = called
        try:
            replies = webhook.replies(request_as_made)
        except ValueError as error:
            return error_response(400, str(error))
        return await receive(name, replies)

    @routes.get("/inbound")
    @document_querystring(InboundQueryParams)
    @document_response(InboundPage, 200)
    @document_errors(400, 401)
    async def list_inbound() -> Response:
        """Replies received, in the order they were stored, a page at a time: pass a
        page's ``next`` as ``cursor`` for the following one."""
        guard.caller()
        try:
            params = InboundQueryParams.model_validate(request.args.to_dict())
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        found = await compliance.inbound(InboundQuery(
            params.cursor, timestamp(params.since) if params.since else None, params.limit))
        page = InboundPage(messages=[InboundReply.of(i) for i in found],
                           next=str(found[-1].position if found else params.cursor))
        return json_response(page.model_dump(mode="json", by_alias=True), 200)

    @routes.get("/suppressions")
    @document_querystring(SuppressionQuery)
    @document_response(SuppressionPage, 200)
    @document_errors(400, 401, 403)
    async def list_suppressions() -> Response:
        """The suppression list, in order of number (support keys only)."""
        guard.support()
        try:
            query = SuppressionQuery.model_validate(request.args.to_dict())
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        found = await compliance.suppressions(query.cursor, query.limit)
        page = SuppressionPage(
            suppressions=[SuppressionEntry.of(s) for s in found],
            next=found[-1].number if len(found) == query.limit else None)
        return json_response(page.model_dump(mode="json"), 200)

    @routes.get("/suppressions/<number>")
    @document_response(SuppressionEntry, 200)
    @document_errors(400, 401, 403, 404)
    async def get_suppression(number: str) -> Response:
        """One number's entry; 404 when it is not on the list."""
        guard.support()
        entry = await compliance.suppression(_number(number, settings))
        if entry is None:
            return error_response(404, "that number is not on the suppression list")
        return json_response(SuppressionEntry.of(entry).model_dump(mode="json"), 200)

    @routes.put("/suppressions/<number>")
    @document_request(SuppressionBody)
    @document_response(SuppressionEntry, 200)
    @document_response(SuppressionEntry, 201)
    @document_errors(400, 401, 403, 413)
    async def put_suppression(number: str) -> Response:
        """Put a number on the list (201), or replace its entry (200); what waits for
        it, unsent, fails (``recipient opted out``)."""
        caller = guard.support()
        body = await read_body(settings.sms_max_bytes)
        reason = SuppressionBody.model_validate(parse_json_object(body) if body else {}).reason
        entry = Suppression(_number(number, settings), reason,
                            f"support:{caller.name or caller.scope}", settings.clock())
        new, failed = await compliance.suppress(entry)
        log.info("suppression_added" if new else "suppression_replaced", source=entry.source,
                 waiting_failed=len(failed))
        return json_response(SuppressionEntry.of(entry).model_dump(mode="json"),
                             201 if new else 200)

    @routes.delete("/suppressions/<number>")
    @document_errors(400, 401, 403, 404)
    async def delete_suppression(number: str) -> Response:
        """Take a number off the list (204); 404 when it was not there."""
        caller = guard.support()
        if not await compliance.unsuppress(_number(number, settings)):
            return error_response(404, "that number is not on the suppression list")
        log.info("suppression_removed", source=f"support:{caller.name or caller.scope}")
        return no_content()

    return routes


def _number(text: str, settings: ApiSettings) -> str:
    """A number in a path, as POST /sms reads one (E.164, formatted, or national)."""
    return validate_phone_number(text, settings.phone_region)


def _inbound(provider: str, reply: Reply, settings: ApiSettings) -> Inbound:
    """A reply with its sender in E.164 (providers write it with or without '+'); the
    shop's number as E.164 when it is one, else as given (a short code, a name)."""
    sender = validate_phone_number(reply.from_number.strip())
    try:
        recipient = validate_phone_number(reply.to_number.strip())
    except InvalidMessage:
        recipient = reply.to_number.strip()
    at = reply.received_at if reply.received_at is not None else settings.clock()
    return Inbound(provider, sender, recipient, reply.content, at)
