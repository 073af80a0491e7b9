"""Standard Webhooks signatures (https://www.standardwebhooks.com): how events are signed.

Every POST carries three headers::

    webhook-id: msg_...                      the event's id, the same on every retry
    webhook-timestamp: 1700000000            unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">

The key is the secret's bytes: ``KRTC_EVENTS_WEBHOOK_SECRET`` is ``whsec_`` followed by their
base64. A receiver recomputes the HMAC, compares in constant time with each space-separated
``v1,`` signature of the header (several during a key rotation) and rejects timestamps more
than :data:`DEFAULT_TOLERANCE_S` away from its clock, so a captured request cannot be replayed.
The README shows the check standalone in Python and Node.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

from orchestrator.errors import ConfigError

__all__ = [
    "SECRET_PREFIX",
    "DEFAULT_TOLERANCE_S",
    "decode_secret",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"
#: Seconds a timestamp stays acceptable (either way, for clock skew).
DEFAULT_TOLERANCE_S = 300


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret.

    Raises:
        ConfigError: not of that form (the value is never quoted).
    """
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigError(f"KRTC_EVENTS_WEBHOOK_SECRET: must start with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"KRTC_EVENTS_WEBHOOK_SECRET: not {SECRET_PREFIX} followed by base64"
        ) from None
    if not key:
        raise ConfigError("KRTC_EVENTS_WEBHOOK_SECRET: the key is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(
    key: bytes | None, msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The ``webhook-*`` headers of one attempt (no signature without a key)."""
    timestamp = int(time.time() if now is None else now)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if key is not None:
        headers["webhook-signature"] = sign(key, msg_id, timestamp, body)
    return headers


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``headers`` sign ``body`` with ``secret`` at an acceptable time."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance_s:
        return False
    expected = sign(decode_secret(secret), msg_id, int(timestamp), body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in lowered.get("webhook-signature", "").split()
    )
