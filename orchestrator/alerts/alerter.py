"""The one door to alerting: raise an alert, and it is deduplicated, stored, logged and sent.

:meth:`Alerter.raise_alert` returns as soon as the alert is stored and logged; the webhooks are
delivered in the background (:mod:`orchestrator.alerts.delivery`). :attr:`Alerter.hook` is the
``(kind, session_id, reason)`` callable the jobs take (``orchestrator.jobs.context.AlertHook``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pydantic import SecretStr

from orchestrator.alerts.delivery import DEFAULT_POLL_S, DeliveryPolicy, Dispatcher
from orchestrator.alerts.model import Alert, AlertKind
from orchestrator.alerts.outbox import DEFAULT_LEASE_S
from orchestrator.alerts.redact import MASK
from orchestrator.alerts.render import truncate
from orchestrator.alerts.sinks import (
    DingTalkSink,
    FeishuSink,
    LogSink,
    Sink,
    SlackSink,
    WebhookSink,
    WeComSink,
)
from orchestrator.alerts.store import AlertStore
from orchestrator.errors import StateError
from orchestrator.settings import Settings
from orchestrator.state.errors import CorruptSessionError
from orchestrator.state.raw import RawSessions
from orchestrator.state.store import SessionStore

__all__ = ["DEFAULT_REASON_LIMIT", "Alerter", "sinks_from_settings"]

#: Characters of a reason kept in an alert.
DEFAULT_REASON_LIMIT = 1000

log = logging.getLogger("orchestrator.alerts")

_CONTEXT = ("app_id", "cname", "uid", "sid", "server_status")


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def sinks_from_settings(settings: Settings, **http_options: Any) -> list[Sink]:
    """The background sinks the settings configure (the log sink is not among them).

    Args:
        settings: the configuration (``KRTC_ALERT_*_URL``, ``KRTC_ALERT_WEBHOOK_SECRET``,
            ``KRTC_ALERT_DINGTALK_SECRET``, ``KRTC_ALERT_FEISHU_SECRET``).
        **http_options: passed to every HTTP sink (``timeout_s=``, ``session=``).

    Raises:
        ConfigError: a URL is not http(s) (naming its variable, not its value).
    """
    sinks: list[Sink] = []
    url = _secret(settings.alert_webhook_url)
    if url:
        secret = _secret(settings.alert_webhook_secret)
        sinks.append(WebhookSink(url, secret=secret, **http_options))
    url = _secret(settings.alert_dingtalk_url)
    if url:
        secret = _secret(settings.alert_dingtalk_secret)
        sinks.append(DingTalkSink(url, secret=secret, **http_options))
    url = _secret(settings.alert_feishu_url)
    if url:
        sinks.append(FeishuSink(url, secret=_secret(settings.alert_feishu_secret), **http_options))
    for field, cls in (("alert_wecom_url", WeComSink), ("alert_slack_url", SlackSink)):
        url = _secret(getattr(settings, field))
        if url:
            sinks.append(cls(url, **http_options))
    return sinks


class Alerter:
    """Raises alerts: one per (session, kind), reminders optional, delivered to every sink.

    Args:
        store: where alerts are kept (dedupe, recent list, counters).
        sessions: the session store, to fill in appId/cname/uid/sid/status the raiser left out.
        sinks: the background sinks (webhooks); the log sink is always added.
        log_sink: the log sink (default: the ``orchestrator.alerts`` logger).
        remind_after_s: raise a persisting alert again after this many seconds; ``None``: never.
        secrets: strings that must never appear in an alert (they are masked in reasons).
        policy: attempts and backoff of the background delivery.
        lease_s: seconds an outbox entry is held per attempt (its process may have died after).
        poll_s: seconds between looks at an idle outbox.
        clock: unix time (injectable for tests).
        new_id: makes alert ids.
    """

    def __init__(
        self,
        store: AlertStore,
        *,
        sessions: SessionStore | None = None,
        sinks: Sequence[Sink] = (),
        log_sink: LogSink | None = None,
        remind_after_s: float | None = None,
        secrets: Iterable[str | None] = (),
        policy: DeliveryPolicy | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        poll_s: float = DEFAULT_POLL_S,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if remind_after_s is not None and remind_after_s <= 0:
            raise ValueError(f"remind_after_s must be positive, got {remind_after_s}")
        self.store = store
        self.sessions = sessions
        self.log_sink = log_sink or LogSink()
        self.remind_after_s = remind_after_s
        self.dispatcher = Dispatcher(
            [s for s in sinks if s.background],
            outbox=store.outbox,
            policy=policy,
            lease_s=lease_s,
            poll_s=poll_s,
        )
        self._local = [s for s in sinks if not s.background]
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._clock = clock
        self._new_id = new_id

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        store: SessionStore,
        *,
        secrets: Iterable[str | None] = (),
        **options: Any,
    ) -> Alerter:
        """An alerter with the sinks of ``settings``, keeping alerts next to ``store``'s sessions.

        Args:
            settings: the configuration.
            store: the session store (its Redis and key prefix are shared).
            secrets: more strings to keep out of alerts (e.g. storage secret keys); the API
                secret key and the webhook secret and URLs are always kept out.
            **options: passed to the constructor (``policy=``, ``clock=``, ...).

        Raises:
            ConfigError: a webhook URL is not http(s).
        """
        sinks = sinks_from_settings(settings)
        # Reminders compare times written by other processes: the store's (Redis') clock.
        options.setdefault("clock", store.clock)
        kept_out = [
            _secret(settings.secret_key),
            _secret(settings.alert_webhook_secret),
            _secret(settings.alert_dingtalk_secret),
            _secret(settings.alert_feishu_secret),
            *secrets,
        ]
        return cls(
            AlertStore(store.redis, keys=store.keys, marker_ttl_s=settings.alert_retention_s),
            sessions=store,
            sinks=sinks,
            remind_after_s=settings.alert_remind_after,
            secrets=kept_out,
            **options,
        )

    @property
    def sinks(self) -> list[Sink]:
        """Every sink: the log first, then the background ones."""
        return [self.log_sink, *self._local, *self.dispatcher.sinks]

    def raise_alert(
        self,
        kind: AlertKind | str,
        session_id: str,
        reason: str,
        *,
        app_id: str | None = None,
        cname: str | None = None,
        uid: str | None = None,
        sid: str | None = None,
        server_status: int | None = None,
    ) -> Alert | None:
        """Raise an alert unless (session, kind) has one (and no reminder is due).

        Stores it and queues it for every background sink in one atomic step (so it is never
        lost once this returns), logs it, and wakes the delivery lanes; never waits for a sink.
        Context left out is read from the session, if the alerter has the session store.

        Returns:
            The alert raised, or ``None`` when deduplicated.

        Raises:
            ValueError: ``kind`` is not an :class:`AlertKind`.
            StateUnavailableError: Redis is unreachable (nothing was sent).
        """
        kind = AlertKind(kind)
        context: dict[str, Any] = {
            "app_id": app_id,
            "cname": cname,
            "uid": uid,
            "sid": sid,
            "server_status": server_status,
        }
        if any(value is None for value in context.values()):
            known = self._known(session_id)
            context = {k: known.get(k) if context[k] is None else context[k] for k in _CONTEXT}
        now = self._clock()
        draft = Alert(
            id=self._new_id(),
            kind=kind,
            severity=kind.severity,
            session_id=session_id,
            reason=truncate(self.scrub(reason), DEFAULT_REASON_LIMIT),
            at=now,
            first_at=now,
            **context,
        )
        alert = self.store.record(
            draft,
            remind_after_s=self.remind_after_s,
            sinks=[sink.name for sink in self.dispatcher.sinks],
        )
        if alert is None:
            log.debug("alert %s for session %s already raised", kind.value, session_id)
            return None
        for sink in (self.log_sink, *self._local):
            try:
                sink.deliver(alert)
            except Exception:
                log.exception("alert sink %s failed", sink.describe())
        self.dispatcher.submit(alert)
        return alert

    def hook(self, kind: str, session_id: str, reason: str) -> None:
        """:meth:`raise_alert` as an ``AlertHook`` for the jobs: never raises.

        If the alert cannot be stored (Redis down), it is still logged, so it is not lost.
        """
        try:
            self.raise_alert(kind, session_id, reason)
        except Exception:
            log.exception(
                "could not raise alert %s for session %s: %s", kind, session_id, self.scrub(reason)
            )

    def resolve(self, kind: AlertKind | str, session_id: str) -> bool:
        """The condition cleared: the next raise of (session, kind) alerts again."""
        return self.store.resolve(session_id, kind)

    def scrub(self, text: str) -> str:
        """``text`` with every known secret masked (configured ones and the sinks' URLs)."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for sink in self.sinks:
            text = sink.scrub(text)
        return text

    def start(self) -> None:
        """Deliver in the background from now on: also what other processes left in the outbox."""
        self.dispatcher.start()

    def flush(self, timeout_s: float) -> bool:
        """Deliver until the outboxes of this alerter's sinks are empty; false on timeout."""
        return self.dispatcher.flush(timeout_s)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Give queued deliveries ``timeout_s`` seconds, then stop delivering.

        Deliveries not done stay in the outbox, for another process.
        """
        return self.dispatcher.close(timeout_s)

    def _known(self, session_id: str) -> dict[str, Any]:
        """What the store knows of the session for an alert's context (empty if nothing)."""
        if self.sessions is None:
            return {}
        try:
            session = self.sessions.get(session_id)
        except CorruptSessionError:
            # The alert is most likely about this very record; its identity is still useful,
            # and read without decoding the rest.
            raw = RawSessions(self.sessions.redis, keys=self.sessions.keys)
            identity = raw.identity_of(session_id)
            return dict(zip(("app_id", "cname", "uid"), identity, strict=True)) if identity else {}
        except StateError:
            # Context is a courtesy: an unreadable session must not stop the alert.
            log.warning("alert for session %s: could not read the session", session_id)
            return {}
        if session is None:
            return {}
        return {
            "app_id": session.app_id,
            "cname": session.cname,
            "uid": session.uid,
            "sid": session.sid,
            "server_status": session.last_status,
        }
