"""The OpenAPI document: quart-schema's, plus the answers it cannot express from models."""

from typing import Any

from quart_schema import OpenAPIProvider

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
        204: {"description": "Handed to the updater; unknown ids and statuses are logged."}
    },
}


class SmsProxyOpenAPI(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        document = super().schema()
        for (path, method), responses in _EXTRA_RESPONSES.items():
            operation = document["paths"][path][method]
            operation.setdefault("responses", {}).update(responses)
        return document
