"""KOP signing: AWS Signature Version 4 over method, URL, headers and body (spec §2, D2, D3).

The signer works on plain values (no HTTP library's request objects): the client signs the exact
bytes it then sends. ``tests/unit/test_auth.py`` cross-checks every signature with botocore's
independent SigV4 implementation.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import posixpath
import re
import threading
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs, quote

from urllib3.util import parse_url

from orchestrator.settings import Credentials

__all__ = [
    "SIGNED_HEADERS",
    "AMZ_DATE_FORMAT",
    "ALGORITHM",
    "Clock",
    "utc_now",
    "KopAuth",
    "host_header",
    "redact_authorization",
]

#: spec D3: the action and version are signed, so that they cannot be altered in transit.
#: ``x-amz-*`` covers ``x-amz-date`` and ``x-amz-content-sha256`` (the hash of the exact body).
SIGNED_HEADERS = frozenset({"host", "content-type", "x-amz-*", "x-action", "x-version"})
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
ALGORITHM = "AWS4-HMAC-SHA256"

Clock = Callable[[], dt.datetime]

_EXACT_SIGNED = frozenset(h for h in SIGNED_HEADERS if not h.endswith("*"))
_PREFIX_SIGNED = tuple(h[:-1] for h in SIGNED_HEADERS if h.endswith("*"))
#: Headers the signer sets itself; any of them in the input is replaced (``date`` is dropped:
#: ``x-amz-date`` is the request's time).
_REPLACED = frozenset({"date", "x-amz-date", "x-amz-content-sha256", "authorization", "host"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SLASHES = re.compile("/+")


def utc_now() -> dt.datetime:
    """The default clock."""
    return dt.datetime.now(dt.UTC)


def _signed(name: str) -> bool:
    """Whether a header (lower-case name) is signed: spec D3's set, ``x-amz-*`` included."""
    return name in _EXACT_SIGNED or (
        name.startswith(_PREFIX_SIGNED) and name != "x-amz-client-context"
    )


def host_header(url: str) -> str:
    """The ``Host`` header of a request to ``url``: host and port, the port left out when it is
    the scheme's default (as HTTP clients send it)."""
    return _url_parts(url)[0]


@functools.lru_cache(maxsize=16)
def _url_parts(url: str) -> tuple[str, str, str]:
    """``url``'s Host header, canonical path and canonical query string (a client signs for one
    URL: worked out once)."""
    parts = parse_url(url)
    host = parts.host or ""
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme or ""):
        host = f"{host}:{parts.port}"
    return host, _canonical_path(parts.path or ""), _canonical_query(parts.query or "")


def _canonical_path(path: str) -> str:
    """The URI's path as SigV4 signs it for a service other than S3: normalized (``.``/``..``,
    repeated slashes) and percent-encoded once more."""
    if not path:
        return "/"
    fixed = _SLASHES.sub("/", posixpath.normpath(path))
    if path.endswith("/") and not fixed.endswith("/"):
        fixed += "/"
    return quote(fixed, safe="/~")


def _canonical_query(query: str) -> str:
    """The query string sorted by name then value, each percent-encoded (SigV4)."""
    if not query:
        return ""
    query = query.split(" ")[0].replace(";", "%3B")
    items: list[tuple[str, str]] = []
    for name, values in parse_qs(query, keep_blank_values=True).items():
        quoted = quote(name, safe="-_.~")
        items += [(quoted, quote(value, safe="-_.~")) for value in values]
    return "&".join(f"{name}={value}" for name, value in sorted(items))


class _DayKey:
    """The signing key of one UTC day and its credential scope. The secret is not kept; the
    derived key signs only that day's requests, and is not shown in ``repr``."""

    def __init__(self, secret: str, day: str, region: str, service: str) -> None:
        self.scope = f"{day}/{region}/{service}/aws4_request"
        key = f"AWS4{secret}".encode()
        for part in (day, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        self._key = key

    def __repr__(self) -> str:
        return f"_DayKey(scope={self.scope!r})"

    def signature(self, string_to_sign: str) -> str:
        return hmac.new(self._key, string_to_sign.encode(), hashlib.sha256).hexdigest()


class KopAuth:
    """Signs requests with a KOP (SigV4) signature.

    :meth:`sign` takes the method, URL, headers and the exact body bytes that will be sent, and
    returns the headers to send: the given ones plus ``Host``, ``x-amz-date``,
    ``x-amz-content-sha256`` and ``Authorization``. The signing key of each UTC day is derived
    once and cached; the secret itself is not kept in the cached keys. Thread-safe: one instance
    serves a whole thread pool.

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
        self._signers: dict[str, _DayKey] = {}
        self._lock = threading.Lock()

    @property
    def access_key(self) -> str:
        return self._credentials.access_key

    def __repr__(self) -> str:
        return (
            f"KopAuth(access_key={self.access_key!r}, region={self.region!r}, "
            f"service={self.service!r})"
        )

    def _signer(self, day: str) -> _DayKey:
        signer = self._signers.get(day)
        if signer is None:
            with self._lock:
                signer = self._signers.get(day)
                if signer is None:
                    signer = _DayKey(
                        self._credentials.secret_key.get_secret_value(),
                        day,
                        self.region,
                        self.service,
                    )
                    # Yesterday's key is of no further use; keep the cache tiny.
                    self._signers = {day: signer}
        return signer

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to send ``body`` to ``url`` with, signed.

        Args:
            method: the HTTP method.
            url: the absolute URL, as it will be sent.
            headers: the request's headers (names in any case); a ``Date``, ``Host``,
                ``x-amz-date``, ``x-amz-content-sha256`` or ``Authorization`` among them is
                replaced.
            body: the exact bytes that will be sent.

        Returns:
            ``headers`` (without the replaced ones) and ``Host``, ``x-amz-date``,
            ``x-amz-content-sha256`` and ``Authorization``, in a new dict.
        """
        now = self._clock().astimezone(dt.UTC)
        amz_date = now.strftime(AMZ_DATE_FORMAT)
        out = {name: value for name, value in headers.items() if name.lower() not in _REPLACED}
        host, path, query = _url_parts(url)
        out["Host"] = host
        out["x-amz-date"] = amz_date
        out["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()

        canonical: dict[str, list[str]] = {}
        for name, value in out.items():
            low = name.lower()
            if _signed(low):
                canonical.setdefault(low, []).append(" ".join(value.split()))
        names = sorted(canonical)
        signed_headers = ";".join(names)
        header_lines = "".join(f"{n}:{','.join(sorted(canonical[n]))}\n" for n in names)
        canonical_request = "\n".join(
            (
                method.upper(),
                path,
                query,
                header_lines,
                signed_headers,
                out["x-amz-content-sha256"],
            )
        )
        signer = self._signer(amz_date[:8])
        string_to_sign = "\n".join(
            (
                ALGORITHM,
                amz_date,
                signer.scope,
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            )
        )
        out["Authorization"] = (
            f"{ALGORITHM} Credential={self.access_key}/{signer.scope}, "
            f"SignedHeaders={signed_headers}, Signature={signer.signature(string_to_sign)}"
        )
        return out


def redact_authorization(value: str) -> str:
    """An ``Authorization`` header with its signature masked, for display."""
    head, sep, _ = value.rpartition("Signature=")
    return f"{head}{sep}<redacted>" if sep else "<redacted>"
