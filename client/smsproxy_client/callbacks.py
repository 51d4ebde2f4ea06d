"""Checking that a callback came from smsproxy: its signature and its age.

smsproxy signs each callback with ``--callback-secret``: ``X-Smsproxy-Timestamp`` (Unix
seconds) and ``X-Smsproxy-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw
body>``. Check the raw bytes as they arrived, before parsing them.
"""

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from smsproxy_client._errors import InvalidSignature

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "verify_callback"]

SIGNATURE_HEADER = "X-Smsproxy-Signature"
TIMESTAMP_HEADER = "X-Smsproxy-Timestamp"


def verify_callback(body: bytes, headers: Mapping[str, str], secret: str, *,
                    max_age: float = 300.0, now: float | None = None) -> dict[str, Any]:
    """The callback's event (status or ``inbound``), once its signature matches and it
    was signed at most ``max_age`` seconds from ``now``; otherwise
    :class:`InvalidSignature` saying why. Headers are matched case-insensitively."""
    lower = {name.lower(): value for name, value in headers.items()}
    signature = lower.get(SIGNATURE_HEADER.lower())
    stamp = lower.get(TIMESTAMP_HEADER.lower())
    if not signature or not stamp:
        raise InvalidSignature("missing signature or timestamp")
    try:
        signed_at = int(stamp)
    except ValueError:
        raise InvalidSignature("malformed timestamp") from None
    if abs((time.time() if now is None else now) - signed_at) > max_age:
        raise InvalidSignature("stale signature: replayed, or a clock is off")
    digest = hmac.new(secret.encode(), f"{signed_at}.".encode() + body, hashlib.sha256)
    if not hmac.compare_digest(signature, f"sha256={digest.hexdigest()}"):
        raise InvalidSignature("wrong signature")
    event = json.loads(body)
    if not isinstance(event, dict):
        raise InvalidSignature("the body is not an event")
    return event
