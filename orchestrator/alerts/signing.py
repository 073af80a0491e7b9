"""Signatures of the generic webhook, and how a receiver checks them.

With ``KRTC_ALERT_WEBHOOK_SECRET`` set, every POST carries two headers::

    X-KRTC-Timestamp: 1700000000
    X-KRTC-Signature: sha256=<hex HMAC-SHA256 of b"<timestamp>." + body, keyed with the secret>

The timestamp is inside the signed bytes so a captured request cannot be replayed later with a
fresh timestamp; a receiver rejects timestamps older than a few minutes
(:data:`DEFAULT_TOLERANCE_S`). Retries of one delivery are signed again at their own time.
:func:`verify` is the reference check (docs/alerts.md shows it standalone).
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DELIVERY_HEADER",
    "DEFAULT_TOLERANCE_S",
    "sign",
    "signature_headers",
    "verify",
]

SIGNATURE_HEADER = "X-KRTC-Signature"
TIMESTAMP_HEADER = "X-KRTC-Timestamp"
#: The alert id, the same on every retry: receivers drop a delivery they have seen.
DELIVERY_HEADER = "X-KRTC-Alert-Id"
#: Seconds a signature stays acceptable (either way, for clock skew).
DEFAULT_TOLERANCE_S = 300

_SCHEME = "sha256="


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-KRTC-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    message = str(timestamp).encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return _SCHEME + digest


def signature_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The timestamp and signature headers of one POST of ``body``."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether a received POST was signed with ``secret`` recently.

    Args:
        secret: the shared secret (``KRTC_ALERT_WEBHOOK_SECRET``).
        body: the raw request body, exactly as received (not re-serialized JSON).
        timestamp: the ``X-KRTC-Timestamp`` header.
        signature: the ``X-KRTC-Signature`` header.
        tolerance_s: how far the timestamp may be from ``now``.
        now: the receiver's time, unix seconds (default: the clock).

    Returns:
        True only if the signature matches and the timestamp is within the tolerance.
    """
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)
