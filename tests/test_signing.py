"""Callback signatures: HMAC-SHA256 over timestamp and body, refused when stale."""

import pytest

from smsproxy.signing import sign, verify

BODY = b'{"id-1": "DELIVERED"}'
NOW = 1_764_180_000


def test_good_signature_passes():
    assert verify(BODY, "s3cret", sign(BODY, "s3cret", NOW), str(NOW), now=NOW + 10) is None


@pytest.mark.parametrize(
    ("signature", "timestamp", "now", "problem"),
    [
        (None, str(NOW), NOW, "missing signature"),
        (sign(BODY, "s3cret", NOW), None, NOW, "missing signature"),
        (sign(BODY, "other", NOW), str(NOW), NOW, "wrong signature"),
        (sign(BODY, "s3cret", NOW), str(NOW + 1), NOW, "wrong signature"),
        ("sha256=" + "0" * 64, str(NOW), NOW, "wrong signature"),
        (sign(BODY, "s3cret", NOW), "yesterday", NOW, "malformed timestamp"),
        (sign(BODY, "s3cret", NOW), f"+{NOW}", NOW, "malformed timestamp"),
        (sign(BODY, "s3cret", NOW), f" {NOW}", NOW, "malformed timestamp"),
        (sign(BODY, "s3cret", NOW), f"{NOW:_}", NOW, "malformed timestamp"),
        (sign(BODY, "s3cret", NOW), "١٧٦٤١٨٠٠٠٠", NOW, "malformed timestamp"),  # Arabic digits
        (sign(BODY, "s3cret", NOW), str(NOW), NOW + 301, "stale signature"),
        (sign(BODY, "s3cret", NOW), str(NOW), NOW - 301, "stale signature"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(signature, timestamp, now, problem):
    assert verify(BODY, "s3cret", signature, timestamp, now=now) == problem


def test_a_tampered_body_is_refused():
    signature = sign(BODY, "s3cret", NOW)
    assert verify(b'{"id-1": "FAILED"}', "s3cret", signature, str(NOW), now=NOW) == (
        "wrong signature"
    )


def test_signature_format():
    assert sign(BODY, "k", NOW).startswith("sha256=")
    assert len(sign(BODY, "k", NOW)) == len("sha256=") + 64
