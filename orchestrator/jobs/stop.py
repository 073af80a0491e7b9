"""The stop job (spec D13): it is never dropped.

It waits for the sid of a start still under way (at most ``KRTC_SID_WAIT_S`` seconds), calls
stop, and then confirms the end with ``query`` until the server reports status 8 (or forgets the
recording: 404, also success). Transient failures retry with backoff for a budget far larger
than a start's, counted per stop request (one run of the job: :mod:`orchestrator.jobs.budget`);
when even that is exhausted, or the server refuses the stop for good, the job goes to the dead
letters, someone is alerted, and the session stays ``stopping`` so that the reconciler issues
the stop again.

The confirmation has a budget of its own: ``KRTC_STOP_CONFIRM_S`` seconds on Redis' clock from
the run's first look. When it runs out the job raises ``stop_unconfirmed`` and ends without a
dead letter: the stop was accepted, and the reconciler moves the session when it sees status 8
or 404 (or stops it again if the server reports it running).
"""

from __future__ import annotations

import logging
from typing import NoReturn

from orchestrator.jobs.budget import WAIT_CONFIRM, WAIT_SID, RunBudget
from orchestrator.jobs.context import (
    SHORT_WAIT_S,
    JobContext,
    JobFailedError,
    Retry,
    error_record,
    recording_ref,
)
from orchestrator.jobs.flight import single_flight
from orchestrator.jobs.unreadable import failing_on_unreadable
from orchestrator.krtc.enums import RecordingStatus
from orchestrator.krtc.errors import KrtcApiError, NotFoundError
from orchestrator.krtc.models.responses import QueryResponse, StopResponse
from orchestrator.krtc.retry import delay_s, should_retry
from orchestrator.state import Phase, Session

__all__ = ["run_stop", "CONFIRM_EVERY_S"]

log = logging.getLogger("orchestrator.jobs.stop")

#: Seconds between queries while the server finishes a stopped recording (status 6, 7).
CONFIRM_EVERY_S = 1.0

_EXITED = int(RecordingStatus.EXITED)
_ABNORMAL = int(RecordingStatus.EXITED_ABNORMALLY)
_STOP_ACCEPTED = frozenset(
    {int(RecordingStatus.STOP_REQUESTED), int(RecordingStatus.COMPONENTS_STOPPED)}
)


def run_stop(ctx: JobContext, session_id: str, *, run_id: str) -> str:
    """Stop the recording of ``session_id`` and confirm that it ended.

    Args:
        ctx: the job context.
        session_id: the session.
        run_id: this run's id (the task id): the budgets are the run's own.

    Returns:
        a one-line outcome for the task result (also when the end was not confirmed in time:
        then ``stop_unconfirmed`` is raised and the reconciler takes over).

    Raises:
        Retry: waiting for a sid, confirming the end, or a transient failure within the budget.
        JobFailedError: a permanent refusal or an exhausted budget (the session stays stopping),
            or a stored session that does not decode (left as it is).
    """
    with failing_on_unreadable(ctx, "stop", session_id):
        return _stop(ctx, session_id, RunBudget.of(ctx, run_id))


def _stop(ctx: JobContext, session_id: str, budget: RunBudget) -> str:
    session = ctx.store.get(session_id)
    if session is None:
        return f"session {session_id} is gone; nothing to stop"
    if session.is_finished:
        return f"nothing to do: session is {session.phase.value}"
    if session.phase == Phase.PENDING:
        ctx.store.transition(
            session_id,
            identity=session.identity,
            to=Phase.STOPPED,
            allowed_from=[Phase.PENDING],
            why="stopped before the start was sent",
        )
        return "cancelled before the start was sent"
    if session.sid is None:
        if session.phase == Phase.ORPHANED:
            return "orphaned: no sid to stop with; its maxIdleTime bounds it (spec D12)"
        waited = budget.waited_s(WAIT_SID)
        if waited >= ctx.settings.sid_wait_s:
            reason = f"the start gave no sid in {waited:.0f}s (phase {session.phase.value})"
            _give_up(ctx, session, {"kind": "no_sid", "reason": reason, "at": ctx.clock()})
        raise Retry(SHORT_WAIT_S, f"waiting for the start to give a sid (phase {session.phase})")
    with single_flight(ctx, session_id, "stop"):
        # Read again under the lease: a run that held it before may have stopped it already.
        current = ctx.store.get(session_id)
        if current is None or current.is_finished:
            return "nothing to do: stopped by another run"
        if current.phase == Phase.STOPPING and current.last_status in _STOP_ACCEPTED:
            return _confirm(ctx, current, budget)
        return _send_stop(ctx, current, budget)


def _send_stop(ctx: JobContext, session: Session, budget: RunBudget) -> str:
    session_id = session.id
    ctx.pace(session.app_id)
    moved = ctx.store.transition(
        session_id,
        identity=session.identity,
        to=Phase.STOPPING,
        allowed_from=[Phase.STARTING, Phase.RECORDING, Phase.STOPPING],
        why="sending stop",
        record=session.phase != Phase.STOPPING,
        count_attempt="stop",
    )
    if not moved.applied:
        return f"nothing to do: session is {moved.found.value}"
    attempt = budget.count_attempt()
    try:
        response = ctx.client.stop(recording_ref(session))
    except NotFoundError:
        return _ended(ctx, session, None, "404 on stop: the server no longer runs it")
    except KrtcApiError as exc:
        _failed_attempt(ctx, session, exc, attempt)
    return _after_stop(ctx, session, response, attempt, budget)


def _after_stop(
    ctx: JobContext, session: Session, response: StopResponse, attempt: int, budget: RunBudget
) -> str:
    status = response.status
    files = [f.to_json_dict() for f in response.files]
    if status in (_EXITED, _ABNORMAL):
        return _ended(ctx, session, response, f"stopped (attempt {attempt})")
    ctx.store.transition(
        session.id,
        identity=session.identity,
        allowed_from=[Phase.STOPPING],
        last_status=status if status is not None else int(RecordingStatus.STOP_REQUESTED),
        files=files or session.files,
        last_error=None,
        why=f"stop accepted (status {status}); confirming the end",
    )
    # The confirmation's time budget counts from here (the first look, for a run that comes
    # back to confirm a stop an earlier run sent).
    budget.waited_s(WAIT_CONFIRM)
    raise Retry(CONFIRM_EVERY_S, f"stop accepted (status {status}); confirming the end")


def _confirm(ctx: JobContext, session: Session, budget: RunBudget) -> str:
    budget.waited_s(WAIT_CONFIRM)
    ctx.pace(session.app_id)
    try:
        response = ctx.client.query(recording_ref(session))
    except NotFoundError:
        return _ended(ctx, session, None, "404 on query after stop: it has ended")
    except KrtcApiError as exc:
        if exc.retryable:
            return _keep_confirming(
                ctx, session, budget, CONFIRM_EVERY_S, f"confirming the end: {exc.reason}"
            )
        raise
    status = response.status
    if status in (_EXITED, _ABNORMAL):
        return _ended(ctx, session, response, f"stop confirmed (status {status})")
    if status in _STOP_ACCEPTED:
        if status != session.last_status:
            ctx.store.transition(
                session.id, identity=session.identity, last_status=status, record=False
            )
        return _keep_confirming(
            ctx,
            session,
            budget,
            CONFIRM_EVERY_S,
            f"status {status}: the server is finishing the recording",
        )
    # Still running (the stop was lost server-side, or it was restarted): stop again.
    ctx.store.transition(
        session.id,
        identity=session.identity,
        last_status=status,
        why=f"still running after stop (status {status}); stopping again",
    )
    again = f"status {status} after stop; stopping again"
    return _keep_confirming(ctx, session, budget, 0.0, again)


def _keep_confirming(
    ctx: JobContext, session: Session, budget: RunBudget, delay: float, reason: str
) -> str:
    """Look again after ``delay`` seconds while the confirmation budget lasts; past it, raise
    ``stop_unconfirmed`` and end (no dead letter: the reconciler takes over)."""
    waited = budget.waited_s(WAIT_CONFIRM)
    limit = ctx.settings.stop_confirm_s
    if waited < limit:
        raise Retry(delay, reason)
    why = f"the end (status 8) was not confirmed in {waited:.0f}s ({reason})"
    ctx.store.note(session.id, "stop not confirmed; left to the reconciler", why=why)
    ctx.alert("stop_unconfirmed", session.id, f"stop accepted but {why}")
    log.warning("session %s: %s; left to the reconciler", session.id, why)
    return f"unconfirmed: {why}; left to the reconciler"


def _ended(
    ctx: JobContext,
    session: Session,
    response: StopResponse | QueryResponse | None,
    why: str,
) -> str:
    files = [f.to_json_dict() for f in response.files] if response else []
    status = response.status if response is not None else None
    abnormal = status == _ABNORMAL
    ctx.store.transition(
        session.id,
        identity=session.identity,
        to=Phase.FAILED if abnormal else Phase.STOPPED,
        last_status=status if status is not None else session.last_status,
        files=files or session.files,
        last_error=None,
        why=why + (" (abnormal exit, status 20)" if abnormal else ""),
    )
    if abnormal:
        ctx.alert("abnormal_exit", session.id, "exited abnormally (status 20) while stopping")
    log.info("session %s stopped: %s", session.id, why)
    return f"stopped: {why}"


def _failed_attempt(ctx: JobContext, session: Session, exc: KrtcApiError, attempt: int) -> NoReturn:
    record = error_record(exc, ctx.clock())
    policy = ctx.policy("stop")
    ctx.store.transition(session.id, identity=session.identity, last_error=record, record=False)
    if should_retry(exc, attempt, policy):
        wait = delay_s(exc, attempt, policy)
        raise Retry(wait, f"stop attempt {attempt}/{policy.max_attempts}: {record['reason']}")
    _give_up(ctx, session, record)


def _give_up(ctx: JobContext, session: Session, record: dict[str, object]) -> NoReturn:
    reason = str(record.get("reason"))
    ctx.store.note(
        session.id,
        "stop job gave up; left stopping for the reconciler",
        why=reason,
    )
    ctx.alert("stop_failing", session.id, f"stop is failing: {reason}")
    raise JobFailedError("stop", session.id, dict(record))
