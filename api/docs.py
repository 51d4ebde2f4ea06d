"""``/docs``: the OpenAPI document rendered by Swagger UI, served from this package.

The page and its assets come from ``api/static/swagger-ui`` (swagger-ui-dist, see its
VERSION file), never from a CDN: an admin port rarely reaches the internet, and a page
that loads its script from one is blank there.
"""

from functools import cache
from importlib.resources import files

from quart import Blueprint, Response
from quart_schema import hide

__all__ = ["docs_routes"]

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>smsproxy API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <p style="font-family: sans-serif; margin: 1em 2em">The OpenAPI document itself:
    <a href="/openapi.json">/openapi.json</a></p>
  <div id="swagger-ui"><noscript>This page needs JavaScript to render the operations;
    <a href="/openapi.json">/openapi.json</a> holds them all.</noscript></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/start.js"></script>
</body>
</html>
"""

# In a file of its own rather than inline, so that a Content-Security-Policy of
# script-src 'self' allows it.
_START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"
});
"""


_JS = "text/javascript; charset=utf-8"


@cache
def _assets() -> dict[str, tuple[bytes, str]]:
    """Each asset's bytes and type, read once: a file body would cost a thread per
    request (and quart-trio's test client hangs on one)."""
    folder = files("api") / "static" / "swagger-ui"
    return {
        "swagger-ui-bundle.js": ((folder / "swagger-ui-bundle.js").read_bytes(), _JS),
        "swagger-ui.css": ((folder / "swagger-ui.css").read_bytes(), "text/css; charset=utf-8"),
        "start.js": (_START.encode(), _JS),
    }


def docs_routes() -> Blueprint:
    routes = Blueprint("docs", __name__)
    assets = _assets()

    @routes.get("/docs")
    @hide
    async def docs() -> Response:
        return Response(_PAGE, content_type="text/html; charset=utf-8")

    @routes.get("/docs/assets/<name>")
    @hide
    async def asset(name: str) -> Response:
        if name not in assets:
            return Response("no such asset\n", status=404, content_type="text/plain")
        body, content_type = assets[name]
        return Response(body, content_type=content_type,
                        headers={"Cache-Control": "public, max-age=86400"})

    return routes
