"""Signed provider callbacks: HMAC-SHA256 over a timestamp and the raw body.

    X-FastSMSing-Timestamp: 1764180000
    X-FastSMSing-Signature: sha256=<hex HMAC-SHA256 of b"1764180000." + body>

The timestamp is signed with the body, so a captured callback cannot be replayed
once it is older than the tolerance: a stale signature is refused like a wrong one.
"""

import hashlib
import hmac

__all__ = ["DEFAULT_TOLERANCE", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-FastSMSing-Signature"
TIMESTAMP_HEADER = "X-FastSMSing-Timestamp"
DEFAULT_TOLERANCE = 300.0
"""Seconds a signed callback stays valid, either side of our clock."""


def sign(body: bytes, secret: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(
    body: bytes,
    secret: str,
    signature: str | None,
    timestamp: str | None,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str | None:
    """``None`` when the signature is good; otherwise why it is not."""
    if not signature or not timestamp:
        return "missing signature"
    # Digits only: int() would also take "+1764180000", " 1764180000" or "1_764_180_000",
    # and a signature made over one spelling would then pass for another.
    if not (timestamp.isascii() and timestamp.isdigit()):
        return "malformed timestamp"
    signed_at = int(timestamp)
    if abs(now - signed_at) > tolerance:
        return "stale signature"
    if not hmac.compare_digest(sign(body, secret, signed_at), signature):
        return "wrong signature"
    return None
