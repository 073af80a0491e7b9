"""The API call as the project made it before issue 11's HTTP change, kept for the benches only.

:class:`RequestsKrtcClient` is :class:`orchestrator.krtc.client.KrtcClient` with its transport and
signing replaced by the code of commit 563541a: a pooled ``requests.Session`` (proxies read once,
``trust_env`` off, no retries) and a ``requests`` auth hook that signs through
``requests-aws4auth`` with a cached per-day signer. Validation, the observer, the error mapping
and the response models are the client's own, so that a comparison measures only the HTTP call
and the signing. Needs the ``bench`` extra (``requests-aws4auth``).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from requests_aws4auth import AWS4Auth, AWS4SigningKey
from urllib3.exceptions import NameResolutionError, NewConnectionError

from orchestrator.krtc.auth import AMZ_DATE_FORMAT, SIGNED_HEADERS, Clock, utc_now
from orchestrator.krtc.client import (
    API_VERSION,
    CONTENT_TYPE,
    USER_AGENT,
    KrtcClient,
    _parse_success,
)
from orchestrator.krtc.errors import TransportError, error_for_response
from orchestrator.krtc.models import ApiRequest, SidResponse
from orchestrator.settings import Credentials, Settings

__all__ = ["RequestsKrtcClient"]

R = TypeVar("R", bound=SidResponse)


class _AuthHook(requests.auth.AuthBase):
    """The former ``KopAuth``: signs a prepared request through a cached per-day ``AWS4Auth``."""

    def __init__(
        self, credentials: Credentials, *, region: str, service: str, clock: Clock = utc_now
    ) -> None:
        self._credentials = credentials
        self.region = region
        self.service = service
        self._clock = clock
        self._signers: dict[str, AWS4Auth] = {}
        self._lock = threading.Lock()

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
                    signer = AWS4Auth(
                        self._credentials.access_key, key, include_hdrs=SIGNED_HEADERS
                    )
                    self._signers = {day: signer}
        return signer

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        now = self._clock().astimezone(dt.UTC)
        for name in ("date", "x-amz-date"):
            request.headers.pop(name, None)
        request.headers["x-amz-date"] = now.strftime(AMZ_DATE_FORMAT)
        signed: requests.PreparedRequest = self._signer(now.strftime("%Y%m%d"))(request)
        return signed


def _pooled_session(pool_size: int, url: str) -> requests.Session:
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(url)
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _never_connected(exc: BaseException) -> bool:
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, NewConnectionError | NameResolutionError | requests.ConnectTimeout):
            return True
        stack.extend([e.__cause__, e.__context__, getattr(e, "reason", None), *e.args])
    return False


class RequestsKrtcClient(KrtcClient):
    """``KrtcClient`` over ``requests`` + ``requests-aws4auth`` (the code before the change)."""

    def __init__(self, settings: Settings, *, clock: Clock = utc_now, **kw: Any) -> None:
        super().__init__(settings, clock=clock, **kw)
        self.hook = _AuthHook(
            settings.credentials(), region=settings.region, service=settings.service, clock=clock
        )
        self.session = _pooled_session(settings.http_pool_size, settings.endpoint_url)

    def close(self) -> None:
        self.session.close()
        super().close()

    def prepare_requests(self, request: ApiRequest) -> requests.PreparedRequest:
        prepared = requests.Request(
            "POST",
            self.url,
            data=request.to_wire_bytes(),
            headers={
                "content-type": CONTENT_TYPE,
                "x-action": request.action.value,
                "x-version": API_VERSION,
                "user-agent": USER_AGENT,
            },
            auth=self.hook,
        ).prepare()
        return prepared

    def _send(self, request: ApiRequest, model: type[R]) -> R:
        action = request.action
        try:
            response = self.session.send(self.prepare_requests(request), timeout=self.timeout)
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
