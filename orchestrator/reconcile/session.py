"""One session's reconciliation: compare what is stored with what ``query`` reports, and repair.

A control loop step (spec D13, D14). It never runs an API call other than ``query``; repairs
that need one (a stop, a start whose message was lost) are queued as ordinary tasks, which are
idempotent. Every change is a history entry with source ``poll``.

=========================================  ===============================================
seen                                       done
=========================================  ===============================================
status 0–4 / 5 / 6–7                       phase starting / recording / stopping
status 8                                   stopped, final file list kept, identity freed
status 20                                  failed, alert ``abnormal_exit`` (once); with
                                           ``restart_on_failure``, a new session (restart.py)
404 while it should record                 failed (lost), alert ``lost``
404 while it should stop                   stopped
should stop, server still running          the stop is queued again
below status 5 longer than stuck_after     alert ``stuck``
stopping longer than stuck_after           alert ``stuck``, the stop is queued again
max duration reached                       stop requested and queued
pending / starting, no activity for long   the start is queued again (its message was lost)
orphaned                                   alert ``orphaned`` (once: the job's may be lost)
orphaned past its maxIdleTime horizon      failed (expired): the identity is freed
a record that does not decode (corrupt,    skipped, alert ``corrupt_session`` (once), one
or of a newer schema)                      warning a round (runner.py)
=========================================  ===============================================

A round reads its sessions in batches (:meth:`SessionStore.read_hashes`, one round trip for
several sessions) and hands each reconciliation its stored hash as a *snapshot*. What a snapshot
decides alone is only that nothing is to be done: the server reports what is stored, and no
check is due. Anything else (a change, a re-queued task, an alert) is decided on the session
read again after the query, as a reconciliation without a snapshot does before it, so a snapshot
some seconds old never makes a change that the session's current state would not.

Queries respect the per-appId rate limit (``KRTC_RATE_LIMIT_PER_APP``), as the jobs' calls do,
but a reconciliation never sleeps more than :data:`PACE_WAIT_S` for it (nor past its batch's
deadline): a longer wait leaves the session to the next round, unqueried and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.jobs.context import JobContext, recording_ref
from orchestrator.jobs.start import orphaned_reason
from orchestrator.krtc.errors import KrtcApiError, NotFoundError
from orchestrator.reconcile.mapping import RUNNING_STATUSES, phase_for_status
from orchestrator.reconcile.restart import restart_failed
from orchestrator.state import Desired, Phase, Session, Source
from orchestrator.state.codec import session_from_hash
from orchestrator.tasking.timing import hard_time_limit_s

__all__ = ["PACE_WAIT_S", "NOT_READ", "Outcome", "Snapshot", "reconcile_session", "quiet_limit_s"]

log = logging.getLogger("orchestrator.reconcile")

#: maxIdleTime the server applies when a start does not give one (spec §4).
DEFAULT_MAX_IDLE_S = 30
#: Longest a reconciliation sleeps for the rate limit before its query; a longer wait leaves the
#: session to the next round (a batch's threads are few and its time is bounded).
PACE_WAIT_S = 0.5

#: A session's hash as a batch read found it (``None``: no such session); see the module's
#: description.
Snapshot = Mapping[str, str] | Mapping[bytes, bytes] | None


class _NotRead:
    def __repr__(self) -> str:
        return "NOT_READ"


#: ``snapshot`` of :func:`reconcile_session` when none was read: the session is read first.
NOT_READ: Any = _NotRead()


@dataclass
class Outcome:
    """What one reconciliation saw and did.

    Attributes:
        session_id: the session.
        queried: whether ``query`` was called.
        status: the status it answered.
        changes: what was changed or queued, one line each.
        error: why the query (or the reconciliation) failed.
        rate_limited: not queried: the rate limit of its appId asked for a longer wait than
            allowed; the next round tries again.
        deferred: not begun: its batch's deadline had passed; the batch hands it on.
        skipped: why the session was left alone (its record does not decode).
    """

    session_id: str
    queried: bool = False
    status: int | None = None
    changes: list[str] = field(default_factory=list)
    error: str | None = None
    rate_limited: bool = False
    deferred: bool = False
    skipped: str | None = None

    def note(self, text: str) -> None:
        self.changes.append(text)


def quiet_limit_s(ctx: JobContext) -> float:
    """Seconds without any change after which a session's queued task is presumed lost.

    A live task chain touches the session at least once per retry delay plus one run, so a
    session quiet for longer than that has no task working on it.
    """
    settings = ctx.settings
    return settings.retry_backoff_max + hard_time_limit_s(settings) + settings.reconcile_interval


def reconcile_session(
    ctx: JobContext,
    session_id: str,
    *,
    deadline: float | None = None,
    snapshot: Snapshot = NOT_READ,
) -> Outcome:
    """Reconcile one session (a no-op for a finished or missing one).

    Args:
        ctx: the services.
        session_id: the session.
        deadline: ``time.monotonic()`` after which no rate-limit wait may end (``None``: only
            :data:`PACE_WAIT_S` bounds it).
        snapshot: the session's hash from a batch read (:meth:`SessionStore.read_hashes`);
            by default the session is read here. With a snapshot, the session is read again
            after the query unless nothing is to be done (see the module's description).

    Raises:
        CorruptSessionError: the stored session (or snapshot) does not decode.
    """
    outcome = Outcome(session_id)
    from_snapshot = snapshot is not NOT_READ
    if from_snapshot:
        session = None if not snapshot else session_from_hash(session_id, snapshot)
    else:
        session = ctx.store.get(session_id)
    if session is None or session.is_finished:
        return outcome
    now = ctx.clock()
    if session.sid is None:
        if from_snapshot:
            # Rare (a start under way or lost, an orphan), and every path below acts: read it.
            session = ctx.store.get(session_id)
            if session is None or session.is_finished or session.sid is not None:
                return outcome  # it moved on since the snapshot: the next round looks again
        _without_sid(ctx, session, now, outcome)
        return outcome
    longest_wait = PACE_WAIT_S
    if deadline is not None:
        longest_wait = min(longest_wait, deadline - time.monotonic())
    if not ctx.try_pace(session.app_id, max_wait_s=longest_wait):
        outcome.rate_limited = True
        log.debug(
            "session %s not queried: the rate limit of appId %s asks for a longer wait than "
            "%.2fs; left for the next round",
            session_id,
            session.app_id,
            max(0.0, longest_wait),
        )
        return outcome
    try:
        response = ctx.client.query(recording_ref(session))
    except NotFoundError:
        outcome.queried = True
        current = _current(ctx, session) if from_snapshot else session
        if current is not None:
            _not_found(ctx, current, outcome)
        return outcome
    except KrtcApiError as exc:
        outcome.queried = True
        outcome.error = exc.reason
        log.warning("query of session %s failed: %s", session_id, exc.reason)
        return outcome
    outcome.queried = True
    outcome.status = response.status
    # In wire form, once: each access to ``response.files`` builds the items again.
    files = [f.to_json_dict() for f in response.files]
    if from_snapshot:
        if _nothing_to_do(ctx, session, response.status, files, now):
            return outcome
        current = _current(ctx, session)
        if current is None:
            return outcome
        session = current
    _observed(ctx, session, response.status, files, now, outcome)
    return outcome


def _current(ctx: JobContext, seen: Session) -> Session | None:
    """The session as stored now, if it is still unfinished with the sid that was queried."""
    session = ctx.store.get(seen.id)
    if session is None or session.is_finished or session.sid != seen.sid:
        return None
    return session


def _nothing_to_do(
    ctx: JobContext, session: Session, status: int | None, files: list[dict[str, Any]], now: float
) -> bool:
    """Whether :func:`_observed` would neither change, queue nor alert anything for ``session``.

    True only when the server reports what is stored (the status, no other files), the phase
    the status means is the stored one, the recording is wanted, and neither the stuck check
    (a phase below recording) nor the max duration is due. Conservative: anything else is
    decided on the session read again.
    """
    if status is None:
        return False
    if session.desired != Desired.RECORDING or session.phase in (Phase.PENDING, Phase.STARTING):
        return False
    target = phase_for_status(status)
    if target is not None and target != session.phase:
        return False
    if status != session.last_status:
        return False
    if files and files != session.files:
        return False
    limit = session.max_duration_s or ctx.settings.max_duration
    return limit is None or now - (session.started_at or session.created_at) < limit


def _without_sid(ctx: JobContext, session: Session, now: float, outcome: Outcome) -> None:
    quiet = now - session.updated_at
    if session.phase == Phase.ORPHANED:
        # The start job alerts when it orphans the session, but a worker killed (or a Redis
        # blip) between its write and its alert would leave an orphan nobody hears of; the
        # alert store keeps this to one alert per session (a reminder, if configured).
        ctx.alert("orphaned", session.id, orphaned_reason(session))
        horizon = _max_idle_s(session) + ctx.settings.reconcile_interval
        since = session.phase_since or session.updated_at
        if now - since > horizon:
            _move(
                ctx,
                session,
                Phase.FAILED,
                outcome,
                why=f"orphaned for {now - since:.0f}s: past its maxIdleTime horizon, the server "
                "has ended it; identity released",
            )
        return
    if session.phase in (Phase.PENDING, Phase.STARTING) and quiet > quiet_limit_s(ctx):
        if session.desired == Desired.STOPPED and session.phase == Phase.PENDING:
            return  # the producer cancels these itself
        task = ctx.send("krtc.start", [session.id])
        ctx.store.note(
            session.id,
            f"start queued again ({task})",
            source=Source.POLL,
            why=f"no activity for {quiet:.0f}s: its task was lost",
        )
        outcome.note(f"start re-queued after {quiet:.0f}s without activity")
    _check_stuck(ctx, session, now, outcome)


def _not_found(ctx: JobContext, session: Session, outcome: Outcome) -> None:
    if session.desired == Desired.STOPPED or session.phase == Phase.STOPPING:
        _move(ctx, session, Phase.STOPPED, outcome, why="404 on query: the recording has ended")
        return
    _move(
        ctx,
        session,
        Phase.FAILED,
        outcome,
        why="lost: the server no longer knows this recording (404 on query)",
        last_error={
            "kind": "lost",
            "status": 404,
            "code": 404,
            "reason": "404 on query while it should be recording",
            "at": ctx.clock(),
        },
    )
    ctx.alert("lost", session.id, "the server no longer knows this recording (404 on query)")


def _observed(
    ctx: JobContext,
    session: Session,
    status: int | None,
    files: list[dict[str, Any]],
    now: float,
    outcome: Outcome,
) -> None:
    if status is None:
        outcome.error = "query answer without a status"
        return
    target = phase_for_status(status)
    if target == Phase.FAILED:
        failed = _move(
            ctx,
            session,
            Phase.FAILED,
            outcome,
            status=status,
            files=files,
            why="abnormal exit (status 20)",
        )
        ctx.alert("abnormal_exit", session.id, "the recording exited abnormally (status 20)")
        if failed:
            restart_failed(ctx, session, outcome)
        return
    if target == Phase.STOPPED:
        _move(
            ctx,
            session,
            Phase.STOPPED,
            outcome,
            status=status,
            files=files,
            why="the server reports it ended (status 8)",
        )
        return
    if session.desired == Desired.STOPPED:
        # Never move back from stopping; a running recording that should stop gets its stop
        # again unless a stop job is visibly at work.
        if target == Phase.STOPPING and session.phase != Phase.STOPPING:
            _move(
                ctx,
                session,
                Phase.STOPPING,
                outcome,
                status=status,
                files=files,
                why=f"status {status}: stopping",
            )
        else:
            _update(ctx, session, status, files)
        if status in RUNNING_STATUSES:
            _restop(ctx, session, now, outcome, status)
        return
    if target is not None and target != session.phase:
        _move(ctx, session, target, outcome, status=status, files=files, why=f"status {status}")
        session = ctx.store.get_or_raise(session.id)
    else:
        _update(ctx, session, status, files)
    _check_stuck(ctx, session, now, outcome)
    _check_max_duration(ctx, session, now, outcome)


def _restop(ctx: JobContext, session: Session, now: float, outcome: Outcome, status: int) -> None:
    quiet = now - session.updated_at
    limit = ctx.settings.reconcile_interval
    if session.phase == Phase.STOPPING:
        limit = quiet_limit_s(ctx)
        since = session.phase_since or session.updated_at
        if now - since > ctx.settings.stuck_after:
            ctx.alert(
                "stuck",
                session.id,
                f"stopping for {now - since:.0f}s and the server still reports status {status}",
            )
    if quiet <= limit:
        return
    task = ctx.send("krtc.stop", [session.id])
    ctx.store.note(
        session.id,
        f"stop queued again ({task})",
        source=Source.POLL,
        why=f"should be stopped but the server reports status {status}",
    )
    outcome.note(f"stop re-queued (server status {status})")


def _check_stuck(ctx: JobContext, session: Session, now: float, outcome: Outcome) -> None:
    if session.phase not in (Phase.PENDING, Phase.STARTING):
        return
    since = session.phase_since or session.created_at
    if now - since > ctx.settings.stuck_after:
        status = "no sid yet" if session.sid is None else f"status {session.last_status}"
        ctx.alert("stuck", session.id, f"{session.phase.value} for {now - since:.0f}s ({status})")
        outcome.note(f"stuck: {session.phase.value} for {now - since:.0f}s")


def _check_max_duration(ctx: JobContext, session: Session, now: float, outcome: Outcome) -> None:
    limit = session.max_duration_s or ctx.settings.max_duration
    if limit is None or session.desired != Desired.RECORDING:
        return
    # Counted from the start's answer (the recording runs since at least then), on Redis'
    # clock like ``now``: never stopped before it has run that long, whatever the hosts' clocks.
    since = session.started_at or session.created_at
    if now - since < limit:
        return
    result = ctx.store.request_stop(
        session.id, why=f"max duration of {limit}s reached", source=Source.POLL
    )
    if result.needs_stop_call:
        ctx.send("krtc.stop", [session.id])
    outcome.note(f"max duration {limit}s reached: stop queued")


def _update(ctx: JobContext, session: Session, status: int, files: list[dict[str, Any]]) -> None:
    if status != session.last_status or (files and files != session.files):
        ctx.store.transition(
            session.id,
            identity=session.identity,
            last_status=status,
            files=files or session.files,
            record=False,
        )


def _move(
    ctx: JobContext,
    session: Session,
    to: Phase,
    outcome: Outcome,
    *,
    why: str,
    status: int | None = None,
    files: list[dict[str, Any]] | None = None,
    last_error: dict[str, Any] | None = None,
) -> bool:
    """Move the session to ``to`` if it is still where it was seen; True if this call moved it."""
    changes: dict[str, Any] = {}
    if status is not None:
        changes["last_status"] = status
    if files:
        changes["files"] = files
    if last_error is not None:
        changes["last_error"] = last_error
    result = ctx.store.transition(
        session.id,
        identity=session.identity,
        to=to,
        allowed_from=[session.phase],
        why=why,
        source=Source.POLL,
        **changes,
    )
    if result.phase_changed:
        outcome.note(f"{session.phase.value} -> {to.value}: {why}")
    return result.phase_changed


def _max_idle_s(session: Session) -> float:
    config = session.request.get("clientRequest", {}).get("recordingConfig", {})
    value = config.get("maxIdleTime") if isinstance(config, dict) else None
    return float(value) if isinstance(value, int | float) else DEFAULT_MAX_IDLE_S
