"""What a server status means for a session (spec §6, D13, D14)."""

from __future__ import annotations

from orchestrator.krtc.enums import RecordingStatus
from orchestrator.state import Phase

__all__ = ["phase_for_status", "RUNNING_STATUSES"]

#: Statuses of a recording the server is still running (not stopping, not ended).
RUNNING_STATUSES = frozenset(range(0, 6))


def phase_for_status(status: int) -> Phase | None:
    """0–4 → starting, 5 → recording, 6–7 → stopping, 8 → stopped, 20 → failed.

    ``None`` for a status the spec does not define (it is kept, but changes no phase).
    """
    if 0 <= status <= 4:
        return Phase.STARTING
    if status == RecordingStatus.RECORDING:
        return Phase.RECORDING
    if status in (RecordingStatus.STOP_REQUESTED, RecordingStatus.COMPONENTS_STOPPED):
        return Phase.STOPPING
    if status == RecordingStatus.EXITED:
        return Phase.STOPPED
    if status == RecordingStatus.EXITED_ABNORMALLY:
        return Phase.FAILED
    return None
