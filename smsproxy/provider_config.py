"""The providers file (``--providers FILE``): several providers, their credentials,
prices and routing weights, in TOML::

    [[providers]]
    name = "infobip"            # in /providers/<name>/status, the metrics and /stats
    api = "infobip"             # fastsmsing | infobip | sinch | twilio
    url = "https://xyz.api.infobip.com"
    api_key = "..."             # infobip, fastsmsing
    webhook_user = "shop"       # infobip, sinch: the basic credentials their webhook sends
    webhook_password = "..."
    price = 0.005               # what one request costs
    priority = 1                # lower first; by default the order of price
    weight = 100                # share among equal priorities
    max_batch = 500             # optional
    max_rate = 20               # optional: requests a second
    sender = "MyShop"           # optional: its default sender
    status_url = "https://proxy.example/providers/infobip/status"  # passed to the provider

Sinch takes ``service_plan_id`` and ``api_token``; Twilio ``account_sid`` and
``auth_token`` (which also signs its callbacks); FastSMSing ``api_key`` and
``webhook_secret``. Every entry is checked at start; a bad one names its provider.
"""

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smsproxy.validation import SENDER_PATTERN

__all__ = ["APIS", "ProviderEntry", "ProvidersFileError", "load_providers"]

APIS = ("fastsmsing", "infobip", "sinch", "twilio")

_CREDENTIALS = {
    "fastsmsing": ("api_key", "webhook_secret"),
    "infobip": ("api_key", "webhook_user", "webhook_password"),
    "sinch": ("service_plan_id", "api_token", "webhook_user", "webhook_password"),
    "twilio": ("account_sid", "auth_token"),
}
"""What each API needs to send and to authenticate its reports."""


class ProvidersFileError(ValueError):
    pass


class ProviderEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    api: Literal["fastsmsing", "infobip", "sinch", "twilio"]
    url: str = Field(pattern=r"^https?://[^/\s]+")
    price: float = Field(ge=0)
    priority: int | None = None
    weight: int = Field(default=100, ge=1, le=1_000_000)
    max_batch: int | None = Field(default=None, ge=1, le=100_000)
    max_rate: float | None = Field(default=None, gt=0)
    sender: str | None = Field(default=None, pattern=SENDER_PATTERN.pattern)
    status_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+")
    api_key: str | None = None
    webhook_secret: str | None = None
    webhook_user: str | None = None
    webhook_password: str | None = None
    service_plan_id: str | None = None
    api_token: str | None = None
    account_sid: str | None = None
    auth_token: str | None = None

    @property
    def routing_priority(self) -> float:
        """Its place in the routing order: its priority, else its price."""
        return self.priority if self.priority is not None else self.price

    @model_validator(mode="after")
    def _has_its_credentials(self) -> "ProviderEntry":
        missing = [c for c in _CREDENTIALS[self.api] if not getattr(self, c)]
        if missing:
            raise ValueError(f"the {self.api} API needs {', '.join(missing)}")
        return self


def load_providers(path: str, default_sender: str | None = None) -> tuple[ProviderEntry, ...]:
    """The file's providers, in routing order (priority, or price when no entry sets
    one; ties in the file's order); ProvidersFileError naming what is wrong."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ProvidersFileError(f"cannot read {path!r}: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ProvidersFileError(f"{path!r} is not valid TOML: {error}") from None
    raw = document.get("providers")
    if not isinstance(raw, list) or not raw or set(document) != {"providers"}:
        raise ProvidersFileError(f"{path!r} must hold one or more [[providers]] and nothing else")
    entries = []
    for index, item in enumerate(raw):
        try:
            entries.append(ProviderEntry.model_validate(item))
        except ValidationError as error:
            name = item.get("name", f"#{index + 1}") if isinstance(item, dict) else index + 1
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}"
                                 for e in error.errors())
            raise ProvidersFileError(f"provider {name}: {problems}") from None
    names = [e.name for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ProvidersFileError(f"provider names must be unique: {', '.join(twice)}")
    for entry in entries:
        if entry.api in ("sinch", "twilio") and not (entry.sender or default_sender):
            raise ProvidersFileError(f"provider {entry.name}: the {entry.api} API needs a "
                                     "sender (its own, or --default-sender)")
    given = [e.name for e in entries if e.priority is not None]
    if given and len(given) < len(entries):
        raise ProvidersFileError("set priority on every provider or on none (without it, "
                                 "the price is the priority: cheapest first)")
    return tuple(sorted(entries, key=lambda e: e.routing_priority))
