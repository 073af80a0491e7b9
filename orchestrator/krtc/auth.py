"""KOP request signing: AWS Signature Version 4 through ``requests-aws4auth`` (spec §2, D2, D3)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import requests
from requests_aws4auth import AWS4Auth, AWS4SigningKey

from orchestrator.settings import Credentials

__all__ = [
    "SIGNED_HEADERS",
    "AMZ_DATE_FORMAT",
    "Clock",
    "utc_now",
    "KopAuth",
    "redact_authorization",
]

#: spec D3: the action and version are signed, so that they cannot be altered in transit.
#: ``x-amz-*`` covers ``x-amz-date`` and ``x-amz-content-sha256`` (the hash of the exact body).
SIGNED_HEADERS = frozenset({"host", "content-type", "x-amz-*", "x-action", "x-version"})
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The default clock."""
    return dt.datetime.now(dt.UTC)


class KopAuth(requests.auth.AuthBase):
    """Signs a prepared request with a KOP (SigV4) signature.

    ``requests`` applies auth last, after the body is final, so the signed bytes are the sent bytes.
    The signing key of each UTC day is derived once and cached; the secret itself is not kept in the
    signer objects. Thread-safe: one instance serves a whole thread pool.

    Args:
        credentials: the key pair.
        region: signing region (``KRTC_REGION``, default ``cn-beijing-6``).
        service: signing service (``KRTC_SERVICE``, default ``krtc``).
        clock: returns the current UTC time; inject a fixed one for reproducible signatures.
    """

    def __init__(
        self, credentials: Credentials, *, region: str, service: str, clock: Clock = utc_now
    ) -> None:
        self._credentials = credentials
        self.region = region
        self.service = service
        self._clock = clock
        self._signers: dict[str, AWS4Auth] = {}
        self._lock = threading.Lock()

    @property
    def access_key(self) -> str:
        return self._credentials.access_key

    def __repr__(self) -> str:
        return (
            f"KopAuth(access_key={self.access_key!r}, region={self.region!r}, "
            f"service={self.service!r})"
        )

    def _signer(self, day: str) -> AWS4Auth:
        signer = self._signers.get(day)
        if signer is None:
            with self._lock:
                signer = self._signers.get(day)
                if signer is None:
                    key = AWS4SigningKey(
                        self._credentials.secret_key.get_secret_value(),
                        self.region,
                        self.service,
                        day,
                        store_secret_key=False,
                    )
                    signer = AWS4Auth(self.access_key, key, include_hdrs=SIGNED_HEADERS)
                    # Yesterday's key is of no further use; keep the cache tiny.
                    self._signers = {day: signer}
        return signer

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        now = self._clock().astimezone(dt.UTC)
        for name in ("date", "x-amz-date"):
            request.headers.pop(name, None)
        request.headers["x-amz-date"] = now.strftime(AMZ_DATE_FORMAT)
        signed: requests.PreparedRequest = self._signer(now.strftime("%Y%m%d"))(request)
        return signed


def redact_authorization(value: str) -> str:
    """An ``Authorization`` header with its signature masked, for display."""
    head, sep, _ = value.rpartition("Signature=")
    return f"{head}{sep}<redacted>" if sep else "<redacted>"
