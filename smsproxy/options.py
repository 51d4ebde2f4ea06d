"""The options' table: each option's name, parser, help and check, read from flags and
``SMSPROXY_<NAME>`` by :class:`smsproxy.config.Config`, which has one field each."""

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from smsproxy.callbacks import check_url
from smsproxy.errors import InvalidMessage
from smsproxy.logs import LOG_LEVELS
from smsproxy.stores import POSTGRES_SCHEMES
from smsproxy.tenants import parse_keys, parse_quotas
from smsproxy.validation import PHONE_REGIONS, SENDER_PATTERN

__all__ = [
    "LOG_FORMATS", "OPTIONS", "SECRET_OPTIONS", "ConfigError", "Option", "env_name", "masked",
    "parse_classes",
]

SECRET_OPTIONS = frozenset({"provider_api_key", "webhook_secret", "api_keys", "admin_keys",
                            "callback_secret"})
LOG_FORMATS = ("json", "console")


class ConfigError(ValueError):
    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"--{option.replace('_', '-')}: {reason}")
        self.option = option


def env_name(option: str) -> str:
    return f"SMSPROXY_{option.upper()}"


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    help: str
    check: Callable[[Any], None]
    switch: bool = False
    """A flag without a value (``--webhook-insecure``); its variable takes true or false."""
    flag: str | None = None
    """The flag, when it is not the name's (``--class`` for ``classes``)."""
    repeatable: bool = False
    """The flag may come more than once; the values join with commas, as in the
    environment."""

    @property
    def flag_name(self) -> str:
        return self.flag or f"--{self.name.replace('_', '-')}"


def _checked(name: str, ok: Callable[[Any], bool], rule: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value is not None and not ok(value):
            raise ConfigError(name, f"{rule} (got {value!r})")

    return check


def _parser(name: str, kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise ConfigError(name, f"{text!r} is not a valid {kind.__name__}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(name, f"{text!r} is not a finite number")
        return value

    return parse


def _parse_switch(name: str) -> Callable[[str], bool]:
    def parse(text: str) -> bool:
        value = _SWITCH_WORDS.get(text.strip().lower())
        if value is None:
            raise ConfigError(name, f"{text!r} is not true or false")
        return value

    return parse


_SWITCH_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


_CLASS_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def parse_classes(text: str) -> dict[str, float]:
    classes = {}
    for entry in text.split(","):
        name, _, seconds = entry.strip().partition("=")
        classes[name.strip()] = float(seconds)
    return classes


def _are_classes(text: str) -> bool:
    try:
        classes = parse_classes(text)
    except ValueError:
        return False
    return all(_CLASS_NAME.fullmatch(name) and math.isfinite(seconds) and seconds > 0
               for name, seconds in classes.items())


def _is_callback_url(url: str) -> bool:
    try:
        check_url(url)
    except InvalidMessage:
        return False
    return True


def _parses(name: str, parse: Callable[[str], object]) -> Callable[[Any], None]:
    """A check that ``parse`` takes the text; its ValueError names what is wrong."""
    def check(text: str | None) -> None:
        if text is None:
            return
        try:
            parse(text)
        except ValueError as error:
            raise ConfigError(name, str(error)) from None

    return check


def _switch(name: str, help: str) -> Option:
    return Option(name, _parse_switch(name), help, lambda _: None, switch=True)


def _option(name: str, kind: type, help: str, ok: Callable[[Any], bool], rule: str) -> Option:
    return Option(name, _parser(name, kind), help, _checked(name, ok, rule))


def masked(name: str, value: object) -> object:
    if name in SECRET_OPTIONS and value:
        return "***"
    if name == "store" and isinstance(value, str) and value.startswith(POSTGRES_SCHEMES):
        parts = urlsplit(value)
        if parts.password:
            return value.replace(f":{parts.password}@", ":***@", 1)
    return value


def _check_store(url: str) -> None:
    if url == "memory://":
        return
    if url.startswith(POSTGRES_SCHEMES):
        try:
            conninfo_to_dict(url)
        except psycopg.ProgrammingError as error:
            raise ConfigError("store", f"not a PostgreSQL URL: {error}") from None
        return
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise ConfigError("store", "must be memory://, sqlite:///PATH or "
                                   f"postgresql://USER@HOST:PORT/DATABASE (got {url!r})")
    path = Path(url.removeprefix("sqlite:///"))
    folder = path.parent if str(path.parent) else Path(".")
    if path.exists():
        if not path.is_file() or not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError("store", f"{str(path)!r} is not a readable, writable file")
    elif not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError("store", f"cannot create {str(path)!r}: {str(folder)!r} is not a "
                                   "writable directory")


def _is_http_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _positive(value: float) -> bool:
    return value > 0


def _not_negative(value: float) -> bool:
    return value >= 0


OPTIONS: Sequence[Option] = (
    _option("host", str, "listen address", bool, "must not be empty"),
    _option("port", int, "listen port", lambda p: 0 <= p <= 65535, "must be 0-65535"),
    Option("store", str, "memory://, sqlite:///PATH (relative to the working directory) or "
           "postgresql://USER@HOST:PORT/DATABASE (several instances)",
           lambda url: _check_store(url)),
    _option("provider", str, "'memory' (the in-process simulator) or the FastSMSing base URL",
            lambda p: p == "memory" or _is_http_url(p), "must be 'memory' or an http(s) URL"),
    _option("provider_api_key", str, "Bearer token for the FastSMSing API", bool,
            "must not be empty"),
    _option("providers", str, "TOML file of several providers (Infobip, Sinch, Twilio, "
            "FastSMSing), routed by priority, weight and health (see docs/providers.md)",
            bool, "must not be empty"),
    _option("default_sender", str, "sender of messages that name none (1-11 letters, digits "
            "or spaces, or an E.164 number)", lambda v: bool(SENDER_PATTERN.fullmatch(v)),
            "must be 1-11 letters, digits or spaces, or an E.164 number"),
    _option("default_region", str, "region a phone number without '+' or '00' is read in "
            "(ISO 3166 code: DE, GB, US; without it such digits are international)",
            lambda r: r in PHONE_REGIONS, "must be a region code such as DE, GB or US"),
    _switch("strict_numbers", "refuse phone numbers that the numbering metadata says are "
            "not in use, not only impossible ones"),
    _option("webhook_secret", str, "HMAC secret that signs POST /provider/status", bool,
            "must not be empty"),
    _switch("webhook_insecure", "take unsigned status reports from an HTTP provider "
            "(anyone who reaches the port can change statuses)"),
    Option("api_keys", str, "comma-separated NAME=KEY entries (or bare keys); when set, "
           "/sms needs 'Authorization: Bearer <key>', and each key sees its own messages",
           _parses("api_keys", parse_keys)),
    Option("admin_keys", str, "support keys, NAME=KEY, comma-separated: they see every "
           "key's messages and manage the suppression list", _parses("admin_keys", parse_keys)),
    Option("quotas", str, "NAME=N: the key named NAME sends at most N messages a UTC day, "
           "over every instance (repeat the flag for each; in the environment, "
           "comma-separated)", _parses("quota", parse_quotas), flag="--quota", repeatable=True),
    _option("rate_limit", float, "messages per second per API key (per client address "
            "without keys)", _positive, "must be more than 0"),
    _option("rate_burst", int, "messages a client may send at once before the rate applies "
            "(default: one second's worth)", _positive, "must be 1 or more"),
    _option("batch_size", int, "flush when this many messages are pending (0 or 1: at once)",
            _not_negative, "must be 0 or more"),
    _option("max_delay", float, "seconds the oldest pending message may wait",
            _not_negative, "must be 0 or more"),
    _option("status_linger", float, "seconds the updater holds a provider status report for "
            "more, so that reports share one store commit", _not_negative, "must be 0 or more"),
    _option("max_attempts", int, "attempts per batch (below 1 means 1)", lambda _: True, ""),
    _option("max_in_flight", int, "concurrent batches to the provider", _positive,
            "must be 1 or more"),
    _option("provider_timeout", float, "seconds per attempt to the provider", _positive,
            "must be more than 0"),
    _option("store_timeout", float, "seconds a request waits for the store before it is "
            "answered 503 (a save already under way is waited for: a 503 means not stored)",
            _positive, "must be more than 0"),
    _option("message_ttl", float, "seconds a message may wait for the provider before it fails",
            _positive, "must be more than 0"),
    _option("status_grace", float, "seconds more a message gets for the provider's status "
            "report when an attempt may have reached the provider", _not_negative,
            "must be 0 or more"),
    _option("max_queue", int, "unsent messages before POST answers 503", _positive,
            "must be 1 or more"),
    _option("bulk_max", int, "messages per POST /sms/bulk request",
            lambda n: 1 <= n <= 10_000, "must be 1 to 10000"),
    _option("shutdown_grace", float, "seconds in-flight batches get at shutdown",
            _not_negative, "must be 0 or more"),
    _option("instance_name", str, "this instance's name in logs and claims (default "
            "host:pid)", lambda _: True, ""),
    _option("claim_lease", float, "seconds an instance holds the messages it claimed "
            "(PostgreSQL); renewed before every attempt", _positive, "must be more than 0"),
    _option("workers", int, "serving processes on this machine, sharing the port and the "
            "PostgreSQL store; /stats and /metrics count them as one", _positive,
            "must be 1 or more"),
    _switch("reuse_port", "bind the port with SO_REUSEPORT, beside other processes (set "
            "for each process by --workers)"),
    _option("shared_stats", str, "folder where the processes of one --workers set share "
            "their counters (set by --workers)", lambda _: True, ""),
    _option("max_connections", int, "open client connections at most; at the cap idle ones "
            "are closed first, then new ones refused (0: the descriptor limit less 128)",
            _not_negative, "must be 0 or more"),
    _option("keep_alive_timeout", float, "seconds an idle keep-alive connection is kept",
            _positive, "must be more than 0"),
    _option("header_timeout", float, "seconds a request's head may take to arrive, from its "
            "first byte", _positive, "must be more than 0"),
    _option("body_timeout", float, "seconds a request's body may take to arrive, after its "
            "head", _positive, "must be more than 0"),
    _option("idempotency_ttl", float, "seconds an Idempotency-Key is remembered",
            lambda ttl: ttl >= 86_400, "must be at least 86400 (24 hours)"),
    Option("classes", str, "a delivery class: NAME=SECONDS within which its messages must "
           "leave for the provider (repeat the flag for each; in the environment, "
           "comma-separated)", _checked("class", _are_classes, "must be NAME=SECONDS, "
           "a name of letters, digits, - or _, and a positive number of seconds"),
           flag="--class", repeatable=True),
    _option("retention", float, "seconds final messages and their history are kept after "
            "they were accepted; then GET /sms/<id> answers NOT_FOUND", _positive,
            "must be more than 0"),
    _option("callback_url", str, "default URL that each message's status events are POSTed "
            "to (a message's own callback_url wins)", _is_callback_url,
            "must be an http or https URL with a host"),
    _option("callback_secret", str, "HMAC secret that signs status callbacks; callbacks "
            "are sent only when it is set", bool, "must not be empty"),
    _option("callback_max_age", float, "seconds a callback is retried after its event",
            _positive, "must be a positive number of seconds"),
    _option("callback_timeout", float, "seconds a callback receiver has to answer",
            _positive, "must be a positive number of seconds"),
    _option("callback_retry_max", float, "seconds between two tries of a callback at most "
            "(the pause doubles from 1 s up to this)", lambda s: s >= 1,
            "must be at least 1 second"),
    _switch("callback_allow_private", "let callbacks reach loopback, private and link-local "
            "addresses (tests, or a receiver on the same network)"),
    _option("sim_latency", float, "simulator: seconds per provider call", _not_negative,
            "must be 0 or more"),
    _option("sim_failure_rate", float, "simulator: share of provider calls that fail",
            lambda r: 0 <= r <= 1, "must be between 0 and 1"),
    _switch("access_log", "log one event per request: route, method, status, duration and "
            "client address (never the body)"),
    _option("log_format", str, "json or console", lambda f: f in LOG_FORMATS,
            f"must be one of {', '.join(LOG_FORMATS)}"),
    _option("log_level", str, "debug (one event per message), info, warning or error",
            lambda level: level in LOG_LEVELS, f"must be one of {', '.join(LOG_LEVELS)}"),
)

