"""The update and update-layout jobs: change the subscriptions or the layout of a recording.

The producer validated the ``clientRequest`` and numbered it (a sequence number per session and
action: :mod:`orchestrator.state.sequences`). The job adds the recording's reference (appId,
cname, sid, mode, and uid for update-layout), waits for the sid of a start still under way (at
most ``KRTC_SID_WAIT_S`` seconds), and retries transient failures within the update budget of
this run (:mod:`orchestrator.jobs.budget`). An update of a finished recording is refused for
good.

Order: an update is sent only if its number is above the last one applied for its action, and
its number is recorded after the call succeeds; an older update that comes (or is retried) after
a newer one was applied ends without a call and without a dead letter (superseded). Calls of one
action of a session never overlap: the run holds the (session, action) lease while its call is
in flight, so copies of one message delivered at once make one call. A message without a number
(queued by an older producer) is applied as it comes.
"""

from __future__ import annotations

from typing import Any, NoReturn

from orchestrator.jobs.budget import WAIT_SID, RunBudget
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
from orchestrator.krtc.enums import Action
from orchestrator.krtc.errors import KrtcApiError
from orchestrator.krtc.retry import delay_s, should_retry
from orchestrator.krtc.validation import RequestValidationError, parse_request
from orchestrator.state import Phase, Session

__all__ = ["UPDATE_ACTIONS", "run_update", "update_body"]

#: The actions this job runs, by their short name.
UPDATE_ACTIONS = {"update": Action.UPDATE, "update-layout": Action.UPDATE_LAYOUT}


def update_body(session: Session, action: Action, client_request: dict[str, Any]) -> dict[str, Any]:
    """The wire body of an update or update-layout of ``session``."""
    body = recording_ref(session)
    if action == Action.UPDATE_LAYOUT:
        body["uid"] = session.uid
    body["clientRequest"] = client_request
    return body


def run_update(
    ctx: JobContext,
    session_id: str,
    action_name: str,
    client_request: dict[str, Any],
    *,
    run_id: str,
    sequence: int | None = None,
) -> str:
    """Send an update (``"update"``) or update-layout (``"update-layout"``) of the session.

    Args:
        ctx: the job context.
        session_id: the session.
        action_name: ``"update"`` or ``"update-layout"``.
        client_request: the validated ``clientRequest``.
        run_id: this run's id (the task id): the update budget counts the run's attempts.
        sequence: the producer's number of this update (``None``: a message without one,
            applied as it comes).

    Returns:
        a one-line outcome: applied, or superseded by a newer update (no call made).

    Raises:
        Retry: waiting for the sid or for another run's call, or a transient failure within the
            budget.
        JobFailedError: the recording has finished, the server refused, the budget ran out, no
            sid came in time, or the stored session does not decode (left as it is).
    """
    with failing_on_unreadable(ctx, action_name, session_id):
        return _update(
            ctx, session_id, action_name, client_request, sequence, RunBudget.of(ctx, run_id)
        )


def _update(
    ctx: JobContext,
    session_id: str,
    action_name: str,
    client_request: dict[str, Any],
    sequence: int | None,
    budget: RunBudget,
) -> str:
    session = ctx.store.get(session_id)
    if session is None or session.is_finished or session.phase == Phase.STOPPING:
        state = "gone" if session is None else session.phase.value
        _fail(ctx, action_name, session_id, {"kind": "finished", "reason": f"session is {state}"})
    superseded = _superseded(ctx, session_id, action_name, sequence)
    if superseded:
        return superseded
    if session.sid is None:
        waited = budget.waited_s(WAIT_SID)
        if waited >= ctx.settings.sid_wait_s or session.phase == Phase.ORPHANED:
            reason = f"no sid after {waited:.0f}s (phase {session.phase.value})"
            _fail(ctx, action_name, session_id, {"kind": "no_sid", "reason": reason})
        raise Retry(SHORT_WAIT_S, f"waiting for the start to give a sid ({session.phase.value})")
    with single_flight(ctx, session_id, action_name):
        # Read again under the lease: a run that held it may have applied a newer one.
        superseded = _superseded(ctx, session_id, action_name, sequence)
        if superseded:
            return superseded
        return _send(ctx, session, action_name, client_request, sequence, budget)


def _superseded(ctx: JobContext, session_id: str, action: str, sequence: int | None) -> str:
    """The outcome line when a newer update of ``action`` was applied already, else ``""``."""
    if sequence is None:
        return ""
    applied = ctx.sequences.applied(session_id, action)
    if sequence > applied:
        return ""
    return f"{action} {sequence} superseded: {action} {applied} was applied; not sent"


def _send(
    ctx: JobContext,
    session: Session,
    action_name: str,
    client_request: dict[str, Any],
    sequence: int | None,
    budget: RunBudget,
) -> str:
    """Make the call while holding the lease; record the applied number after it succeeds."""
    action = UPDATE_ACTIONS[action_name]
    ctx.pace(session.app_id)
    attempt = budget.count_attempt()
    # For people (krtc-rec show): the session's calls of this action in all.
    ctx.store.record_attempt(session.id, action_name)
    policy = ctx.policy(action_name)
    try:
        ctx.client.call(parse_request(action, update_body(session, action, client_request)))
    except (KrtcApiError, RequestValidationError) as exc:
        record = error_record(exc, ctx.clock())
        if should_retry(exc, attempt, policy):
            reason = f"{action_name} attempt {attempt}/{policy.max_attempts}: {record['reason']}"
            raise Retry(delay_s(exc, attempt, policy), reason) from None
        ctx.store.transition(
            session.id, identity=session.identity, last_error=record, why=f"{action_name} failed"
        )
        _fail(ctx, action_name, session.id, record)
    why = _summary(client_request)
    if sequence is not None:
        ctx.sequences.record_applied(session.id, action_name, sequence)
        why += f" (#{sequence})"
    ctx.store.note(session.id, f"{action_name} applied", why=why)
    return f"{action_name} applied: {why} (attempt {attempt})"


def _summary(client_request: dict[str, Any]) -> str:
    return ", ".join(sorted(client_request)) or "(empty)"


def _fail(ctx: JobContext, action: str, session_id: str, record: dict[str, Any]) -> NoReturn:
    record.setdefault("at", ctx.clock())
    raise JobFailedError(action, session_id, record)
