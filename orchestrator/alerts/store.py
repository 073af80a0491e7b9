"""Raised alerts in Redis: one per (session, kind), a recent list and a counter per kind.

The marker of a (session, kind) is what makes an alert happen once and not once per poll: the
raise script (:mod:`orchestrator.alerts.scripts`) creates it atomically, so concurrent raisers
cannot both win. With a reminder interval, a raise that comes at least that long after the last
one is raised again as a reminder. :meth:`AlertStore.resolve` forgets a marker, so a condition
that cleared and came back alerts again. A marker expires ``marker_ttl_s`` after the last raise
of its (session, kind), deduplicated or not (``KRTC_ALERT_RETENTION_S``): a condition still seen
stays deduplicated; the collector deletes the markers of a session with the session.

The same script queues the alert in the outbox of every background sink
(:mod:`orchestrator.alerts.outbox`), so a stored alert always has its deliveries waiting.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from typing import cast

from redis import Redis

from orchestrator.alerts.model import Alert, AlertKind
from orchestrator.alerts.outbox import (
    DEFAULT_OUTBOX_LIMIT,
    DEFAULT_UNDELIVERED_LIMIT,
    AlertOutbox,
)
from orchestrator.alerts.scripts import RAISE
from orchestrator.settings import DEFAULT_ALERT_RETENTION_S
from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys

__all__ = ["DEFAULT_RECENT_LIMIT", "DEFAULT_MARKER_TTL_S", "AlertStore"]

#: Recent alerts kept for ``krtc-rec alerts``.
DEFAULT_RECENT_LIMIT = 1000
#: Seconds a (session, kind) marker is kept after its last raise (``KRTC_ALERT_RETENTION_S``).
DEFAULT_MARKER_TTL_S = DEFAULT_ALERT_RETENTION_S

log = logging.getLogger("orchestrator.alerts")


class AlertStore:
    """Alerts in Redis, under the session store's key prefix.

    Args:
        redis: the client (with or without ``decode_responses``).
        keys: the key names (share the session store's: ``store.keys``).
        recent_limit: how many recent alerts are kept.
        marker_ttl_s: seconds a (session, kind) marker is kept after its last raise.
        outbox_limit: entries kept per sink's outbox (beyond it, the one due longest ago is
            dropped, with an error log and an undelivered record).
        undelivered_limit: given-up deliveries kept.

    Raises:
        ValueError: a limit is not positive.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys,
        recent_limit: int = DEFAULT_RECENT_LIMIT,
        marker_ttl_s: int = DEFAULT_MARKER_TTL_S,
        outbox_limit: int = DEFAULT_OUTBOX_LIMIT,
        undelivered_limit: int = DEFAULT_UNDELIVERED_LIMIT,
    ) -> None:
        if recent_limit < 1 or marker_ttl_s < 1 or outbox_limit < 1:
            raise ValueError("recent_limit, marker_ttl_s and outbox_limit must be at least 1")
        self._redis = redis
        self.keys = keys
        self.recent_limit = recent_limit
        self.marker_ttl_s = marker_ttl_s
        self.outbox_limit = outbox_limit
        self.outbox = AlertOutbox(redis, keys=keys, undelivered_limit=undelivered_limit)
        self._raise = redis.register_script(RAISE)

    def record(
        self,
        alert: Alert,
        *,
        remind_after_s: float | None = None,
        sinks: Sequence[str] = (),
    ) -> Alert | None:
        """Store ``alert`` unless its (session, kind) has one already, queued for ``sinks``.

        Args:
            alert: the alert to raise; its ``at`` is the time of the raise, and its ``first_at``
                and ``reminder`` are set here.
            remind_after_s: raise again (as a reminder) when the last raise of this
                (session, kind) is at least this many seconds before ``alert.at``; ``None``:
                never.
            sinks: names of the background sinks to queue the alert for (in the same step).

        Returns:
            The stored alert, or ``None`` when deduplicated (nothing changed, nothing queued).

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        draft = alert.model_dump_json(exclude={"first_at", "reminder"})
        args = [
            repr(float(alert.at)),
            "" if remind_after_s is None else repr(float(remind_after_s)),
            draft,
            alert.kind.value,
            self.recent_limit,
            self.marker_ttl_s,
            self.outbox_limit,
            self.outbox.undelivered_limit,
            *sinks,
        ]
        keys = [
            self.keys.alert(alert.session_id, alert.kind.value),
            self.keys.alerts(),
            self.keys.alert_counts(),
            self.keys.alerts_undelivered(),
            self.keys.alerts_undelivered_counts(),
            *self.outbox.sink_keys(sinks),
        ]
        with redis_errors(self._redis):
            reply = cast("list[str | bytes] | None", self._raise(keys=keys, args=args))
        if reply is None:
            return None
        for dropped in reply[1:]:
            sink, _, alert_id = text(dropped).partition("|")
            log.error(
                "alert %s dropped from the outbox of %s: %d deliveries already waiting",
                alert_id,
                sink,
                self.outbox_limit,
            )
        return Alert.model_validate_json(text(reply[0]))

    def is_raised(self, session_id: str, kind: AlertKind | str) -> bool:
        """Whether (session, kind) has an alert that has not been resolved."""
        with redis_errors(self._redis):
            return bool(self._redis.exists(self.keys.alert(session_id, AlertKind(kind).value)))

    def resolve(self, session_id: str, kind: AlertKind | str) -> bool:
        """Forget the alert of (session, kind), so the next raise alerts again.

        Returns:
            False if there was none.
        """
        with redis_errors(self._redis):
            key = self.keys.alert(session_id, AlertKind(kind).value)
            return bool(self._redis.delete(key))

    def recent(self, limit: int = 100) -> builtins.list[Alert]:
        """The most recent alerts, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        with redis_errors(self._redis):
            raws = cast(
                "builtins.list[str | bytes]", self._redis.lrange(self.keys.alerts(), 0, limit - 1)
            )
        return [Alert.model_validate_json(text(r)) for r in raws]

    def counts(self) -> dict[str, int]:
        """Alerts raised so far per kind (reminders included), every kind listed."""
        with redis_errors(self._redis):
            raw = cast(
                "dict[str | bytes, str | bytes]", self._redis.hgetall(self.keys.alert_counts())
            )
        counts = {kind.value: 0 for kind in AlertKind}
        counts.update({text(k): int(text(v)) for k, v in raw.items()})
        return counts
