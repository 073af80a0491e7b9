"""The generic webhook: the alert itself as JSON, optionally HMAC-signed.

Body: every field of :class:`orchestrator.alerts.Alert` plus ``"type": "krtc.alert"`` and
``"title"``. Headers: ``X-KRTC-Alert-Id`` (the same on every retry) and, with a secret,
``X-KRTC-Timestamp`` and ``X-KRTC-Signature`` (:mod:`orchestrator.alerts.signing`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

import requests

from orchestrator.alerts.model import Alert
from orchestrator.alerts.render import title
from orchestrator.alerts.signing import DELIVERY_HEADER, signature_headers
from orchestrator.alerts.sinks.base import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    HttpSink,
)

__all__ = ["WebhookSink", "PAYLOAD_TYPE"]

#: The ``type`` field of every body, so a receiver shared with other senders can tell ours.
PAYLOAD_TYPE = "krtc.alert"


class WebhookSink(HttpSink):
    """POSTs the alert as JSON to ``KRTC_ALERT_WEBHOOK_URL``.

    Args:
        url: the receiver.
        secret: the HMAC key (``KRTC_ALERT_WEBHOOK_SECRET``); ``None``: unsigned.
        clock: unix time for the signature's timestamp (injectable for tests).
        timeout_s, session: as for :class:`HttpSink`.
    """

    name: ClassVar[str] = "webhook"
    setting: ClassVar[str] = "KRTC_ALERT_WEBHOOK_URL"

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S),
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(url, timeout_s=timeout_s, session=session)
        self._secret = secret or None
        self._clock = clock

    @property
    def is_signed(self) -> bool:
        """Whether requests carry a signature."""
        return self._secret is not None

    def payload(self, alert: Alert) -> dict[str, Any]:
        data: dict[str, Any] = {"type": PAYLOAD_TYPE, "title": title(alert)}
        data.update(json.loads(alert.model_dump_json()))
        return data

    def headers(self, alert: Alert, body: bytes) -> dict[str, str]:
        headers = super().headers(alert, body)
        headers[DELIVERY_HEADER] = alert.id
        if self._secret is not None:
            headers.update(signature_headers(self._secret, body, now=self._clock()))
        return headers

    def scrub(self, text: str) -> str:
        text = super().scrub(text)
        return text.replace(self._secret, "***") if self._secret else text
