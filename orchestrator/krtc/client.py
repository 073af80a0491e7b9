"""``KrtcClient``: one method per API action, signed, over a urllib3 connection pool."""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from pydantic import ValidationError
from urllib3 import HTTPHeaderDict
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, TimeoutError
from urllib3.util import parse_url

from orchestrator.krtc.auth import Clock, KopAuth, utc_now
from orchestrator.krtc.enums import Action
from orchestrator.krtc.errors import ServerError, TransportError, error_for_response
from orchestrator.krtc.models import (
    RESPONSE_MODELS,
    ApiRequest,
    QueryRequest,
    QueryResponse,
    SidResponse,
    StartRequest,
    StartResponse,
    StopRequest,
    StopResponse,
    UpdateLayoutRequest,
    UpdateLayoutResponse,
    UpdateRequest,
    UpdateResponse,
)
from orchestrator.krtc.transport import NO_RETRIES, connection_pool, environ_proxy, redact_proxy
from orchestrator.krtc.validation import parse_request
from orchestrator.settings import Settings

__all__ = [
    "API_VERSION",
    "CONTENT_TYPE",
    "CallObserver",
    "KrtcClient",
    "PreparedCall",
    "RequestLike",
    "build_request",
]

log = logging.getLogger("orchestrator.krtc")

API_VERSION = "v1"
CONTENT_TYPE = "application/json;charset=UTF-8"
USER_AGENT = "krtc-orchestrator/0.1"

R = TypeVar("R", bound=SidResponse)
RequestLike = ApiRequest | Mapping[str, Any]
#: Told of every call once it ends: ``(action, seconds, error or None)``. Metrics plug in here
#: (:class:`orchestrator.metrics.MetricsRecorder`); an observer that raises is logged and ignored.
CallObserver = Callable[[Action, float, BaseException | None], None]


@dataclass(slots=True, repr=False)
class PreparedCall:
    """An HTTP request ready to send: the method, URL, headers and the exact body bytes.

    ``headers`` is case-insensitive. Its ``repr`` shows neither the headers nor the body (the
    body may carry a storage secret).
    """

    method: str
    url: str
    headers: HTTPHeaderDict
    body: bytes

    def __repr__(self) -> str:
        return f"<PreparedCall [{self.method} {self.url} {self.headers.get('x-action')}]>"


def build_request(url: str, request: ApiRequest, auth: KopAuth | None) -> PreparedCall:
    """The HTTP request for ``request``: POST, the spec's headers, the body serialized once.

    With ``auth`` the request is signed over the exact body bytes it carries (and gets the
    ``Host`` header it was signed with).
    """
    body = request.to_wire_bytes()
    headers = {
        "content-type": CONTENT_TYPE,
        "x-action": request.action.value,
        "x-version": API_VERSION,
        "user-agent": USER_AGENT,
        "Content-Length": str(len(body)),
    }
    if auth is not None:
        headers = auth.sign("POST", url, headers, body)
    return PreparedCall("POST", url, HTTPHeaderDict(headers), body)


def _never_connected(exc: BaseException) -> bool:
    """Whether the request surely never reached the server: no connection, or a TLS handshake
    that refused the server's certificate."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        # NewConnectionError (and NameResolutionError) subclass ConnectTimeoutError.
        if isinstance(e, ConnectTimeoutError | ssl.SSLCertVerificationError):
            return True
        stack.extend([e.__cause__, e.__context__, getattr(e, "reason", None), *e.args])
    return False


def _transport_error(action: Action, url: str, exc: HTTPError) -> TransportError:
    applied = not _never_connected(exc)
    if isinstance(exc, TimeoutError) and not isinstance(exc, NewConnectionError):
        what = "no answer" if applied else "could not connect"
        return TransportError(action, f"timed out ({what}) calling {url}", maybe_applied=applied)
    what = "connection lost" if applied else "could not connect"
    return TransportError(
        action, f"{what} calling {url}: {type(exc).__name__}", maybe_applied=applied
    )


def _text(data: bytes, content_type: str | None) -> str:
    """The body as text: in the charset ``content-type`` names, else UTF-8 (JSON's)."""
    charset = "utf-8"
    if content_type:
        for param in content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip("\"'")
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


class KrtcClient:
    """A synchronous client of the KRTC cloud-recording API.

    Each method validates its request (a model or a plain dict in the spec's shape), signs it,
    sends it once and returns the typed response, or raises a
    :class:`~orchestrator.krtc.errors.KrtcApiError`. It does not retry, and neither does its
    connection pool: callers choose a policy (:mod:`orchestrator.krtc.retry`).

    A proxy named by ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` (unless ``NO_PROXY`` exempts
    the endpoint) is read once, here; TLS certificates are verified (certifi's CA bundle).

    Args:
        settings: endpoint, key pair, region, service, timeouts and pool size.
        http: a urllib3 ``PoolManager`` (or ``ProxyManager``) or a ``HTTPConnectionPool`` to the
            endpoint's host to send with (default: a pool of our own, through the proxy from
            the environment if there is one). Retries are disabled on every call whatever its
            settings.
        clock: the signing clock (default: the system's UTC time).
        observer: told of every call (action, seconds, error), e.g. to count them.

    Raises:
        ConfigError: when the key pair is not configured, or the proxy from the environment is
            not usable.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: urllib3.PoolManager | urllib3.HTTPConnectionPool | None = None,
        clock: Clock = utc_now,
        observer: CallObserver | None = None,
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.auth = KopAuth(
            settings.credentials(), region=settings.region, service=settings.service, clock=clock
        )
        self.url = settings.endpoint_url
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._timeout = urllib3.Timeout(
            connect=settings.connect_timeout_s, read=settings.read_timeout_s
        )
        proxy = environ_proxy(self.url) if http is None else None
        #: The proxy the calls go through (from the environment; password masked), or ``None``.
        self.proxy = redact_proxy(proxy) if proxy else None
        self._own_http = http is None
        self.http = http or connection_pool(
            self.url, size=settings.http_pool_size, timeout=self._timeout, proxy=proxy
        )
        # A pool of one host takes the path; a manager, the whole URL.
        self._target = (
            parse_url(self.url).request_uri
            if isinstance(self.http, urllib3.HTTPConnectionPool)
            else self.url
        )

    @classmethod
    def from_env(cls) -> KrtcClient:
        """A client configured from ``KRTC_*`` environment variables."""
        return cls(Settings())

    def __enter__(self) -> KrtcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool, if it is ours."""
        if not self._own_http:
            return
        if isinstance(self.http, urllib3.HTTPConnectionPool):
            self.http.close()
        else:
            self.http.clear()

    def start(self, request: StartRequest | Mapping[str, Any]) -> StartResponse:
        """Start a recording; the response's ``sid`` names it from then on."""
        response = self._call(self._coerce(Action.START, request), StartResponse)
        if not response.sid:
            raise ServerError(Action.START, "the server answered without a sid", status=200)
        return response

    def update(self, request: UpdateRequest | Mapping[str, Any]) -> UpdateResponse:
        """Change which users' audio and video are recorded."""
        return self._call(self._coerce(Action.UPDATE, request), UpdateResponse)

    def query(self, request: QueryRequest | Mapping[str, Any]) -> QueryResponse:
        """The recording's status and files."""
        return self._call(self._coerce(Action.QUERY, request), QueryResponse)

    def update_layout(
        self, request: UpdateLayoutRequest | Mapping[str, Any]
    ) -> UpdateLayoutResponse:
        """Change the mixed-video layout (mix mode only)."""
        return self._call(self._coerce(Action.UPDATE_LAYOUT, request), UpdateLayoutResponse)

    def stop(self, request: StopRequest | Mapping[str, Any]) -> StopResponse:
        """Stop the recording; it leaves the channel."""
        return self._call(self._coerce(Action.STOP, request), StopResponse)

    def call(self, request: ApiRequest) -> SidResponse:
        """Call the action of ``request`` and return its typed response."""
        return self._call(request, RESPONSE_MODELS[request.action])

    def prepare(self, request: ApiRequest) -> PreparedCall:
        """The signed HTTP request that would be sent, without sending it."""
        return build_request(self.url, request, self.auth)

    @staticmethod
    def _coerce(action: Action, request: ApiRequest | Mapping[str, Any]) -> ApiRequest:
        if isinstance(request, ApiRequest):
            if request.action != action:
                raise TypeError(f"expected a {action.value} request, got {type(request).__name__}")
            return request
        return parse_request(action, dict(request))

    def _call(self, request: ApiRequest, model: type[R]) -> R:
        if self.observer is None:
            return self._send(request, model)
        started = time.perf_counter()
        try:
            result = self._send(request, model)
        except BaseException as exc:
            self._observe(request.action, time.perf_counter() - started, exc)
            raise
        self._observe(request.action, time.perf_counter() - started, None)
        return result

    def _observe(self, action: Action, seconds: float, error: BaseException | None) -> None:
        assert self.observer is not None
        try:
            self.observer(action, seconds, error)
        except Exception:  # an observer must never turn a call's outcome into another
            log.exception("the API call observer failed (ignored)")

    def _send(self, request: ApiRequest, model: type[R]) -> R:
        action = request.action
        prepared = self.prepare(request)
        try:
            response = self.http.urlopen(
                prepared.method,
                self._target,
                body=prepared.body,
                headers=prepared.headers,
                retries=NO_RETRIES,
                redirect=False,
                timeout=self._timeout,
                preload_content=True,
            )
        except HTTPError as exc:
            raise _transport_error(action, self.url, exc) from None
        text = _text(response.data, response.headers.get("content-type"))
        error = error_for_response(action, response.status, text, dict(response.headers))
        if error is not None:
            raise error
        return _parse_success(action, model, text, response.status)


def _parse_success(action: Action, model: type[R], text: str, status: int) -> R:
    try:
        data = json.loads(text) if text.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return model.model_validate(data)
    except (ValueError, ValidationError):
        raise ServerError(
            action, "the server's answer is not the expected JSON", status=status, body=text
        ) from None
