"""``POST /providers/<name>/status``: each provider's delivery reports, in its own
format and checked as it authenticates them (:class:`smsproxy.providers.Webhook`).

A report is accepted only from the provider that took the message; a report
naming the provider's own id (Sinch's batch and recipient) is resolved to ours
first. One that names an id unknown while a request to that provider is under way
is answered ``503`` (its answer, with the ids, may not have reached us yet). What
cannot be applied is counted as a rejected update, as on ``/provider/status``; the
answer is ``204`` once the rest is committed.
"""

from urllib.parse import parse_qsl

import structlog
import trio
from quart import Blueprint, Response, request
from quart_schema import document_response

from api.common import ApiSettings, Services, no_content, read_body
from api.errors import error_response
from api.schemas import ErrorBody
from api.webhook import refuse
from smsproxy.providers.protocol import Webhook, WebhookRequest
from smsproxy.records import UpdateRejected

__all__ = ["as_called", "authenticated", "provider_webhook_routes"]

log = structlog.get_logger("smsproxy.api")

FORM = "application/x-www-form-urlencoded"


def provider_webhook_routes(services: Services, settings: ApiSettings) -> Blueprint:
    routes = Blueprint("provider_webhooks", __name__)

    @routes.post("/providers/<name>/status")
    @document_response(ErrorBody, 400)
    @document_response(ErrorBody, 401)
    @document_response(ErrorBody, 404)
    @document_response(ErrorBody, 413)
    @document_response(ErrorBody, 503)
    async def provider_reports(name: str) -> Response:
        """A named provider's delivery reports (``--providers``), in its own format."""
        called = await authenticated(services, settings, name)
        if isinstance(called, Response):
            return called
        webhook, report = called
        router = services.router
        assert router is not None  # authenticated() found the provider in it
        try:
            reports = webhook.reports(report)
        except ValueError as error:
            return error_response(400, str(error))
        # A ref this process sent is known before its row is written; others (sent
        # before a restart, or by another instance) are read from the store.
        keys = {item.key: router.resolve(name, item.key) if item.by_ref else item.key
                for item in reports}
        racing = router.sending[name] > 0  # before the store is asked: it may answer late
        attributed = await services.repository.attribute(
            name, [i for i in keys.values() if i], [k for k, i in keys.items() if not i])
        if attributed.unknown and (racing or router.sending[name]):
            # A provider may report before its answer to the request reached us: the
            # refs are not known yet. Its retry finds them.
            return error_response(503, "the report names messages still being sent; retry",
                                  {"Retry-After": "1"})
        refused = {**dict.fromkeys(attributed.unknown, "names no message this provider took"),
                   **dict.fromkeys(attributed.foreign, "names a message another provider took")}
        updates: dict[str, str] = {}
        for item in reports:
            key = keys[item.key] or item.key  # as attribute() was asked
            message_id = attributed.accepted.get(key)
            if message_id is None:
                why = refused.get(key, "names no message")
                services.stats.record(UpdateRejected(item.key, item.provider_status, why,
                                                     "unknown_message"))
                log.warning("provider_report_refused", provider=name, key=item.key, reason=why)
                continue
            # An unknown status goes on under its own name, so the updater refuses and
            # counts it as it does any status it cannot map.
            updates[message_id] = (item.status.value if item.status is not None
                                   else f"{name}:{item.provider_status}")
        router.delivered(name, [i for i, status in updates.items() if status == "DELIVERED"])
        if updates:
            with trio.move_on_after(services.updater.linger + settings.webhook_wait):
                await services.updater.apply(updates)
                return no_content()
            return error_response(503, "status updates are backing up; retry later",
                                  {"Retry-After": "1"})
        return no_content()

    return routes


async def authenticated(services: Services, settings: ApiSettings, name: str,
                        inbound: bool = False) -> tuple[Webhook, WebhookRequest] | Response:
    """The named provider's webhook and the request as the provider made it, its
    authentication checked; else the answer: 404 for no such provider, 401 (logged and
    counted) when the authentication fails."""
    router = services.router
    routed = router.routed.get(name) if router is not None else None
    if routed is None or routed.webhook is None:
        return error_response(404, f"no provider named {name!r} is configured")
    body = await read_body(settings.webhook_max_bytes)
    called = as_called(routed.webhook, body, inbound)
    problem = routed.webhook.authenticate(called, settings.clock())
    if problem:
        return refuse(services, problem, provider=name)
    return routed.webhook, called


def as_called(webhook: Webhook, body: bytes, inbound: bool = False) -> WebhookRequest:
    """The request as the provider made it: the URL it was told (its signature may
    cover it, and a proxy in front changes the one we see), its form fields. The
    inbound URL is the status URL with ``/inbound`` for its last ``/status``."""
    url = request.url
    if webhook.status_url:
        query = request.query_string.decode("latin-1")
        told = webhook.status_url.split("?")[0]
        if inbound and told.endswith("/status"):
            told = told.removesuffix("/status") + "/inbound"
        url = told + (f"?{query}" if query else "")
    form = (dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if request.mimetype == FORM else {})
    return WebhookRequest(url, dict(request.headers), body, form)
