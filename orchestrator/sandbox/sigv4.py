"""Server-side verification of KOP (AWS Signature Version 4) signatures (spec §2, D2, D3).

A request is accepted when its ``Authorization`` header::

    AWS4-HMAC-SHA256 Credential=<AK>/<yyyymmdd>/<region>/<service>/aws4_request,
        SignedHeaders=<h1;h2;...>, Signature=<hex>

names a known access key and the configured scope, signs at least the headers of spec D3, carries an
``x-amz-date`` within the allowed skew, and its signature equals the one computed here over the
canonical request (method, path, query, the signed headers, SHA-256 of the raw body).

The signing key of each (access key, day) is derived once and cached.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus

__all__ = [
    "ALGORITHM",
    "REQUIRED_SIGNED_HEADERS",
    "SignatureError",
    "Authorization",
    "parse_authorization",
    "derive_signing_key",
    "canonical_request",
    "string_to_sign",
    "parse_amz_date",
    "SigV4Verifier",
]

ALGORITHM = "AWS4-HMAC-SHA256"
#: spec D3: the headers every request must sign, so that the action cannot be altered in transit.
REQUIRED_SIGNED_HEADERS = ("host", "x-amz-date", "x-action", "x-version", "content-type")

_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SPACES = re.compile(r"\s+")
_MAX_CACHED_KEYS = 64


class SignatureError(Exception):
    """The request's signature is missing or does not verify; ``reason`` says why (HTTP 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        """``yyyymmdd/region/service/aws4_request``."""
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


def parse_authorization(value: str) -> Authorization:
    """Parse an ``Authorization`` header.

    Raises:
        SignatureError: when it is not a well-formed AWS4-HMAC-SHA256 header.
    """
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SignatureError(f"unsupported signature algorithm: the header must start {ALGORITHM}")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if sep:
            parts[name.strip()] = val.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if not parts.get(n)]
    if missing:
        raise SignatureError(f"malformed Authorization header: no {', '.join(missing)}")
    credential = parts["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request" or not all(credential):
        raise SignatureError(
            "malformed Authorization header: Credential must be "
            "<access key>/<yyyymmdd>/<region>/<service>/aws4_request"
        )
    return Authorization(
        access_key=credential[0],
        date=credential[1],
        region=credential[2],
        service=credential[3],
        signed_headers=tuple(parts["SignedHeaders"].split(";")),
        signature=parts["Signature"].lower(),
    )


def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key: HMAC chain over the date, region, service and ``aws4_request``."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append(
            (quote(unquote_plus(name), safe="-_.~"), quote(unquote_plus(value), safe="-_.~"))
        )
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    payload_hash: str,
) -> str:
    """The canonical request of SigV4.

    Args:
        method: the HTTP method.
        path: the raw (still percent-encoded) path, as received.
        query: the raw query string, without ``?``.
        headers: header values by lower-case name.
        signed_headers: the lower-case names listed in ``SignedHeaders``, in that order.
        payload_hash: hex SHA-256 of the body.
    """
    lines = "".join(
        f"{name}:{_SPACES.sub(' ', headers.get(name, '').strip())}\n" for name in signed_headers
    )
    return "\n".join(
        (
            method.upper(),
            quote(path or "/", safe="/~"),
            _canonical_query(query),
            lines,
            ";".join(signed_headers),
            payload_hash,
        )
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """The string that is HMAC-ed with the signing key."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def parse_amz_date(value: str) -> float:
    """Unix time of an ``x-amz-date`` (``yyyymmddThhmmssZ``).

    Raises:
        SignatureError: when it is not in that format.
    """
    if not _AMZ_DATE.fullmatch(value):
        raise SignatureError(f"x-amz-date must be yyyymmddThhmmssZ, got {value[:40]!r}")
    try:
        fields = (value[0:4], value[4:6], value[6:8], value[9:11], value[11:13], value[13:15])
        year, month, day, hour, minute, second = (int(f) for f in fields)
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
            raise ValueError(value)
        return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except ValueError:
        raise SignatureError(f"x-amz-date is not a valid time: {value!r}") from None


class SigV4Verifier:
    """Verifies the signature of requests made with one of a set of key pairs.

    Args:
        keys: secret key by access key.
        region, service: the scope every credential must name.
        max_skew_s: the largest accepted distance between ``x-amz-date`` and the clock.
        clock: Unix time now (inject a fixed one in tests).
    """

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        region: str,
        service: str,
        max_skew_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = dict(keys)
        self.region = region
        self.service = service
        self.max_skew_s = max_skew_s
        self._clock = clock
        self._signing_keys: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"SigV4Verifier(access_keys={sorted(self._keys)!r}, region={self.region!r})"

    def _signing_key(self, access_key: str, date: str) -> bytes:
        key = self._signing_keys.get((access_key, date))
        if key is None:
            if len(self._signing_keys) >= _MAX_CACHED_KEYS:
                self._signing_keys.clear()
            key = derive_signing_key(self._keys[access_key], date, self.region, self.service)
            self._signing_keys[(access_key, date)] = key
        return key

    def verify(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        """Check a request's signature and return its access key.

        Args:
            headers: header values by lower-case name.

        Raises:
            SignatureError: with the reason the request is refused.
        """
        value = headers.get("authorization")
        if not value:
            raise SignatureError(
                f"missing Authorization header: requests must be signed ({ALGORITHM})"
            )
        auth = parse_authorization(value)
        if auth.access_key not in self._keys:
            raise SignatureError(f"unknown access key {auth.access_key!r}")
        if (auth.region, auth.service) != (self.region, self.service):
            raise SignatureError(
                f"credential scope {auth.region}/{auth.service} does not match the server's "
                f"{self.region}/{self.service} (KRTC_REGION / KRTC_SERVICE)"
            )
        unsigned = [h for h in REQUIRED_SIGNED_HEADERS if h not in auth.signed_headers]
        if unsigned:
            raise SignatureError(f"header(s) {', '.join(unsigned)} must be signed (spec D3)")
        absent = [h for h in auth.signed_headers if h not in headers]
        if absent:
            raise SignatureError(f"signed header(s) {', '.join(absent)} missing from the request")
        amz_date = headers["x-amz-date"]
        signed_at = parse_amz_date(amz_date)
        if amz_date[:8] != auth.date:
            raise SignatureError(
                f"credential date {auth.date} does not match x-amz-date {amz_date}"
            )
        skew = signed_at - self._clock()
        if abs(skew) > self.max_skew_s:
            raise SignatureError(
                f"request time too skewed: x-amz-date {amz_date} is {abs(skew):.0f} s "
                f"{'ahead of' if skew > 0 else 'behind'} the server's clock "
                f"(at most {self.max_skew_s:.0f} s allowed; check this machine's clock)"
            )
        payload_hash = hashlib.sha256(body).hexdigest()
        claimed = headers.get("x-amz-content-sha256")
        if claimed is not None and claimed.lower() != payload_hash:
            raise SignatureError("x-amz-content-sha256 does not match the SHA-256 of the body")
        canonical = canonical_request(
            method, path, query, headers, auth.signed_headers, payload_hash
        )
        to_sign = string_to_sign(amz_date, auth.scope, canonical)
        expected = hmac.new(
            self._signing_key(auth.access_key, auth.date), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        # Bytes, not str: compare_digest refuses non-ASCII text, and a header may carry any.
        if not hmac.compare_digest(expected.encode(), auth.signature.encode("utf-8", "replace")):
            raise SignatureError(
                "signature does not match (check the secret key, and that the body, path and "
                "signed headers are sent exactly as signed)"
            )
        return auth.access_key
