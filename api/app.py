"""``create_app(services, settings)`` builds the quart-trio app around the actors' handles.

Routes live by concern in :mod:`api.sms`, :mod:`api.webhook` and :mod:`api.ops`;
they parse, call a handle, and shape the answer. Tests hand in handles of actors
they started themselves.
"""

import re
import time
from functools import cache

import structlog
from quart import Response, g, request
from quart_schema import QuartSchema
from quart_trio import QuartTrio

from api.common import ApiSettings, Services
from api.compliance import compliance_routes
from api.console import configure_sessions, console_routes
from api.docs import docs_routes
from api.errors import register_error_handlers
from api.guard import Guard
from api.openapi import SmsProxyOpenAPI
from api.ops import HttpCounts, ops_routes
from api.provider_webhooks import provider_webhook_routes
from api.sms import MessageIdConverter, sms_routes
from api.webhook import webhook_routes
from smsproxy import __version__
from smsproxy.ratelimit import TokenBuckets

__all__ = ["ApiSettings", "Services", "create_app"]

log = structlog.get_logger("smsproxy.http")


def create_app(services: Services, settings: ApiSettings | None = None) -> QuartTrio:
    settings = settings or ApiSettings()
    app = QuartTrio("smsproxy")
    # The hard cap for any body; each route checks its own, lower limit.
    app.config["MAX_CONTENT_LENGTH"] = max(
        settings.sms_max_bytes, settings.webhook_max_bytes, settings.bulk_max_bytes
    )
    plain_make_response = app.make_response
    QuartSchema(
        app,
        info={"title": "smsproxy", "version": __version__,
              "description": "A batching, retrying, status-tracking proxy for a paid SMS "
                             "provider. Every error is {\"error\": \"...\"}."},
        swagger_ui_path=None,  # api.docs serves it, without a CDN
        redoc_ui_path=None,
        scalar_ui_path=None,
        openapi_provider_class=SmsProxyOpenAPI,
    )
    # quart-schema wraps make_response to turn returned models into JSON. Our routes
    # return finished responses, so the wrapper is only a cost on every answer.
    app.make_response = plain_make_response  # type: ignore[method-assign]
    register_error_handlers(app)
    app.url_map.converters["message_id"] = MessageIdConverter
    guard = Guard(settings.api_keys, _buckets(settings), settings.monotonic)
    app.register_blueprint(sms_routes(services, settings, guard))
    app.register_blueprint(webhook_routes(services, settings))
    app.register_blueprint(provider_webhook_routes(services, settings))
    app.register_blueprint(compliance_routes(services, settings, guard))
    configure_sessions(app, settings.api_keys)
    app.register_blueprint(console_routes(services, guard))
    app.register_blueprint(docs_routes())
    http_counts = HttpCounts(services.stats)
    app.register_blueprint(ops_routes(services, http_counts, settings.shared_stats))

    @app.before_request
    async def note_arrival() -> None:
        g.arrived = time.perf_counter()

    @app.after_request
    async def count_request(response: Response) -> Response:
        # The route's rule, not the path: unknown paths must not grow the label set.
        url_rule = request.url_rule
        rule = _route_label(url_rule.rule) if url_rule else "unmatched"
        seconds = time.perf_counter() - g.get("arrived", time.perf_counter())
        http_counts.count(rule, request.method, response.status_code, seconds)
        if settings.access_log:
            log.info("http_request", route=rule, method=request.method,
                     status=response.status_code, duration_ms=round(seconds * 1000, 3),
                     client=request.remote_addr)
        return response

    return app


@cache
def _route_label(rule: str) -> str:
    """The rule without its converters: ``/sms/<message_id>``."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule)


def _buckets(settings: ApiSettings) -> TokenBuckets | None:
    if settings.rate_limit is None:
        return None
    return TokenBuckets(settings.rate_limit, settings.rate_burst)
