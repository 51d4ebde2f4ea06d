"""Logs: one stream in one format, libraries' lines included; colours only on a
terminal; an access log on request that never holds a body."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from api import ApiSettings, create_app
from smsproxy.logs import configure_logging

PHONE = "+4915112345678"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    captured = io.StringIO()
    yield captured
    configure_logging("console")  # as the other tests expect


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_library_logging_through_the_standard_module_logs_json_like_us(stream):
    configure_logging("json", "info", stream=stream)
    logging.getLogger("hypercorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("psycopg").debug("below the level: not written")
    [event] = events(stream)
    assert event["event"] == "Invalid HTTP request received."
    assert (event["level"], event["logger"]) == ("warning", "hypercorn.error")
    assert event["timestamp"].endswith("Z")


class _Writes(io.StringIO):
    """Records each write: what reaches the file in one system call when unbuffered."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_event_is_one_write_of_a_whole_line():
    """Workers share one stdout, unbuffered where PYTHONUNBUFFERED is set: an event
    written as the line and then its newline interleaves with another worker's."""
    out = _Writes()
    try:
        configure_logging("json", "info", stream=out)
        import structlog
        structlog.get_logger("smsproxy.test").info("starting", port=8080)
        logging.getLogger("hypercorn.error").warning("a library's line")
    finally:
        configure_logging("console")
    assert len(out.writes) == 2
    assert all(w.endswith("\n") and w.count("\n") == 1 for w in out.writes)
    assert [json.loads(w)["event"] for w in out.writes] == ["starting", "a library's line"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream_type", "coloured"), [(io.StringIO, False), (_Terminal, True)])
def test_console_colours_only_on_a_terminal(stream_type, coloured):
    out = stream_type()
    try:
        configure_logging("console", "info", stream=out)
        logging.getLogger("smsproxy.test").info("hello")
        import structlog
        structlog.get_logger("smsproxy.test").info("started", port=8080)
    finally:
        configure_logging("console")
    assert ("\x1b[" in out.getvalue()) is coloured
    assert "started" in out.getvalue() and "hello" in out.getvalue()


@pytest.mark.parametrize("access_log", [True, False])
async def test_the_access_log_has_one_event_per_request_and_no_body(
        start_pipeline, stream, access_log):
    pipeline = await start_pipeline()
    configure_logging("json", "info", stream=stream)
    client = create_app(pipeline.services, ApiSettings(access_log=access_log)).test_client()
    await client.post("/sms", json={"phone_number": PHONE, "content": "secret code 4711"})
    await client.get("/sms/not-an-id")
    requests = [e for e in events(stream) if e["event"] == "http_request"]
    if not access_log:
        assert requests == []
        return
    assert [(e["route"], e["method"], e["status"]) for e in requests] == [
        ("/sms", "POST", 202), ("/sms/<message_id>", "GET", 400)]
    assert all(e["duration_ms"] >= 0 and "client" in e for e in requests)
    assert "secret code" not in stream.getvalue() and PHONE not in stream.getvalue()
