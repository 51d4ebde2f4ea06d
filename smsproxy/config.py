"""Service configuration: one table of options (:mod:`smsproxy.options`), read from flags
and ``SMSPROXY_<NAME>``.

Precedence: a flag beats the environment, which beats the embedded default.
Every value is checked before anything starts; a bad one is a :class:`ConfigError`
that names the option, which the CLI turns into exit code 2.
"""

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from smsproxy.compliance import Quota
from smsproxy.options import (
    OPTIONS,
    SECRET_OPTIONS,
    ConfigError,
    Option,
    env_name,
    masked,
    parse_classes,
)
from smsproxy.provider_config import ProviderEntry, ProvidersFileError, load_providers
from smsproxy.stores import POSTGRES_SCHEMES
from smsproxy.tenants import ApiKey, parse_keys, parse_quotas

__all__ = ["OPTIONS", "SECRET_OPTIONS", "Config", "ConfigError", "Option", "env_name"]


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    store: str = "sqlite:///smsproxy.db"
    provider: str = "memory"
    provider_api_key: str | None = None
    providers: str | None = None
    default_sender: str | None = None
    default_region: str | None = None
    strict_numbers: bool = False
    webhook_secret: str | None = None
    webhook_insecure: bool = False
    api_keys: str | None = None
    admin_keys: str | None = None
    quotas: str | None = None
    rate_limit: float | None = None
    rate_burst: int | None = None
    batch_size: int = 100
    max_delay: float = 1.0
    status_linger: float = 0.1
    max_attempts: int = 3
    max_in_flight: int = 4
    provider_timeout: float = 10.0
    store_timeout: float = 30.0
    message_ttl: float = 3600.0
    status_grace: float = 3600.0
    max_queue: int = 100_000
    bulk_max: int = 1000
    shutdown_grace: float = 5.0
    instance_name: str = ""
    claim_lease: float = 30.0
    workers: int = 1
    reuse_port: bool = False
    shared_stats: str = ""
    max_connections: int = 0
    keep_alive_timeout: float = 30.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idempotency_ttl: float = 86_400.0
    classes: str | None = None
    retention: float = 30 * 86_400.0
    callback_url: str | None = None
    callback_secret: str | None = None
    callback_max_age: float = 86_400.0
    callback_timeout: float = 5.0
    callback_retry_max: float = 3600.0
    callback_allow_private: bool = False
    sim_latency: float = 0.0
    sim_failure_rate: float = 0.0
    access_log: bool = False
    log_format: str = "json"
    log_level: str = "info"

    def __post_init__(self) -> None:
        for option in OPTIONS:
            option.check(getattr(self, option.name))
        if self.workers > 1 and not self.shared_store:
            raise ConfigError("workers", "above 1 needs a PostgreSQL --store: processes "
                                         "cannot share a SQLite file or a memory store")
        if self.workers > 1 and self.port == 0:
            raise ConfigError("workers", "above 1 needs a fixed --port to share")
        if self.claim_lease <= self.provider_timeout:
            raise ConfigError("claim_lease", f"must be longer than --provider-timeout "
                              f"({self.provider_timeout:g} s), so that a lease outlasts an "
                              f"attempt (got {self.claim_lease:g})")
        slow = {name: s for name, s in self.delivery_classes.items() if s > self.message_ttl}
        if slow:
            raise ConfigError("class", f"{', '.join(slow)}: a class's seconds must be at most "
                                       f"--message-ttl ({self.message_ttl:g})")
        self._check_keys()
        if self.callback_url and not self.callback_secret:
            raise ConfigError("callback_url", "needs --callback-secret: callbacks are signed, "
                                              "so that a receiver can tell them from forgeries")
        if self.providers is not None:
            if self.provider != "memory":
                raise ConfigError("providers", "replaces --provider: pass one or the other")
            self.provider_entries()  # every entry checked before anything starts
        if self.provider != "memory" and not self.webhook_secret and not self.webhook_insecure:
            raise ConfigError(
                "webhook_secret",
                "is required with an HTTP provider: without it anyone who reaches this port "
                "can mark any message DELIVERED or FAILED (pass --webhook-insecure to run "
                "without it anyway)",
            )

    def _check_keys(self) -> None:
        names = [k.name for k in self.api_key_list]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError("admin_keys", f"names also in --api-keys: {', '.join(repeated)}")
        keys = [k.key for k in self.api_key_list]
        if len(set(keys)) < len(keys):
            raise ConfigError("admin_keys", "a key is given twice (under two names)")
        unknown = sorted(set(self.quota_by_key) - set(names))
        if unknown:
            raise ConfigError("quota", f"names no key of --api-keys or --admin-keys: "
                                       f"{', '.join(unknown)}")

    def provider_entries(self) -> tuple[ProviderEntry, ...]:
        """The providers file's entries, in routing order (empty without one)."""
        if self.providers is None:
            return ()
        try:
            return load_providers(self.providers, self.default_sender)
        except ProvidersFileError as error:
            raise ConfigError("providers", str(error)) from None

    def loggable(self) -> dict[str, object]:
        """Every option, with secrets masked: for the start-up log line."""
        return {
            name: masked(name, value)
            for name, value in ((o.name, getattr(self, o.name)) for o in OPTIONS)
        }

    @property
    def shared_store(self) -> bool:
        """Several instances may share this store (PostgreSQL)."""
        return self.store.startswith(POSTGRES_SCHEMES)

    @property
    def effective_instance_name(self) -> str:
        return self.instance_name or f"{socket.gethostname()}:{os.getpid()}"

    @property
    def api_key_list(self) -> tuple[ApiKey, ...]:
        """Every key, the support keys last."""
        keys = parse_keys(self.api_keys) if self.api_keys else ()
        return keys + (parse_keys(self.admin_keys, admin=True) if self.admin_keys else ())

    @property
    def quota_by_key(self) -> dict[str, Quota]:
        return {q.tenant: q for q in parse_quotas(self.quotas)} if self.quotas else {}

    @property
    def delivery_classes(self) -> dict[str, float]:
        """Each class's seconds within which its messages must leave (--class)."""
        return parse_classes(self.classes) if self.classes else {}

    @property
    def effective_rate_burst(self) -> int:
        if self.rate_burst is not None:
            return self.rate_burst
        return max(1, math.ceil(self.rate_limit or 1))

    @property
    def effective_batch_size(self) -> int:
        """Batch sizes of 0 or 1 both mean: send each message at once."""
        return max(1, self.batch_size)

    @property
    def effective_max_attempts(self) -> int:
        """Values below 1 mean one attempt."""
        return max(1, self.max_attempts)

    @classmethod
    def from_sources(
        cls, flags: Mapping[str, str | None], environ: Mapping[str, str]
    ) -> "Config":
        """Build from flag texts (None where not given) over the environment's texts."""
        values: dict[str, Any] = {}
        for option in OPTIONS:
            text = flags.get(option.name)
            if text is None:
                text = environ.get(env_name(option.name))
            if text is not None:
                values[option.name] = option.parse(text)
        return cls(**values)


assert [o.name for o in OPTIONS] == [f.name for f in fields(Config)], "OPTIONS and Config differ"
