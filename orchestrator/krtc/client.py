"""``KrtcClient``: one method per API action, over a pooled, signed ``requests`` session."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from pydantic import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError

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
from orchestrator.krtc.validation import parse_request
from orchestrator.settings import Settings

__all__ = [
    "API_VERSION",
    "CONTENT_TYPE",
    "CallObserver",
    "KrtcClient",
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


def _pooled_session(pool_size: int, url: str) -> requests.Session:
    session = requests.Session()
    # Proxy settings (HTTPS_PROXY, NO_PROXY...) are read once here rather than from the
    # environment on every call, which cost about 0.6 ms of CPU per call.
    session.proxies = requests.utils.get_environ_proxies(url)
    session.trust_env = False
    # Retries are ours (orchestrator.krtc.retry), never urllib3's: a silent retry of a start
    # would be a duplicate recording.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def build_request(
    url: str, request: ApiRequest, auth: requests.auth.AuthBase | None
) -> requests.PreparedRequest:
    """The HTTP request for ``request``: POST, the spec's headers, the body serialized once.

    With ``auth`` the request is signed (auth runs last, on the final body).
    """
    prepared = requests.Request(
        "POST",
        url,
        data=request.to_wire_bytes(),
        headers={
            "content-type": CONTENT_TYPE,
            "x-action": request.action.value,
            "x-version": API_VERSION,
            "user-agent": USER_AGENT,
        },
        auth=auth,
    ).prepare()
    return prepared


def _never_connected(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NewConnectionError | NameResolutionError | requests.ConnectTimeout):
            return True
        stack.extend([e.__cause__, e.__context__, getattr(e, "reason", None)])
        stack.extend(a for a in e.args if isinstance(a, BaseException))
    return False


class KrtcClient:
    """A synchronous client of the KRTC cloud-recording API.

    Each method validates its request (a model or a plain dict in the spec's shape), signs it,
    sends it once and returns the typed response, or raises a
    :class:`~orchestrator.krtc.errors.KrtcApiError`. It does not retry: callers choose a policy
    (:mod:`orchestrator.krtc.retry`).

    Args:
        settings: endpoint, key pair, region, service and timeouts.
        session: a ``requests.Session`` to send with (default: a pooled one of our own).
        clock: the signing clock (default: the system's UTC time).
        observer: told of every call (action, seconds, error), e.g. to count them.

    Raises:
        ConfigError: when the key pair is not configured.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: requests.Session | None = None,
        clock: Clock = utc_now,
        observer: CallObserver | None = None,
    ) -> None:
        self.settings = settings
        self.observer = observer
        self.auth = KopAuth(
            settings.credentials(), region=settings.region, service=settings.service, clock=clock
        )
        self._own_session = session is None
        self.session = session or _pooled_session(settings.http_pool_size, settings.endpoint_url)
        self.url = settings.endpoint_url
        self.timeout = (settings.connect_timeout_s, settings.read_timeout_s)

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
        if self._own_session:
            self.session.close()

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

    def prepare(self, request: ApiRequest) -> requests.PreparedRequest:
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
        try:
            response = self.session.send(self.prepare(request), timeout=self.timeout)
        except requests.Timeout as exc:
            applied = not _never_connected(exc)
            what = "no answer" if applied else "could not connect"
            raise TransportError(
                action, f"timed out ({what}) calling {self.url}", maybe_applied=applied
            ) from None
        except requests.RequestException as exc:
            applied = not _never_connected(exc)
            what = "connection lost" if applied else "could not connect"
            raise TransportError(
                action, f"{what} calling {self.url}: {type(exc).__name__}", maybe_applied=applied
            ) from None
        text = response.text
        error = error_for_response(action, response.status_code, text, dict(response.headers))
        if error is not None:
            raise error
        return _parse_success(action, model, text, response.status_code)


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
