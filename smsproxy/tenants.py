"""API keys as tenants: each key has a name, which its messages, its quota and its
bill are counted under (never the key itself, which is a secret).

``--api-keys`` takes ``NAME=KEY`` entries, comma-separated; a bare ``KEY`` is named
by a digest of it (``key:1a2b...``), as before names existed. ``--admin-keys``
takes support keys, which see every tenant's messages and manage the suppression
list. ``--quota NAME=N`` caps a key at N messages per UTC day.
"""

import hashlib
import re
from dataclasses import dataclass

from smsproxy.compliance import Quota

__all__ = ["KEY_NAME", "ApiKey", "name_of_bare_key", "parse_keys", "parse_quotas"]

KEY_NAME = re.compile(r"[A-Za-z0-9_.-]{1,40}")
"""A key's name: shown in /stats, /metrics and logs, so plain and short."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    key: str
    admin: bool = False


def name_of_bare_key(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def parse_keys(text: str, admin: bool = False) -> tuple[ApiKey, ...]:
    """``NAME=KEY`` (or a bare ``KEY``) entries; ValueError naming what is wrong (never
    the key)."""
    keys = []
    for number, entry in enumerate(text.split(","), start=1):
        name, equals, key = entry.strip().partition("=")
        if not equals:
            name, key = "", name
        name, key = name.strip(), key.strip()
        if not key:
            raise ValueError(f"entry {number} has no key")
        if equals and not KEY_NAME.fullmatch(name):
            raise ValueError(f"entry {number}: a key's name is 1-40 letters, digits, '.', "
                             "'_' or '-'")
        keys.append(ApiKey(name if equals else name_of_bare_key(key), key, admin))
    names = [k.name for k in keys]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"names given twice: {', '.join(repeated)}")
    return tuple(keys)


def parse_quotas(text: str) -> tuple[Quota, ...]:
    """``NAME=N`` entries, comma-separated: N messages a UTC day at most (N >= 1)."""
    quotas = []
    for entry in text.split(","):
        name, equals, limit = entry.strip().partition("=")
        if not equals or not KEY_NAME.fullmatch(name.strip()):
            raise ValueError(f"{entry.strip()!r} is not NAME=N")
        try:
            count = int(limit)
        except ValueError:
            raise ValueError(f"{entry.strip()!r}: N must be a whole number") from None
        if count < 1:
            raise ValueError(f"{entry.strip()!r}: N must be 1 or more")
        quotas.append(Quota(name.strip(), count))
    return tuple(quotas)
