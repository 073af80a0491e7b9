"""A lifecycle event as stored (:mod:`orchestrator.state.events`) and as a webhook's body.

The body is ``{"type", "timestamp", "data"}``: ``timestamp`` is when the change happened (ISO
8601, UTC, milliseconds; Redis' clock) and ``data`` the session's fields at that moment, decoded
(``session_id`` first), never its start request or idempotency key. It is rendered from the
stored record alone, so every retry sends the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Event", "Delivery", "render_data"]

_JSON = frozenset({"files", "last_error"})
_FLOAT = frozenset({"created_at", "updated_at", "phase_since", "started_at", "start", "end"})
_INT = frozenset({"last_status", "max_duration_s", "max_restarts", "restarts"})
_FLAG = frozenset({"restart_on_failure"})


def _decode(name: str, value: str) -> Any:
    try:
        if name in _JSON:
            return json.loads(value)
        if name in _FLOAT:
            return float(value)
        if name in _INT:
            return int(value)
    except ValueError:
        return value
    if name in _FLAG:
        return value == "1"
    return value


def render_data(record: dict[str, Any]) -> dict[str, Any]:
    """The ``data`` of a stored record: ids first, then the decoded fields."""
    data: dict[str, Any] = {}
    if record.get("session_id"):
        data["session_id"] = record["session_id"]
    ref = record.get("ref")
    if isinstance(ref, dict):
        data.update(ref)
    snapshot = record.get("data")
    if isinstance(snapshot, dict):
        for name, value in snapshot.items():
            data[name] = _decode(name, str(value))
    if data.get("files") is None and record.get("type", "").startswith("recording."):
        data["files"] = []
    return data


@dataclass(frozen=True)
class Delivery:
    """Where an event's delivery stands.

    Attributes:
        state: ``pending`` (queued or being retried), ``delivered`` or ``dead`` (given up).
        attempts: attempts made.
        error: the last error (no secret), if any.
        updated_ms: when the state last changed (Redis ms), 0 if never.
    """

    state: str
    attempts: int
    error: str | None
    updated_ms: int


@dataclass(frozen=True)
class Event:
    """One lifecycle event.

    Attributes:
        id: ``msg_...``: the ``webhook-id`` of every attempt.
        type: ``recording.started``, ...
        subject: whose events are delivered in order (a session id, or ``schedule:{id}``).
        session_id: the session it is about, if any.
        at_ms: when it happened (Redis ms).
        record: the stored record (JSON object).
    """

    id: str
    type: str
    subject: str
    session_id: str | None
    at_ms: int
    record: dict[str, Any]

    @classmethod
    def from_json(cls, raw: str) -> Event:
        """The event of a stored record."""
        record: dict[str, Any] = json.loads(raw)
        return cls(
            id=str(record["id"]),
            type=str(record["type"]),
            subject=str(record["subject"]),
            session_id=record.get("session_id") or None,
            at_ms=int(record["at_ms"]),
            record=record,
        )

    @property
    def timestamp(self) -> str:
        """When it happened, ISO 8601 in UTC with milliseconds."""
        moment = datetime.fromtimestamp(self.at_ms / 1000, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {"type": self.type, "timestamp": self.timestamp, "data": render_data(self.record)}

    def body(self) -> bytes:
        """The webhook's body bytes (the same on every retry)."""
        return json.dumps(self.payload(), ensure_ascii=False, separators=(",", ":")).encode()
