"""A recording session: what the orchestrator wants, what it knows, and how it got there.

A session is one attempt to record one (appId, cname, uid) (spec D11). Its ``phase`` is what the
orchestrator knows of the recording; its ``desired`` state is what was asked for. Workers move
the phase forward and the reconciler compares the two::

    pending ──> starting ──> recording ──> stopping ──> stopped
       │            │            │             │
       └─> stopped  └─> failed   └─> failed    └─> failed
                    └─> orphaned (running, sid unknown: spec D12) ──> stopping / failed

``stopped`` and ``failed`` are final: a session never leaves them (a restart is a new session,
linked by ``restarted_from`` / ``restarted_to``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.krtc.enums import Mode

__all__ = ["DEFAULT_MAX_RESTARTS", "Phase", "Desired", "Source", "HistoryEntry", "Session"]

#: Restarts a chain of sessions may make when ``restart_on_failure`` is set (spec D14).
DEFAULT_MAX_RESTARTS = 1


class Phase(StrEnum):
    """What the orchestrator knows of a recording."""

    #: Created; the start has not been sent yet.
    PENDING = "pending"
    #: A start call is under way (its outcome is not known yet).
    STARTING = "starting"
    #: The server accepted the start; ``sid`` is known.
    RECORDING = "recording"
    #: A stop call is under way or being retried (spec D13).
    STOPPING = "stopping"
    #: Final: stopped by request, cancelled before the start, or exited normally.
    STOPPED = "stopped"
    #: Final: the start failed for good, or the recording exited abnormally (spec D14).
    FAILED = "failed"
    #: The server reports the recording running but its sid is unknown (spec D12).
    ORPHANED = "orphaned"

    @property
    def is_finished(self) -> bool:
        """True for the final phases, ``stopped`` and ``failed``."""
        return self in _FINISHED

    @classmethod
    def finished(cls) -> frozenset[Phase]:
        """The final phases."""
        return _FINISHED


_FINISHED = frozenset({Phase.STOPPED, Phase.FAILED})


class Desired(StrEnum):
    """What was asked for the recording."""

    RECORDING = "recording"
    STOPPED = "stopped"


class Source(StrEnum):
    """Who made a change, as recorded in the history."""

    #: The producer API (a start or stop request).
    PRODUCER = "producer"
    #: A Celery task, from the answer of an API call.
    TASK = "task"
    #: The reconciler, from a query of the server.
    POLL = "poll"
    #: A person, through the CLI.
    OPERATOR = "operator"


class HistoryEntry(BaseModel):
    """One change of a session.

    Attributes:
        at: when, in unix seconds.
        what: the change, e.g. ``"phase starting -> recording"`` or ``"set last_status, files"``.
        why: the reason given by the caller.
        source: who made it.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    at: float
    what: str
    why: str = ""
    source: Source


class Session(BaseModel):
    """The stored state of one recording session.

    Instances are snapshots: changing one changes nothing in Redis (they are frozen). Use
    :class:`orchestrator.state.SessionStore` to make changes.

    Attributes:
        id: the orchestrator's id, time-sortable (see :mod:`orchestrator.state.ids`).
        app_id: the App ID.
        cname: the channel name.
        uid: the UID the recorder joins with.
        mode: ``individual`` or ``mix``.
        sid: the server's recording id, once known.
        desired: what was asked for.
        phase: what is known.
        last_status: the last ``serverResponse.status`` seen (spec §6).
        files: the server's file items, as last reported (wire form).
        attempts: calls made so far per action name (``"start"``, ``"stop"``, ...).
        last_error: the last error, ``{kind, status, code, reason, at}``.
        created_at: creation time, unix seconds.
        updated_at: time of the last change, unix seconds.
        phase_since: when the session entered its phase, unix seconds.
        started_at: when a start answer gave the sid, unix seconds (the recording runs since
            at least then; the max duration counts from it).
        idempotency_key: the key the producer created the session with, if any.
        max_duration_s: an upper bound on the recording's length, if any.
        request: the start request body, in wire form, without secrets.
        restarted_from: the session this one restarts (restart policy, spec D14).
        restarted_to: the session that restarted this one.
        restart_on_failure: start a new session for the same channel when this one exits
            abnormally (status 20; spec D14).
        max_restarts: how many restarts its chain may make in all (with
            ``restart_on_failure``).
        restarts: restarts made in its chain before this session (0 for the first one).
        history: the changes, oldest first; only filled when asked for.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    app_id: str
    cname: str
    uid: str
    mode: Mode
    sid: str | None = None
    desired: Desired = Desired.RECORDING
    phase: Phase = Phase.PENDING
    last_status: int | None = None
    files: list[dict[str, Any]] = Field(default_factory=list)
    attempts: dict[str, int] = Field(default_factory=dict)
    last_error: dict[str, Any] | None = None
    created_at: float
    updated_at: float
    phase_since: float | None = None
    started_at: float | None = None
    idempotency_key: str | None = None
    max_duration_s: int | None = None
    request: dict[str, Any] = Field(default_factory=dict)
    restarted_from: str | None = None
    restarted_to: str | None = None
    restart_on_failure: bool = False
    max_restarts: int = Field(default=DEFAULT_MAX_RESTARTS, ge=0)
    restarts: int = Field(default=0, ge=0)
    history: list[HistoryEntry] = Field(default_factory=list)

    @property
    def is_finished(self) -> bool:
        """True once the phase is final (``stopped`` or ``failed``)."""
        return self.phase.is_finished

    @property
    def may_restart(self) -> bool:
        """True if the restart policy allows one more restart of its chain."""
        return self.restart_on_failure and self.restarts < self.max_restarts

    @property
    def identity(self) -> tuple[str, str, str]:
        """``(app_id, cname, uid)``: at most one unfinished session has it (spec D11)."""
        return (self.app_id, self.cname, self.uid)
