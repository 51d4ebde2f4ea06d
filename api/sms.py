"""``POST /sms``, ``GET /sms/<id>``, its history and the event feed: the shop's side."""

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_request, document_response
from werkzeug.routing import BaseConverter

from api.callback_urls import callback_urls
from api.common import (
    ApiSettings,
    Services,
    json_response,
    parse_json_object,
    read_body,
)
from api.errors import document_errors, error_response
from api.guard import Caller, Guard, idempotency_from_request
from api.listing_schemas import (
    EventPage,
    FeedQuery,
    MessageEvent,
    MessageHistory,
    MessagePage,
    MessageQueryParams,
    parse_message_id,
)
from api.schemas import (
    BulkAccepted,
    BulkErrorBody,
    BulkRequest,
    ErrorBody,
    SmsAccepted,
    SmsRequest,
    SmsStatus,
    describe_validation_error,
    timestamp,
)
from smsproxy.callbacks import rfc3339
from smsproxy.compliance import Quota
from smsproxy.errors import InvalidMessage
from smsproxy.models import Outgoing, Saved
from smsproxy.records import BulkReceived, KeyAccepted
from smsproxy.segments import count_segments

__all__ = ["MessageIdConverter", "sms_routes"]

T = TypeVar("T", bound=Callable[..., Any])


class MessageIdConverter(BaseConverter):
    """One path segment, but not ``bulk``: that is a route of its own, which answers
    POST only (so GET /sms/bulk is a 405 that names POST). Any other malformed id
    still reaches its route, which answers 400 naming it."""

    regex = r"(?!bulk$)[^/]+"


def sms_routes(services: Services, settings: ApiSettings, guard: Guard) -> Blueprint:
    """The message routes; their app must know ``MessageIdConverter`` as ``message_id``."""
    routes = Blueprint("sms", __name__)

    @routes.post("/sms")
    @document_request(SmsRequest)
    @document_response(SmsAccepted, 202)
    @document_response(ErrorBody, 400)
    @_submission_errors
    async def submit_sms() -> Response:
        """Accept one message for sending; answers at once, sends in a batch shortly."""
        caller = guard.caller()
        body = await read_body(settings.sms_max_bytes)
        sms = SmsRequest.model_validate(parse_json_object(body), context=settings.numbering)
        idempotency = idempotency_from_request(caller.scope, lambda: _fingerprinted(sms))
        [callback_url] = await callback_urls([sms.callback_url], settings)
        guard.admit(caller.scope, 1)
        saved = await services.dispatcher.submit_many(
            [_outgoing(sms, callback_url, settings, caller)], idempotency,
            _quota(caller, settings))
        [message_id] = saved.message_ids
        segments = count_segments(sms.content).count
        _bill(services, caller, saved, segments)
        return _accepted({"id": message_id, "status": "ACCEPTED", "segments": segments,
                          "phone_number": sms.phone_number}, saved)

    @routes.post("/sms/bulk")
    @document_request(BulkRequest)
    @document_response(BulkAccepted, 202)
    @document_response(BulkErrorBody, 400)
    @_submission_errors
    async def submit_bulk() -> Response:
        """Accept up to --bulk-max messages at once, all or none, in request order."""
        caller = guard.caller()
        data = parse_json_object(await read_body(settings.bulk_max_bytes))
        items = data.get("messages")
        if isinstance(items, list) and len(items) > settings.bulk_max:
            return error_response(413, f"{len(items)} messages in one request; "
                                       f"at most {settings.bulk_max}")
        try:
            bulk = BulkRequest.model_validate(data, context=settings.numbering)
        except ValidationError as error:
            return _invalid_items(error)
        urls = await callback_urls([sms.callback_url for sms in bulk.messages], settings)
        outgoing = [_outgoing(sms, url, settings, caller)
                    for sms, url in zip(bulk.messages, urls, strict=True)]
        idempotency = idempotency_from_request(
            caller.scope, lambda: ("\x00".join(_fingerprinted(sms)) for sms in bulk.messages))
        guard.admit(caller.scope, len(outgoing))
        saved = await services.dispatcher.submit_many(outgoing, idempotency,
                                                      _quota(caller, settings))
        services.stats.record(BulkReceived(len(outgoing)))
        segments = [count_segments(sms.content).count for sms in bulk.messages]
        _bill(services, caller, saved, sum(segments))
        accepted = [
            {"id": message_id, "status": "ACCEPTED", "segments": count,
             "phone_number": sms.phone_number}
            for message_id, sms, count in zip(saved.message_ids, bulk.messages, segments,
                                              strict=True)
        ]
        return _accepted({"messages": accepted}, saved)

    @routes.get("/sms/<message_id:message_id>")
    @document_response(SmsStatus, 200)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    async def sms_status(message_id: str) -> Response:
        """The message's status; NOT_FOUND for an id never accepted."""
        caller = guard.caller()  # a 401 without a valid key, when keys are set
        canonical = parse_message_id(message_id)
        if canonical is None:
            return error_response(400, f"{message_id!r} is not a message id (a UUID)")
        record = await services.repository.get(canonical, caller.viewer)
        status = SmsStatus(
            id=record.id, status=record.status, phone_number=record.phone_number,
            reason=record.reason,
            deliver_by=rfc3339(record.deliver_by) if record.deliver_by else None,
            valid_until=rfc3339(record.valid_until) if record.valid_until else None,
            send_at=rfc3339(record.send_at) if record.send_at else None,
            sender=record.sender, provider=record.provider)
        return json_response(status.model_dump(exclude_none=True), 200)

    @routes.get("/sms")
    @document_querystring(MessageQueryParams)
    @document_response(MessagePage, 200)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    async def find_sms() -> Response:
        """Messages for support staff, newest first, by status and time, a page at a
        time: pass a page's ``next`` as ``cursor`` for the following one."""
        caller = guard.caller()
        try:
            params = MessageQueryParams.model_validate(request.args.to_dict())
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        found = await services.repository.find(params.query(caller.viewer))
        page = MessagePage.of(found, params.limit)
        return json_response(page.model_dump(mode="json"), 200)

    @routes.get("/sms/<message_id:message_id>/events")
    @document_response(MessageHistory, 200)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    async def sms_events(message_id: str) -> Response:
        """The message's status history, oldest first (empty for an id never accepted)."""
        caller = guard.caller()
        canonical = parse_message_id(message_id)
        if canonical is None:
            return error_response(400, f"{message_id!r} is not a message id (a UUID)")
        events = await services.repository.history(canonical, caller.viewer)
        history = MessageHistory(events=[MessageEvent.of(event) for event in events])
        return json_response(history.model_dump(mode="json"), 200)

    @routes.get("/events")
    @document_querystring(FeedQuery)
    @document_response(EventPage, 200)
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    async def event_feed() -> Response:
        """Every message's events in the order they were committed, page by page, for
        consumers that pull: pass each page's ``next`` as ``after`` to catch up."""
        caller = guard.caller()
        try:
            query = FeedQuery.model_validate(request.args.to_dict())
        except ValidationError as error:
            return error_response(400, describe_validation_error(error))
        events = await services.repository.feed(query.after, query.limit, caller.viewer)
        cursor = events[-1].position if events else query.after
        page = EventPage(events=[MessageEvent.of(event) for event in events], next=str(cursor))
        return json_response(page.model_dump(mode="json"), 200)

    return routes


_submission_errors = document_errors(401, 413, 422, 429, 503)
"""The error answers both submit routes share, for the OpenAPI document."""


MAX_SCHEDULE_AHEAD = 35 * 86_400.0
"""Seconds: how far ahead a message may be scheduled."""


def _fingerprinted(sms: SmsRequest) -> tuple[str, ...]:
    """What makes two requests under one Idempotency-Key the same request."""
    parts: tuple[str, ...] = (sms.phone_number, sms.content)
    if sms.callback_url:
        parts += (sms.callback_url,)
    if sms.deliver_within is not None or sms.delivery_class is not None:
        parts += (f"deadline:{sms.deliver_within}:{sms.delivery_class}",)
    if sms.valid_for is not None or sms.valid_until is not None or sms.send_at is not None:
        parts += (f"timing:{sms.valid_for}:{sms.valid_until}:{sms.send_at}",)
    if sms.sender is not None:
        parts += (f"sender:{sms.sender}",)
    return parts


def _outgoing(sms: SmsRequest, callback_url: str | None, settings: ApiSettings,
              caller: Caller) -> Outgoing:
    send_at = _send_at(sms, settings)
    return Outgoing(sms.phone_number, sms.content, callback_url,
                    _deliver_within(sms, settings), sms.delivery_class,
                    _valid_until(sms, send_at, settings), send_at, sms.sender, caller.name)


def _quota(caller: Caller, settings: ApiSettings) -> Quota | None:
    return settings.quotas.get(caller.name) if caller.name is not None else None


def _bill(services: Services, caller: Caller, saved: Saved, segments: int) -> None:
    """Count what a key sent, for its bill (a replay sent nothing new)."""
    if caller.name is not None and not saved.replayed:
        services.stats.record(KeyAccepted(caller.name, len(saved.message_ids), segments))


def _send_at(sms: SmsRequest, settings: ApiSettings) -> float | None:
    if sms.send_at is None:
        return None
    at = timestamp(sms.send_at)
    if at > settings.clock() + MAX_SCHEDULE_AHEAD:
        raise InvalidMessage("send_at", "is more than 35 days ahead")
    return at


def _valid_until(sms: SmsRequest, send_at: float | None, settings: ApiSettings
                 ) -> float | None:
    """Its validity, counted from its send_at when it has one."""
    if sms.valid_for is not None:
        return max(send_at or 0.0, settings.clock()) + sms.valid_for
    if sms.valid_until is None:
        return None
    until = timestamp(sms.valid_until)
    if until <= max(send_at or 0.0, settings.clock()):
        raise InvalidMessage("valid_until", "is in the past, or before send_at")
    return until


def _deliver_within(sms: SmsRequest, settings: ApiSettings) -> float | None:
    """Seconds within which the message must leave: its class's, its own, or None for
    the server's --max-delay."""
    if sms.delivery_class is not None:
        within = settings.classes.get(sms.delivery_class)
        if within is None:
            known = ", ".join(sorted(settings.classes)) or "none"
            raise InvalidMessage("class", f"{sms.delivery_class!r} is not a delivery class "
                                          f"of this server (it has: {known})")
        return within
    if sms.deliver_within is not None and sms.deliver_within > settings.message_ttl:
        raise InvalidMessage("deliver_within", f"must be at most the server's --message-ttl "
                                               f"({settings.message_ttl:g} s)")
    return sms.deliver_within


def _accepted(body: object, saved: Saved) -> Response:
    response = json_response(body, 202)
    if saved.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _invalid_items(error: ValidationError) -> Response:
    """400 naming each invalid item by its index; errors outside the items stand alone."""
    by_index: dict[int, list[str]] = {}
    general: list[str] = []
    for item in error.errors(include_url=False):
        location = item["loc"]
        message = str(item["msg"]).removeprefix("Value error, ")
        if len(location) >= 2 and location[0] == "messages" and isinstance(location[1], int):
            field = ".".join(str(part) for part in location[2:])
            by_index.setdefault(location[1], []).append(f"{field}: {message}" if field else message)
        else:
            general.append(f"{'.'.join(str(p) for p in location)}: {message}")
    if general or not by_index:
        return error_response(400, "; ".join(general) or describe_validation_error(error))
    invalid = [{"index": i, "error": "; ".join(reasons)} for i, reasons in sorted(by_index.items())]
    body = {"error": f"{len(invalid)} invalid message(s); nothing was accepted",
            "invalid": invalid}
    return json_response(body, 400)
