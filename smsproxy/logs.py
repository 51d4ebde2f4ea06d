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
_standard_handler: logging.Handler | None = None


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
    """structlog's events, and those of libraries that log through the standard
    ``logging`` module (hypercorn, psycopg), as one stream in one format. The console
    format has colours only when the stream is a terminal, never in a file."""
    global _debug
    _debug = level == "debug"
    out = stream or _CurrentStdout()
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=_is_terminal(out))
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        redact_personal_data,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # One write per event, the newline included (PrintLogger writes the line and then
        # the newline): --workers share one stdout, unbuffered under PYTHONUNBUFFERED,
        # and two writes per event interleave with another worker's.
        logger_factory=structlog.WriteLoggerFactory(out),  # type: ignore[arg-type]
        # Not cached: a cached logger would keep writing to the stream of its first use.
        cache_logger_on_first_use=False,
    )
    _route_standard_logging(out, shared, renderer, numeric_level)


def _route_standard_logging(
    out: Any, shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor,
    level: int,
) -> None:
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[_name_the_library, structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    renderer],
        foreign_pre_chain=shared,
    ))
    root = logging.getLogger()
    global _standard_handler
    if _standard_handler is not None:
        root.removeHandler(_standard_handler)
    _standard_handler = handler
    root.addHandler(handler)
    root.setLevel(level)


def _name_the_library(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A library's line: its logger's name beside the message (the event)."""
    record = event.get("_record")
    if record is not None:
        event["logger"] = record.name
    return event


def _is_terminal(stream: Any) -> bool:
    target = sys.stdout if isinstance(stream, _CurrentStdout) else stream
    isatty = getattr(target, "isatty", None)
    return bool(isatty and isatty())
