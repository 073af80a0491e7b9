"""The invariants of the chaos soak (``bench/chaos.py``), checked against the sandbox's records.

The sandbox is the witness: it saw every recording that was started, whatever the orchestrator
believes. Every soak session has a channel of its own, so the sandbox's recordings of a channel
are the recordings started for that session.

* ``running_believed_ended``: a recording still running in the sandbox after the settle time
  whose session is final (``stopped`` or ``failed``). A session that was ever ``orphaned`` is
  exempt here (spec D12: its sid is unknown, only ``maxIdleTime`` bounds it once the channel is
  empty); the soak then empties those channels and ``still_running`` must be 0.
* ``still_running``: any recording still running at the very end.
* ``duplicate_recordings``: more recordings started for a session than it knows (one if it got a
  sid or was orphaned, else none), or a sid the session holds that is not its channel's.
* ``unsettled``: a session not final at the end of the settle time, or without a stop requested.
* ``orphan_not_alerted``: a session that was ever ``orphaned`` without an ``orphaned`` alert.
* ``ended_unexplained``: a recording that ended without a stop from the project (idle, abnormal)
  whose session is not ``failed``/orphaned with an alert that says so.
* ``unknown_recording``: a recording in a soak channel for which no session exists.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.state import Desired, Phase, Session

__all__ = ["INVARIANTS", "Violation", "Evidence", "check", "was_orphaned"]

#: Invariant name -> what it means, in the order the summary prints them.
INVARIANTS = {
    "running_believed_ended": "recordings running whose session is final (not orphaned)",
    "still_running": "recordings still running at the end (orphans included)",
    "duplicate_recordings": "recordings started beyond what their session knows",
    "unsettled": "sessions not final (or without a stop requested) after the settle time",
    "orphan_not_alerted": "sessions ever orphaned without an 'orphaned' alert",
    "ended_unexplained": "recordings ended without a project stop, session not failed+alerted",
    "unknown_recording": "recordings in a soak channel that no session owns",
}
#: How a history entry records a move to ``orphaned`` ("phase starting -> orphaned; ...").
_BECAME_ORPHANED = re.compile(r"-> orphaned\b")
#: Alerts that explain a recording the project did not stop.
EXPLAINING_ALERTS = ("orphaned", "abnormal_exit", "lost")


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which, for which session (if any), and what was seen."""

    invariant: str
    session_id: str | None
    detail: str


@dataclass
class Evidence:
    """What the soak gathered at the end.

    Attributes:
        sessions: cname -> the session (with its history) of that channel.
        recordings_mid: the sandbox's recordings after the settle time (before orphan channels
            were emptied).
        recordings_end: the sandbox's recordings at the very end.
        alerts: session id -> kinds of alert raised for it.
    """

    sessions: dict[str, Session]
    recordings_mid: list[dict[str, Any]]
    recordings_end: list[dict[str, Any]]
    alerts: dict[str, set[str]] = field(default_factory=dict)


def was_orphaned(session: Session) -> bool:
    """Whether the session is or ever was ``orphaned`` (its history says so)."""
    if session.phase == Phase.ORPHANED:
        return True
    return any(_BECAME_ORPHANED.search(entry.what) for entry in session.history)


def _by_cname(recordings: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in recordings:
        grouped[str(rec["cname"])].append(rec)
    return grouped


def check(evidence: Evidence) -> list[Violation]:
    """Every violation of the invariants in ``evidence`` (empty when all hold)."""
    out: list[Violation] = []
    sessions = evidence.sessions
    mid = _by_cname(evidence.recordings_mid)
    end = _by_cname(evidence.recordings_end)

    for cname, recs in sorted(end.items()):
        if cname not in sessions:
            sids = ", ".join(str(r["sid"]) for r in recs)
            out.append(Violation("unknown_recording", None, f"channel {cname}: sids {sids}"))

    for cname, session in sorted(sessions.items()):
        orphaned = was_orphaned(session)
        kinds = evidence.alerts.get(session.id, set())
        for rec in mid.get(cname, []):
            if rec["active"] and session.is_finished and not orphaned:
                out.append(
                    Violation(
                        "running_believed_ended",
                        session.id,
                        f"sid {rec['sid']} status {rec['status']} runs; session is "
                        f"{session.phase.value}",
                    )
                )
        recs = end.get(cname, [])
        for rec in recs:
            if rec["active"]:
                out.append(
                    Violation(
                        "still_running",
                        session.id,
                        f"sid {rec['sid']} status {rec['status']}; session {session.phase.value}"
                        + (" (orphaned)" if orphaned else ""),
                    )
                )
        knows = 1 if (session.sid is not None or orphaned) else 0
        if len(recs) > knows:
            sids = ", ".join(f"{r['sid']}@{r['startedAt']:.3f}" for r in recs)
            out.append(
                Violation(
                    "duplicate_recordings",
                    session.id,
                    f"{len(recs)} recordings started (sids {sids}); the session knows {knows} "
                    f"(sid {session.sid}, phase {session.phase.value})",
                )
            )
        if session.sid is not None and session.sid not in {r["sid"] for r in recs}:
            out.append(
                Violation(
                    "duplicate_recordings",
                    session.id,
                    f"the session holds sid {session.sid}, which its channel never ran",
                )
            )
        if not session.is_finished or session.desired != Desired.STOPPED:
            out.append(
                Violation(
                    "unsettled",
                    session.id,
                    f"phase {session.phase.value}, desired {session.desired.value}",
                )
            )
        if orphaned and "orphaned" not in kinds:
            out.append(
                Violation(
                    "orphan_not_alerted",
                    session.id,
                    f"phase {session.phase.value}; alerts: {sorted(kinds) or 'none'}",
                )
            )
        for rec in recs:
            reason = rec.get("endReason")
            if rec["active"] or reason == "stopped":
                continue
            explained = (session.phase == Phase.FAILED or orphaned) and bool(
                kinds.intersection(EXPLAINING_ALERTS)
            )
            if not explained:
                out.append(
                    Violation(
                        "ended_unexplained",
                        session.id,
                        f"sid {rec['sid']} ended ({reason}, status {rec['status']}) without a "
                        f"project stop; session {session.phase.value}, alerts "
                        f"{sorted(kinds) or 'none'}",
                    )
                )
    return out
