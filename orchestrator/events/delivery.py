"""Delivering lifecycle events: one lane per process takes heads from the outbox and POSTs them.

Each attempt is signed anew (:mod:`orchestrator.events.signing`) with the event's id as
``webhook-id``; the body is the same bytes every time. A non-2xx answer, a timeout or a refused
connection is retried after capped, fully jittered exponential backoff (a ``Retry-After`` as a
floor) until ``KRTC_EVENTS_RETRY_FOR_S`` after the event was queued; then it becomes a dead
letter (``krtc-rec events list`` shows it, ``krtc-rec events replay`` sends it again) and a
``dead_letter`` alert is raised. Redirects are never followed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from orchestrator.alerts.delivery import DeliveryPolicy, backoff_s
from orchestrator.alerts.redact import RedactedUrl, protect_http_logs
from orchestrator.alerts.sinks.base import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_READ_TIMEOUT_S,
    DeliveryError,
    post,
)
from orchestrator.errors import ConfigError
from orchestrator.events.model import Event
from orchestrator.events.outbox import DEFAULT_LEASE_S, EventLease, EventOutbox
from orchestrator.events.signing import decode_secret, signature_headers
from orchestrator.lane import Lane
from orchestrator.settings import DEFAULT_EVENTS_RETRY_FOR_S, Settings

__all__ = [
    "DEFAULT_EVENT_BACKOFF",
    "DEFAULT_POLL_S",
    "EventWebhook",
    "EventDispatcher",
]

#: Backoff between attempts of one event: from 1 s, doubling, capped at 5 minutes.
DEFAULT_EVENT_BACKOFF = DeliveryPolicy(max_attempts=1, base_s=1.0, max_s=300.0)
#: Seconds between looks at an idle outbox (for what other processes queued).
DEFAULT_POLL_S = 1.0

log = logging.getLogger("orchestrator.events")

#: ``(kind, id, reason)``: raises the alert of an event given up.
AlertHook = Callable[[str, str, str], None]


class EventWebhook:
    """The receiver: one signed POST per attempt.

    Args:
        url: its URL (never logged as is).
        secret: ``whsec_<base64>`` (``None``: unsigned, for local tests only).
        timeout_s: connect and read timeouts.
        session: the HTTP session (one thread uses it).

    Raises:
        ConfigError: the URL is not http(s), or the secret is malformed.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None,
        timeout_s: tuple[float, float] = (DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_READ_TIMEOUT_S),
        session: requests.Session | None = None,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ConfigError("KRTC_EVENTS_WEBHOOK_URL: must be an http:// or https:// URL")
        self._url = url
        self._key = decode_secret(secret) if secret else None
        self.redacted = RedactedUrl(url)
        protect_http_logs(self.redacted)
        self.timeout_s = timeout_s
        self._session = session or requests.Session()

    def describe(self) -> str:
        """The receiver for logs, without secrets."""
        return f"events webhook {self.redacted.display}"

    def send(self, event: Event, *, now: float | None = None) -> None:
        """One attempt.

        Raises:
            DeliveryError: not accepted (every failure is retryable here).
        """
        body = event.body()
        headers = {
            "Content-Type": "application/json",
            **signature_headers(self._key, event.id, body, now=now),
        }
        response = post(
            self._session,
            self._url,
            body,
            headers,
            timeout_s=self.timeout_s,
            describe=self.describe(),
            scrub=self.redacted.scrub,
        )
        response.close()

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


class EventDispatcher:
    """Delivers the event outbox in the background, in order per subject.

    Args:
        outbox: the events.
        webhook: the receiver.
        retry_for_s: seconds after queueing an event is retried before it becomes a dead letter.
        alert: raises the ``dead_letter`` alert of an event given up.
        clock: unix time on Redis' clock (the store's).
        policy: backoff between attempts.
        lease_s, poll_s: as for the alert dispatcher.
        rng: jitter in [0, 1).
    """

    def __init__(
        self,
        outbox: EventOutbox,
        webhook: EventWebhook,
        *,
        retry_for_s: float = DEFAULT_EVENTS_RETRY_FOR_S,
        alert: AlertHook | None = None,
        clock: Callable[[], float] = time.time,
        policy: DeliveryPolicy = DEFAULT_EVENT_BACKOFF,
        lease_s: float = DEFAULT_LEASE_S,
        poll_s: float = DEFAULT_POLL_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.outbox = outbox
        self.webhook = webhook
        self.retry_for_s = retry_for_s
        self.alert = alert
        self.policy = policy
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._clock = clock
        self._rng = rng
        self._closing = threading.Event()
        self._lane = Lane(
            "krtc-events",
            self.work,
            poll_s=poll_s,
            closing=self._closing,
            describe=webhook.describe(),
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, outbox: EventOutbox, **options: Any
    ) -> EventDispatcher | None:
        """The dispatcher ``settings`` configure (``None`` without an events URL).

        Raises:
            ConfigError: the URL or the secret is malformed.
        """
        url = settings.events_webhook_url
        if url is None or not url.get_secret_value():
            return None
        secret = settings.events_webhook_secret
        webhook = EventWebhook(
            url.get_secret_value(), secret=secret.get_secret_value() if secret else None
        )
        options.setdefault("retry_for_s", settings.events_retry_for_s)
        return cls(outbox, webhook, **options)

    def start(self) -> None:
        """Start the lane in this process (it polls the outbox)."""
        if not self._closing.is_set():
            self._lane.start()

    def wake(self) -> None:
        """Look at the outbox now."""
        self._lane.wakeup.set()

    def work(self) -> float:
        """Make one attempt on the head due longest ago, if any.

        Returns:
            0 after an attempt, else seconds until something may be due.
        """
        taken = self.outbox.lease(self.lease_s)
        if not isinstance(taken, EventLease):
            return self.poll_s if taken is None else max(taken, 0.001)
        event, attempt = taken.event, taken.attempts + 1
        try:
            self.webhook.send(event)
        except DeliveryError as error:
            return self._failed(taken, attempt, error)
        except Exception as exc:  # a bug must not lose the event: retry it like a failure
            return self._failed(taken, attempt, DeliveryError(type(exc).__name__, retryable=True))
        self.outbox.ack(taken)
        return 0.0

    def _failed(self, lease: EventLease, attempt: int, error: DeliveryError) -> float:
        event = lease.event
        deadline_ms = lease.queued_ms + self.retry_for_s * 1000
        wait = backoff_s(error, attempt, self.policy, rng=self._rng)
        if self._clock() * 1000 + wait * 1000 <= deadline_ms:
            log.warning(
                "event %s (%s) to %s failed (attempt %d), retrying in %.2fs: %s",
                event.id,
                event.type,
                self.webhook.describe(),
                attempt,
                wait,
                error,
            )
            self.outbox.retry(lease, str(error), wait)
            return 0.0
        log.error(
            "event %s (%s, %s) given up after %d attempt(s): %s",
            event.id,
            event.type,
            event.subject,
            attempt,
            error,
        )
        if self.outbox.give_up(lease, str(error)) and self.alert is not None:
            self.alert(
                "dead_letter",
                event.session_id or event.subject,
                f"lifecycle event {event.id} ({event.type}) not delivered after {attempt} "
                f"attempt(s): {error}; replay with: krtc-rec events replay {event.id}",
            )
        return 0.0

    def flush(self, timeout_s: float) -> bool:
        """Deliver until the outbox is empty; false on timeout."""
        deadline = time.monotonic() + timeout_s
        self.start()
        while self.outbox.pending():
            if time.monotonic() >= deadline:
                return False
            self.wake()
            time.sleep(0.02)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the lane (what is left stays in the outbox for another process)."""
        deadline = time.monotonic() + timeout_s
        self._closing.set()
        self._lane.wakeup.set()
        self._lane.join(deadline)
        self.webhook.close()
