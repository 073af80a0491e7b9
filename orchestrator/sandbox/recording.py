"""One simulated recording, whose status is derived from timestamps (spec §6).

No timer runs per recording: :meth:`Recording.status` works the status out from the time of the
start, of the stop, of the moment its channel became empty, and of any fault or forced status.

* Start: 0, 1, 2, 3, 4 for a fifth of ``start_duration_s`` each, then 5 (recording) at ``t5``.
* Stop: 6 for the first half of ``stop_duration_s``, 7 for the second half, then 8 (exited).
* An empty channel for ``max_idle_s`` ends the recording with 8, as maxIdleTime does.
* A doomed recording (fault) ends with 20 at ``doom_at``.
* ``stuck_status`` caps the start progression (a fault); ``pinned`` overrides the status (control
  API). A pin at 6 or 7 holds a stopping recording there ("stuck stopping").

The earliest of the end times that has passed ends the recording; it is then kept, answering its
end status, until the registry purges it ``retention_s`` later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.krtc.enums import Mode, RecordingStatus

__all__ = ["Subscriptions", "Recording"]

S = RecordingStatus


@dataclass
class Subscriptions:
    """Whose audio and video a recording takes (``None`` lists: everyone)."""

    video: list[str] | None = None
    no_video: list[str] | None = None
    audio: list[str] | None = None
    no_audio: list[str] | None = None

    def takes_video(self, uid: str) -> bool:
        """Whether ``uid``'s video is recorded."""
        return (self.video is None or uid in self.video) and uid not in (self.no_video or ())

    def takes_audio(self, uid: str) -> bool:
        """Whether ``uid``'s audio is recorded."""
        return (self.audio is None or uid in self.audio) and uid not in (self.no_audio or ())

    @property
    def is_everyone(self) -> bool:
        """True when no list restricts the recording."""
        return all(v is None for v in (self.video, self.no_video, self.audio, self.no_audio))


@dataclass
class Recording:
    """A recording and the times that decide its status (Unix seconds of the sandbox clock)."""

    sid: str
    app_id: str
    cname: str
    uid: str
    mode: Mode
    started_at: float
    start_duration_s: float
    stop_duration_s: float
    max_idle_s: float
    av_file_types: tuple[str, ...]
    stream_types: int
    #: "storageConfig", "snapshotConfig", "livePushConfig" or None.
    output: str | None
    filename_prefix: tuple[str, ...]
    subscriptions: Subscriptions
    #: The start body with secrets masked; the only copy of the request that is kept.
    request: dict[str, Any]
    seen_uids: list[str] = field(default_factory=list)
    idle_since: float | None = None
    t5: float | None = None
    stop_at: float | None = None
    ended_at: float | None = None
    end_status: int | None = None
    end_reason: str | None = None
    pinned: int | None = None
    stuck_status: int | None = None
    doom_at: float | None = None
    layout: dict[str, Any] | None = None
    updates: int = 0

    def __post_init__(self) -> None:
        if self.t5 is None and self.stuck_status is None:
            self.t5 = self.started_at + self.start_duration_s

    @property
    def is_ended(self) -> bool:
        """True once the recording has exited (8 or 20); call :meth:`refresh` first."""
        return self.ended_at is not None

    @property
    def is_stopping(self) -> bool:
        """True between a stop and the exit."""
        return self.stop_at is not None and self.ended_at is None

    def end(self, at: float, status: int, reason: str) -> None:
        """Exit now (or at ``at``) with ``status`` 8 or 20."""
        if self.ended_at is None:
            self.ended_at, self.end_status, self.end_reason = at, status, reason
            self.pinned = None

    def refresh(self, now: float) -> None:
        """End the recording if one of its end times has passed."""
        if self.ended_at is not None:
            return
        ends: list[tuple[float, int, str]] = []
        if self.stop_at is not None and self.pinned not in (S.STOP_REQUESTED, S.COMPONENTS_STOPPED):
            ends.append((self.stop_at + self.stop_duration_s, S.EXITED, "stopped"))
        if self.idle_since is not None:
            ends.append((self.idle_since + self.max_idle_s, S.EXITED, "idle"))
        if self.doom_at is not None:
            ends.append((self.doom_at, S.EXITED_ABNORMALLY, "abnormal"))
        due = [e for e in ends if e[0] <= now]
        if due:
            self.end(*min(due))

    def status(self, now: float) -> int:
        """The query status at ``now``."""
        self.refresh(now)
        if self.end_status is not None:
            return self.end_status
        if self.pinned is not None:
            return self.pinned
        if self.stop_at is not None:
            half = self.stop_at + self.stop_duration_s / 2
            return int(S.STOP_REQUESTED if now < half else S.COMPONENTS_STOPPED)
        if self.t5 is not None and now >= self.t5:
            return int(S.RECORDING)
        step = self.start_duration_s / 5
        reached = int((now - self.started_at) / step) if step > 0 else int(S.RECORDING)
        progress = max(0, min(int(S.ALL_COMPONENTS_STARTED), reached))
        if self.stuck_status is not None:
            progress = min(progress, self.stuck_status)
        return progress

    def is_recording_since(self, now: float) -> float | None:
        """When status 5 was reached (files exist from then on), or ``None`` if it never was."""
        if self.t5 is None or self.t5 > now:
            return None
        if self.ended_at is not None and self.t5 > self.ended_at:
            return None
        return self.t5

    def freeze(self, now: float) -> None:
        """The start progression stops here (stuck or pinned below 5): 5 is not reached later."""
        if self.t5 is not None and self.t5 > now:
            self.t5 = None

    def thaw(self, now: float) -> None:
        """The start progression resumes: 5 comes at its natural time, or now if that passed."""
        if self.t5 is None and self.stuck_status is None and self.pinned is None:
            self.t5 = max(now, self.started_at + self.start_duration_s)

    def channel_changed(self, users: list[str], now: float) -> None:
        """The channel's users are now ``users``: note new ones and (re)start the idle clock."""
        self.refresh(now)
        if self.ended_at is not None:
            return
        for uid in users:
            if uid not in self.seen_uids:
                self.seen_uids.append(uid)
        if users:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now

    def view(self, now: float) -> dict[str, Any]:
        """JSON-ready description for the control API (no secrets: ``request`` is redacted)."""
        status = self.status(now)
        return {
            "sid": self.sid,
            "appId": self.app_id,
            "cname": self.cname,
            "uid": self.uid,
            "mode": self.mode.value,
            "status": status,
            "active": self.ended_at is None,
            "startedAt": self.started_at,
            "recordingSince": self.is_recording_since(now),
            "stopRequestedAt": self.stop_at,
            "endedAt": self.ended_at,
            "endReason": self.end_reason,
            "idleSince": self.idle_since,
            "maxIdleTime": self.max_idle_s,
            "avFileType": list(self.av_file_types),
            "output": self.output,
            "seenUids": list(self.seen_uids),
            "pinned": self.pinned,
            "stuckStatus": self.stuck_status,
            "abnormalExitAt": self.doom_at,
            "updates": self.updates,
            "layout": self.layout,
            "request": self.request,
        }
