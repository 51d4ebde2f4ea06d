"""Structured logs with structlog: JSON lines by default, coloured console for humans.

Whatever an event carries, a phone number is logged as its last three digits only,
and message content is never logged.
"""

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

__all__ = [
    "LOG_LEVELS", "configure_logging", "debug_enabled", "mask_phone_number",
    "redact_personal_data",
]

LOG_LEVELS = ("debug", "info", "warning", "error")

_debug = False


def debug_enabled() -> bool:
    """For per-message events on hot paths: skip even building them unless wanted."""
    return _debug


def mask_phone_number(number: str) -> str:
    return "*" * max(0, len(number) - 3) + number[-3:]


def redact_personal_data(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if isinstance(event.get("phone_number"), str):
        event["phone_number"] = mask_phone_number(event["phone_number"])
    if "content" in event:
        event["content"] = "[redacted]"
    return event


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time of writing, not at configuration."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure_logging(
    log_format: str = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    global _debug
    _debug = level == "debug"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer()
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            redact_personal_data,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or _CurrentStdout()),  # type: ignore[arg-type]
        # Not cached: a cached logger would keep writing to the stream of its first use.
        cache_logger_on_first_use=False,
    )
