"""Where alerts go: the :class:`Sink` base class and the HTTP plumbing the webhook sinks share.

A sink turns an alert into one message and delivers it. Extension points are no-op hooks, as in
middleware: :meth:`Sink.before_deliver`, :meth:`Sink.after_deliver` and
:meth:`Sink.after_give_up` (metrics and tests hook in there). Network sinks are delivered in the
background with retries (:mod:`orchestrator.alerts.delivery`); a delivery that fails raises
:class:`DeliveryError`, which says whether another attempt may succeed.

HTTP sinks post JSON with redirects off (a redirect would resend the body elsewhere), and every
message they log or raise is scrubbed of the URL's secrets (:mod:`orchestrator.alerts.redact`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

import requests

from orchestrator.alerts.model import Alert
from orchestrator.alerts.redact import RedactedUrl, protect_http_logs
from orchestrator.errors import ConfigError, OrchestratorError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_READ_TIMEOUT_S",
    "DeliveryError",
    "Sink",
    "HttpSink",
    "post",
]

DEFAULT_CONNECT_TIMEOUT_S = 3.05
#: Seconds to wait for a receiver's answer: a hung receiver holds only its own sink's queue.
DEFAULT_READ_TIMEOUT_S = 5.0

_RETRYABLE_STATUSES = frozenset({408, 425, 429})


class DeliveryError(OrchestratorError):
    """A message was not delivered. The text never holds a webhook secret.

    Attributes:
        retryable: whether another attempt may succeed (a timeout, a 5xx, a rate limit).
        retry_after_s: the receiver's ``Retry-After``, if any.
    """

    def __init__(
        self, message: str, *, retryable: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class Sink:
    """A destination of alerts. Subclasses implement :meth:`deliver`; the hooks are no-ops.

    Attributes:
        name: short name for logs (``log``, ``webhook``, ``dingtalk``, ...).
        background: deliver in the background with retries (network sinks); false for sinks
            that are quick and local (the log), which run in the raiser's thread.
    """

    name: ClassVar[str] = "sink"
    background: ClassVar[bool] = True

    def deliver(self, alert: Alert) -> None:
        """Deliver one alert.

        Raises:
            DeliveryError: it was not delivered.
        """
        raise NotImplementedError

    def before_deliver(self, alert: Alert) -> None:
        """Called before each attempt to deliver ``alert``."""

    def after_deliver(self, alert: Alert) -> None:
        """Called once ``alert`` was delivered."""

    def after_give_up(self, alert: Alert, error: DeliveryError) -> None:
        """Called when ``alert`` will not be delivered (attempts spent, or a permanent error)."""

    def scrub(self, text: str) -> str:
        """``text`` without this sink's secrets (for logs of unexpected errors)."""
        return text

    def close(self) -> None:
        """Release what the sink holds (connections); called once delivery has stopped."""

    def describe(self) -> str:
        """The sink for logs, without secrets."""
        return self.name


class HttpSink(Sink):
    """A sink that POSTs one JSON message per alert.

    Subclasses build the message in :meth:`payload`, and may check a 2xx answer's body in
    :meth:`check_answer` (chat robots answer 200 with an error code inside).

    Args:
        url: the webhook URL (secrets included; never logged as is).
        timeout_s: connect and read timeouts in seconds.
        session: the HTTP session (injectable for tests); one per sink, used by one thread.

    Raises:
        ConfigError: the URL is not http(s).
    """

    #: The environment variable of the URL, for configuration errors.
    setting: ClassVar[str] = ""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S),
        session: requests.Session | None = None,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            # Not quoting the value: it carries the robot's access token.
            raise ConfigError(f"{self.setting or self.name}: must be an http:// or https:// URL")
        self._url = url
        self.redacted = RedactedUrl(url)
        protect_http_logs(self.redacted)
        self.timeout_s = timeout_s
        self._session = session or requests.Session()

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON message of ``alert``."""
        raise NotImplementedError

    def target(self) -> str:
        """The URL of one attempt (a signing robot appends its signature here)."""
        return self._url

    def headers(self, alert: Alert, body: bytes) -> dict[str, str]:
        """The request headers of one attempt (the signing sink adds its signature here)."""
        return {"Content-Type": "application/json; charset=utf-8"}

    def check_answer(self, response: requests.Response) -> None:
        """Check a 2xx answer; the default accepts every 2xx.

        Raises:
            DeliveryError: the body reports an error.
        """

    def body(self, alert: Alert) -> bytes:
        """The request body: :meth:`payload` as UTF-8 JSON."""
        return json.dumps(self.payload(alert), ensure_ascii=False).encode("utf-8")

    def deliver(self, alert: Alert) -> None:
        body = self.body(alert)
        response = post(
            self._session,
            self.target(),
            body,
            self.headers(alert, body),
            timeout_s=self.timeout_s,
            describe=self.describe(),
            scrub=self.scrub,
        )
        with response:
            self.check_answer(response)

    def scrub(self, text: str) -> str:
        return self.redacted.scrub(text)

    def describe(self) -> str:
        return f"{self.name} {self.redacted.display}"

    def close(self) -> None:
        self._session.close()

    def answer_json(self, response: requests.Response) -> dict[str, Any]:
        """A 2xx answer's JSON object.

        Raises:
            DeliveryError: the body is not a JSON object (retryable: a proxy's error page).
        """
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            snippet = self.scrub(response.text[:200])
            raise DeliveryError(
                f"{self.describe()}: answer is not a JSON object: {snippet}",
                retryable=True,
            )
        return data

    def check_code(
        self, response: requests.Response, field: str, *, retryable: frozenset[int]
    ) -> None:
        """Check a chat robot's answer ``{field: 0, ...}``; a missing field counts as success.

        Raises:
            DeliveryError: the code is not 0 (retryable when it is in ``retryable``).
        """
        data = self.answer_json(response)
        code = data.get(field, 0)
        if code in (0, None):
            return
        message = data.get("errmsg") or data.get("msg") or ""
        raise DeliveryError(
            f"{self.describe()}: {field} {code}: {self.scrub(str(message)[:200])}",
            retryable=isinstance(code, int) and code in retryable,
        )


def post(
    session: requests.Session,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: tuple[float, float],
    describe: str,
    scrub: Callable[[str], str],
) -> requests.Response:
    """POST ``body`` once, redirects off; the 2xx answer (the caller closes it).

    Args:
        session, url, body, headers: the request (the URL is never quoted in errors).
        timeout_s: connect and read timeouts.
        describe: the receiver for error messages, without secrets.
        scrub: removes secrets from texts quoted in errors.

    Raises:
        DeliveryError: a transport error or a timeout (retryable), or a non-2xx answer
            (retryable for 5xx, 408, 425 and 429; with the ``Retry-After`` hint).
    """
    try:
        response = session.post(
            url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False
        )
    except requests.RequestException as exc:
        detail = scrub(str(exc) or type(exc).__name__)
        raise DeliveryError(f"{describe}: {type(exc).__name__}: {detail}", retryable=True) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    with response:
        snippet = scrub(response.text[:200])
        raise DeliveryError(
            f"{describe}: HTTP {status}: {snippet}",
            retryable=status >= 500 or status in _RETRYABLE_STATUSES,
            retry_after_s=_retry_after(response),
        )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class SigningHttpSink(HttpSink):
    """An HTTP sink whose receiver checks a signature made with a shared secret (chat robots
    with a signing setting); subclasses sign each attempt with :attr:`secret` and
    :meth:`now`.

    Args:
        url: the webhook URL.
        secret: the signing secret, if the receiver has one (never logged).
        clock: unix time, for the signatures' timestamps (the vendor's servers check them).
        **options: as for :class:`HttpSink`.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
        **options: Any,
    ) -> None:
        super().__init__(url, **options)
        self.secret = secret or None
        self._clock = clock

    def now(self) -> float:
        """Unix time of this attempt's signature."""
        return self._clock()

    def scrub(self, text: str) -> str:
        text = super().scrub(text)
        return text.replace(self.secret, "**********") if self.secret else text
