"""The OpenAPI document: quart-schema's, made exact where models cannot say it.

quart-schema derives the document from the request and response models; this adds
what lives outside them: bodies are required, message ids are UUIDs, the /sms routes
take a bearer key (when ``--api-keys`` is set), the headers a client sends
(``Idempotency-Key``) and reads (``Retry-After``, ``Idempotent-Replayed``), and the
answers that have no model.
"""

from typing import Any

from quart_schema import OpenAPIProvider

from api.guard import MAX_IDEMPOTENCY_KEY
from api.listing_schemas import UUID_PATTERN

__all__ = ["SmsProxyOpenAPI"]

# Keyed by int status codes, as quart-schema keys its own.
_EXTRA_RESPONSES: dict[tuple[str, str], dict[int, Any]] = {
    ("/metrics", "get"): {
        200: {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    ("/provider/status", "post"): {
        204: {"description": "Committed; unknown ids and statuses are logged and skipped."}
    },
    ("/providers/{name}/status", "post"): {
        204: {"description": "Committed; reports on messages this provider did not take "
                             "are logged, counted and skipped."}
    },
    ("/provider/inbound", "post"): {204: {"description": "Stored."}},
    ("/providers/{name}/inbound", "post"): {204: {"description": "Stored."}},
    ("/suppressions/{number}", "delete"): {204: {"description": "Taken off the list."}},
}

_STORE_AWAY = {
    "description": "The store cannot be reached now; retry after Retry-After.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}

_GUARDED = ("/sms", "/events", "/inbound", "/suppressions")
"""Paths (and those under them) that take an API key when keys are set."""

_TAGS = (
    ("/sms", "messages"), ("/events", "messages"), ("/inbound", "compliance"),
    ("/suppressions", "compliance"), ("/provider", "provider webhooks"),
)
"""Each path's group in the document, by its first segment (the rest: operations)."""

_TAG_DESCRIPTIONS = [
    {"name": "messages", "description": "Send messages and follow them: the shop's side."},
    {"name": "compliance", "description": "Replies and the suppression list (opt-out)."},
    {"name": "provider webhooks", "description": "What the providers call: status reports "
                                                 "and replies, each authenticated."},
    {"name": "operations", "description": "Health, readiness, statistics and metrics."},
]

_SUBMISSIONS = {("/sms", "post"), ("/sms/bulk", "post")}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
}

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "A key of the client's choosing: a retried request with the same key and "
                   "body gets the first answer again (with Idempotent-Replayed: true) instead "
                   "of new messages; the same key with another body is a 422. Remembered "
                   "for --idempotency-ttl (24 h).",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
               "pattern": "^[\\x20-\\x7e]+$"},
}

_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "Present, as true, when this is the stored answer to an earlier "
                       "request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}

_BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "One of the server's --api-keys. Without --api-keys the routes are open.",
}

_MESSAGE_ID = {
    "type": "string",
    "format": "uuid",
    "pattern": f"^{UUID_PATTERN}$",
    "description": "An id as POST /sms answered it. Anything else is answered 400.",
}


class SmsProxyOpenAPI(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        document = super().schema()
        components = document.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearer"] = _BEARER
        schemas = components.setdefault("schemas", {})
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                _make_exact(path, method, operation)
                _describe(path, operation)
                _hoist_models(operation, schemas)
        document["tags"] = _TAG_DESCRIPTIONS
        return document


def _describe(path: str, operation: dict[str, Any]) -> None:
    """A whole first sentence as the summary (quart-schema cuts it at the docstring's
    first line break), the whole docstring as the description, and the path's tag."""
    text = " ".join(f"{operation.get('summary') or ''} {operation.get('description') or ''}"
                    .replace("``", "`").split())
    sentence, stop, _ = text.partition(". ")
    operation["summary"] = sentence + ("." if stop and not sentence.endswith(".") else "")
    if text != operation["summary"]:
        operation["description"] = text
    else:
        operation.pop("description", None)
    operation["tags"] = [next((tag for prefix, tag in _TAGS if path.startswith(prefix)),
                              "operations")]


def _hoist_models(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A model used in several places is one component, referred to: code generators
    make one class of it (quart-schema writes each answer's model inline)."""
    bodies = [operation.get("requestBody", {}),
              *operation.get("responses", {}).values()]
    for body in bodies:
        for media in body.get("content", {}).values():
            schema = media.get("schema", {})
            title = schema.get("title")
            if title and schema.get("type") == "object" and schemas.get(title, schema) == schema:
                schemas[title] = schema
                media["schema"] = {"$ref": f"#/components/schemas/{title}"}


def _make_exact(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.update(_EXTRA_RESPONSES.get((path, method), {}))
    if "requestBody" in operation:
        operation["requestBody"]["required"] = True
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path" and parameter["name"] == "message_id":
            parameter["schema"] = _MESSAGE_ID
    if path.startswith(_GUARDED):
        # Either a bearer key or none: which one the server wants is its configuration.
        operation["security"] = [{"bearer": []}, {}]
        responses.setdefault(503, dict(_STORE_AWAY))
    if (path, method) in _SUBMISSIONS:
        operation.setdefault("parameters", []).append(_IDEMPOTENCY_KEY)
        responses[202].setdefault("headers", {}).update(_REPLAYED)
    for status in (429, 503):
        if status in responses:
            responses[status].setdefault("headers", {}).update(_RETRY_AFTER)
