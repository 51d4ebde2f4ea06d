"""``/console``: the support console, server-rendered HTML for support staff answering
"did my customer get the text?": find a message by id, or by status and time; its
history and its callbacks; the queue, the providers and recent failures at a glance.

Who sees what: with API keys, a sign-in form takes a key and keeps its *name* in a
signed session cookie (HttpOnly, SameSite=Strict, path /console) that lapses after
``SESSION_MINUTES`` without a request; a support key sees every key's messages, any
other key its own. Every form that changes state carries a CSRF token from the
session. Without keys the console answers loopback clients only, and shows no full
phone number (nor any content: none is ever shown). No JavaScript; no external asset.
"""

import dataclasses
import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError
from quart import Blueprint, Quart, Response, render_template, request, session, url_for
from quart_schema import hide
from quart_trio.wrappers import TrioResponse
from werkzeug.exceptions import BadRequest, Forbidden

from api.common import Services
from api.guard import Guard
from api.listing_schemas import MessageEvent, MessagePage, MessageQueryParams, parse_message_id
from api.schemas import describe_validation_error
from smsproxy.callbacks import safe_url
from smsproxy.logs import mask_phone_number
from smsproxy.models import MessageQuery
from smsproxy.provider_stats import provider_stats
from smsproxy.statuses import Status
from smsproxy.tenants import ApiKey

__all__ = ["SESSION_MINUTES", "configure_sessions", "console_routes"]

SESSION_MINUTES = 60
"""A console session lapses after this long without a request."""

_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class _Viewer:
    name: str | None
    """The signed-in key's name (None: loopback without keys)."""
    viewer: str | None
    """Whose messages it sees (None: every key's)."""

    @property
    def masked(self) -> bool:
        return self.name is None


def configure_sessions(app: Quart, keys: tuple[ApiKey, ...]) -> None:
    """The console's signed cookie: its secret is derived from the keys, so that every
    instance with the same keys takes the others' sessions, and a changed key list ends
    them all."""
    material = "\x00".join(sorted(f"{k.name}={k.key}" for k in keys))
    app.secret_key = (hashlib.sha256(b"smsproxy-console\x00" + material.encode()).hexdigest()
                      if keys else secrets.token_hex(32))
    app.config.update(
        SESSION_COOKIE_NAME="smsproxy_console", SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/console",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=SESSION_MINUTES))


def console_routes(services: Services, guard: Guard) -> Blueprint:
    routes = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")

    def viewing() -> _Viewer | None:
        """Who looks (None: not signed in); Forbidden off loopback without keys."""
        if not guard.has_keys:
            if not _loopback(request.remote_addr):
                raise Forbidden("the console without API keys answers loopback clients only")
            return _Viewer(None, None)
        caller = guard.named(str(session.get("key", "")))
        return _Viewer(caller.name, caller.viewer) if caller is not None else None

    async def page(template: str, viewer: _Viewer | None, code: int = 200,
                   **values: object) -> Response:
        html = await render_template(
            template, viewer_name=viewer.name if viewer else None, csrf=_csrf(),
            loopback=not guard.has_keys, **values)
        return TrioResponse(html, code, headers=_SECURITY_HEADERS, content_type="text/html")

    @routes.get("/")
    @hide  # HTML for people, not part of the API
    async def overview() -> Response:
        viewer = viewing()
        if viewer is None:
            return _to_sign_in()
        failed = await services.repository.find(
            MessageQuery(Status.FAILED, limit=10, tenant=viewer.viewer))
        recent = MessagePage.of(failed, limit=10)
        router = services.router
        providers = [{"name": name, **figures} for name, figures in
                     provider_stats(router.table.routes).items()] if router else []
        return await page("console/overview.html", viewer, statuses=[s.value for s in Status
                                                                    if s is not Status.NOT_FOUND],
                          queue_depth=services.dispatcher.queue_depth,
                          in_flight=services.dispatcher.in_flight,
                          stats=await services.stats.snapshot(), providers=providers,
                          listed=recent.messages)

    @routes.get("/messages")
    @hide  # HTML for people, not part of the API
    async def messages() -> Response:
        viewer = viewing()
        if viewer is None:
            return _to_sign_in()
        wanted = request.args.get("id", "").strip()
        if wanted:
            return _redirect("console.message", message_id=wanted)
        arguments = {k: v for k, v in request.args.items() if v}
        try:
            params = MessageQueryParams.model_validate(arguments)
        except ValidationError as error:
            return await page("console/messages.html", viewer, 400, listed=[],
                              problem=describe_validation_error(error))
        found = MessagePage.of(await services.repository.find(params.query(viewer.viewer)),
                               params.limit)
        return await page("console/messages.html", viewer, listed=found.messages,
                          status=arguments.get("status"), since=arguments.get("since"),
                          next=found.next)

    @routes.get("/messages/<message_id>")
    @hide  # HTML for people, not part of the API
    async def message(message_id: str) -> Response:
        viewer = viewing()
        if viewer is None:
            return _to_sign_in()
        canonical = parse_message_id(message_id)
        if canonical is None:
            return await page("console/messages.html", viewer, 400, listed=[],
                              problem=f"{message_id[:60]!r} is not a message id (a UUID)")
        record = await services.repository.get(canonical, viewer.viewer)
        events = await services.repository.history(canonical, viewer.viewer)
        callbacks = await services.repository.callbacks(canonical, viewer.viewer)
        number = record.phone_number or ""
        return await page(
            "console/message.html", viewer, record=record,
            # a URL's query may hold the receiver's token: shown as the logs show it
            callbacks=[dataclasses.replace(c, url=safe_url(c.url)) for c in callbacks],
            recipient=mask_phone_number(number) if viewer.masked else number,
            events=[MessageEvent.of(event) for event in events])

    @routes.get("/sign-in")
    @hide  # HTML for people, not part of the API
    async def sign_in_form() -> Response:
        return await page("console/sign_in.html", None)

    @routes.post("/sign-in")
    @hide  # HTML for people, not part of the API
    async def sign_in() -> Response:
        form = await request.form
        _check_csrf(form.get("csrf", ""))
        caller = guard.holder_of(form.get("key", "").strip()) if guard.has_keys else None
        if caller is None or caller.name is None:
            return await page("console/sign_in.html", None, 401,
                              problem="That is not an API key of this service.")
        session.clear()
        session.permanent = True
        session["key"] = caller.name
        session["csrf"] = secrets.token_urlsafe(32)  # a new session, a new token
        return _redirect("console.overview")

    @routes.post("/sign-out")
    @hide  # HTML for people, not part of the API
    async def sign_out() -> Response:
        _check_csrf((await request.form).get("csrf", ""))
        session.clear()
        return _to_sign_in()

    return routes


def _csrf() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _check_csrf(presented: str) -> None:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not secrets.compare_digest(presented, expected):
        raise BadRequest("the form has expired (no valid CSRF token): reload the page")


def _to_sign_in() -> Response:
    return _redirect("console.sign_in_form")


def _redirect(endpoint: str, **values: object) -> Response:
    """303: the browser GETs the page (after a form's POST too)."""
    location: str = url_for(endpoint, **values)  # type: ignore[arg-type]
    return TrioResponse("", 303, headers={"Location": location, **_SECURITY_HEADERS})


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False

