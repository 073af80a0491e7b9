"""Lifecycle events, recorded by the very script that makes the change they report.

An event is never emitted beside a change, only inside it: the Lua scripts of the session store
(``TRANSITION``, ``ADOPT_SID``, ``REQUEST_STOP``, ``CREATE``, the start's ``FINISH_START``) and
the schedule's ``FINISH`` call :data:`EMIT` when, and only when, they applied the change. So a
change is never stored without its event nor an event without its change, and of two concurrent
duplicates (a start message delivered twice) only the one that changed something emits.

The caller passes one JSON object, ``events`` (see :meth:`EventLog.spec`), among the script's
parameters; without it (no ``KRTC_EVENTS_WEBHOOK_URL``) nothing is recorded and the scripts do
no more work than before. It names the event's keys: they are in the parameters rather than in
``KEYS`` so that the scripts' key layouts stay as they are (this project runs one Redis, with
Sentinel at most, never Cluster).

What an event records: its id (``msg_`` and a time-sortable id, the ``webhook-id`` of every
attempt), type, subject (the session, or ``schedule:{id}``) and a snapshot of the subject's hash
(``KEYS[1]`` of every emitting script) with the listed fields only: never the start request
(storage settings) nor the idempotency key. Delivery is :mod:`orchestrator.events`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.state.ids import new_session_id
from orchestrator.state.keys import Keys
from orchestrator.state.lua import NOW_MS
from orchestrator.state.session import Phase

if TYPE_CHECKING:
    from orchestrator.settings import Settings

__all__ = [
    "EMIT",
    "EventType",
    "EventLog",
    "PHASE_EVENTS",
    "SESSION_FIELDS",
    "OCCURRENCE_FIELDS",
    "schedule_subject",
    "event_log_from_settings",
]


class EventType(StrEnum):
    """The lifecycle events (the ``type`` of a webhook's body)."""

    #: A start answer gave the sid: the recording runs.
    RECORDING_STARTED = "recording.started"
    #: Final: stopped (by request, cancelled before the start, or exited normally), with files.
    RECORDING_STOPPED = "recording.stopped"
    #: Final: the start failed for good or the recording exited abnormally (status 20).
    RECORDING_FAILED = "recording.failed"
    #: Running on the server with no known sid (spec D12).
    RECORDING_ORPHANED = "recording.orphaned"
    #: A failed session was restarted as a new, linked session (spec D14).
    RECORDING_RESTARTED = "recording.restarted"
    #: A scheduled recording was not started within its misfire grace.
    SCHEDULE_MISSED = "schedule.missed"


#: The event a change of phase emits (``TRANSITION``).
PHASE_EVENTS: dict[Phase, EventType] = {
    Phase.RECORDING: EventType.RECORDING_STARTED,
    Phase.STOPPED: EventType.RECORDING_STOPPED,
    Phase.FAILED: EventType.RECORDING_FAILED,
    Phase.ORPHANED: EventType.RECORDING_ORPHANED,
}

#: The session fields an event carries (no request body, no idempotency key, no counters).
SESSION_FIELDS = (
    "app_id",
    "cname",
    "uid",
    "mode",
    "sid",
    "phase",
    "desired",
    "last_status",
    "files",
    "last_error",
    "created_at",
    "updated_at",
    "phase_since",
    "started_at",
    "max_duration_s",
    "restarted_from",
    "restarted_to",
    "restart_on_failure",
    "max_restarts",
    "restarts",
)

#: The occurrence fields a ``schedule.missed`` event carries.
OCCURRENCE_FIELDS = ("schedule_id", "start", "end", "outcome", "reason", "updated_at")

#: ``emit_event(ev, kind)``: record one event of the subject whose hash is ``KEYS[1]``.
EMIT = (
    NOW_MS
    + """
-- ev (absent: events are off) = {id, subject, session (the session id, if any), ref (more
--   ids the data carries, if any), fields, ttl,
--   and the keys: record, delivery,
--   index, by (the subject's list), queue (its undelivered list), outbox}
local function emit_event(ev, kind)
  if type(ev) ~= 'table' then return end
  local now = now_ms()
  local values = redis.call('HMGET', KEYS[1], unpack(ev.fields))
  local snapshot = {}
  for i, name in ipairs(ev.fields) do
    if values[i] then snapshot[name] = values[i] end
  end
  local record = cjson.encode({id = ev.id, type = kind, subject = ev.subject,
    session_id = ev.session, ref = ev.ref, at_ms = now, data = snapshot})
  redis.call('SET', ev.record, record, 'EX', ev.ttl)
  redis.call('HSET', ev.delivery, 'state', 'pending', 'attempts', 0, 'queued_ms', now)
  redis.call('EXPIRE', ev.delivery, ev.ttl)
  redis.call('ZADD', ev.index, now, ev.id)
  redis.call('ZREMRANGEBYSCORE', ev.index, '-inf', now - ev.ttl * 1000)
  redis.call('RPUSH', ev.by, ev.id)
  redis.call('EXPIRE', ev.by, ev.ttl)
  redis.call('RPUSH', ev.queue, ev.id)
  -- NX: a subject whose head is leased or waiting for a retry keeps that time (order).
  redis.call('ZADD', ev.outbox, 'NX', now, ev.subject)
end
"""
)


def schedule_subject(schedule_id: str) -> str:
    """The subject of a schedule's events (a session's is its id)."""
    return f"schedule:{schedule_id}"


@dataclass(frozen=True)
class EventLog:
    """Builds the ``events`` parameter of the emitting scripts.

    Args:
        keys: the key names (the session store's).
        ttl_s: seconds an event and its delivery record are kept (beyond any retry).
    """

    keys: Keys
    ttl_s: int

    def spec(
        self,
        subject: str,
        *,
        session: str | None = None,
        fields: Iterable[str] = SESSION_FIELDS,
        now: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The ``events`` object for one script call about ``subject``.

        Args:
            subject: a session id, or :func:`schedule_subject`: events of one subject are
                delivered in order.
            session: the session the event is about (default: ``subject`` unless it is a
                schedule's).
            fields: the fields of the subject's hash the event carries.
            now: unix seconds for the event id's time part (default: this host's clock; the
                id only needs to sort roughly by time).
            **extra: more members the script reads (``type``, ``from``).
        """
        event_id = "msg_" + new_session_id(now)
        if session is None and not subject.startswith("schedule:"):
            session = subject
        spec: dict[str, Any] = {
            "id": event_id,
            "subject": subject,
            "fields": list(fields),
            "ttl": self.ttl_s,
            "record": self.keys.event(event_id),
            "delivery": self.keys.event_delivery(event_id),
            "index": self.keys.events(),
            "by": self.keys.events_of(subject),
            "queue": self.keys.event_queue(subject),
            "outbox": self.keys.events_outbox(),
            **extra,
        }
        if session is not None:
            spec["session"] = session
        return spec

    def phase_change(self, session_id: str, to: Phase | None) -> dict[str, Any] | None:
        """The ``events`` of a ``TRANSITION`` to ``to``, or ``None`` if that emits nothing.

        ``recording.started`` is emitted only on the way from a phase without a recording
        (pending, starting, orphaned), never when a failed stop leaves a session recording.
        """
        kind = PHASE_EVENTS.get(to) if to is not None else None
        if to is None or kind is None:
            return None
        extra: dict[str, Any] = {"type": kind.value, "to": to.value}
        if to == Phase.RECORDING:
            extra["from"] = [p.value for p in (Phase.PENDING, Phase.STARTING, Phase.ORPHANED)]
        return self.spec(session_id, **extra)


def event_log_from_settings(settings: Settings) -> EventLog | None:
    """The event log the settings ask for: ``None`` unless ``KRTC_EVENTS_WEBHOOK_URL`` is set.

    Events are kept past their retries (a given-up one stays listable) and as long as sessions.
    """
    url = settings.events_webhook_url
    if url is None or not url.get_secret_value():
        return None
    ttl_s = max(settings.session_retention_s, 2 * settings.events_retry_for_s)
    return EventLog(Keys(settings.redis_prefix), ttl_s)
