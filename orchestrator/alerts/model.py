"""What an alert is: its kind, how severe that kind is, and the facts a person needs.

An alert names one recording session and says what went wrong with it. It carries the session's
identity (appId, cname, uid, sid) and the last server status so the reader can act without
looking anything up, and never a secret: its fields are identifiers, a status and a reason, and
the reason is scrubbed of every configured secret before the alert is built
(:class:`orchestrator.alerts.Alerter`).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

__all__ = ["AlertKind", "Severity", "SEVERITY_OF", "Alert"]


class Severity(StrEnum):
    """How urgently a person must act."""

    #: Now: a recording is lost or keeps running (and billing) against our will.
    CRITICAL = "critical"
    #: Soon: something needs a look, but no recording is being lost right now.
    WARNING = "warning"
    #: For the record; no built-in kind uses it yet.
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for critical, 1 for warning, 2 for info (sorts the most severe first)."""
        return _RANKS[self]


_RANKS = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class AlertKind(StrEnum):
    """The conditions that raise an alert (issue 5, spec D12-D14)."""

    #: The server reports status 20: the recording exited abnormally (spec D14).
    ABNORMAL_EXIT = "abnormal_exit"
    #: ``query`` answers 404 for a session that should be recording.
    LOST = "lost"
    #: Below status 5, or stopping, for longer than ``KRTC_STUCK_AFTER``.
    STUCK = "stuck"
    #: Running on the server with no known sid (spec D12).
    ORPHANED = "orphaned"
    #: A stop keeps failing (spec D13: it is still being retried).
    STOP_FAILING = "stop_failing"
    #: A start failed for good.
    START_FAILED = "start_failed"
    #: A job gave up and became a dead letter.
    DEAD_LETTER = "dead_letter"
    #: A scheduled recording was not started within its misfire grace (an outage).
    MISSED = "missed"
    #: A scheduled recording could not be started (its channel was already recording...).
    SCHEDULE_FAILED = "schedule_failed"
    #: A process's wall clock is more than 1 s off Redis' ``TIME`` (``id``: the process).
    CLOCK_SKEW = "clock_skew"
    #: A stop was accepted but the end (status 8) was not confirmed within its budget.
    STOP_UNCONFIRMED = "stop_unconfirmed"
    #: A start answer gave a sid for a session that was meanwhile finished, or is gone: the
    #: recording it names is being stopped.
    STRAY_RECORDING = "stray_recording"
    #: A stored session does not decode, or was written by a newer version: its jobs are
    #: dead-lettered and the reconciler skips it until a person repairs it.
    CORRUPT_SESSION = "corrupt_session"

    @property
    def severity(self) -> Severity:
        """The severity of every alert of this kind."""
        return SEVERITY_OF[self]

    @property
    def summary(self) -> str:
        """A short human description, for message titles."""
        return _TITLES[self]


#: One severity per kind: a recording that is gone, or that cannot be stopped, is critical.
SEVERITY_OF: dict[AlertKind, Severity] = {
    AlertKind.ABNORMAL_EXIT: Severity.CRITICAL,
    AlertKind.LOST: Severity.CRITICAL,
    AlertKind.STOP_FAILING: Severity.CRITICAL,
    AlertKind.STUCK: Severity.WARNING,
    AlertKind.ORPHANED: Severity.WARNING,
    AlertKind.START_FAILED: Severity.WARNING,
    AlertKind.DEAD_LETTER: Severity.WARNING,
    AlertKind.MISSED: Severity.CRITICAL,
    AlertKind.SCHEDULE_FAILED: Severity.CRITICAL,
    AlertKind.CLOCK_SKEW: Severity.WARNING,
    AlertKind.STOP_UNCONFIRMED: Severity.CRITICAL,
    AlertKind.STRAY_RECORDING: Severity.WARNING,
    # Nothing will stop or follow its recording (if one runs) until a person looks.
    AlertKind.CORRUPT_SESSION: Severity.CRITICAL,
}

_TITLES = {
    AlertKind.ABNORMAL_EXIT: "recording exited abnormally",
    AlertKind.LOST: "recording lost",
    AlertKind.STUCK: "recording stuck",
    AlertKind.ORPHANED: "recording running without a known sid",
    AlertKind.STOP_FAILING: "stop keeps failing",
    AlertKind.START_FAILED: "start failed for good",
    AlertKind.DEAD_LETTER: "job dead-lettered",
    AlertKind.MISSED: "scheduled recording missed",
    AlertKind.SCHEDULE_FAILED: "scheduled recording could not start",
    AlertKind.CLOCK_SKEW: "clock skew against Redis",
    AlertKind.STOP_UNCONFIRMED: "stop not confirmed",
    AlertKind.STRAY_RECORDING: "stray recording stopped",
    AlertKind.CORRUPT_SESSION: "stored session unreadable",
}


class Alert(BaseModel):
    """One raised alert (the first one of its (session, kind), or a reminder).

    Attributes:
        id: unique per raised alert; the same across delivery retries, so receivers can drop
            duplicates.
        kind: what happened.
        severity: from the kind (:data:`SEVERITY_OF`).
        session_id: the orchestrator's session id.
        app_id, cname, uid: the session's identity, when known.
        sid: the server's recording id, when known.
        server_status: the last ``serverResponse.status`` seen, when known.
        reason: what the raiser said, scrubbed of secrets and capped in length.
        at: when this alert was raised, unix seconds.
        first_at: when the first alert of this (session, kind) was raised, unix seconds.
        reminder: 0 for the first alert of its (session, kind), n for the n-th reminder.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    kind: AlertKind
    severity: Severity
    session_id: str
    app_id: str | None = None
    cname: str | None = None
    uid: str | None = None
    sid: str | None = None
    server_status: int | None = None
    reason: str = ""
    at: float
    first_at: float
    reminder: int = 0

    @property
    def is_reminder(self) -> bool:
        """True for a reminder of an alert raised before."""
        return self.reminder > 0
