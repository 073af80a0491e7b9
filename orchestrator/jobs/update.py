"""The update and update-layout jobs: change the subscriptions or the layout of a recording.

The producer validated the ``clientRequest``; the job adds the recording's reference (appId,
cname, sid, mode, and uid for update-layout), waits for the sid of a start still under way, and
retries transient failures within the update budget. An update of a finished recording is
refused for good.
"""

from __future__ import annotations

from typing import Any, NoReturn

from orchestrator.jobs.context import (
    SHORT_WAIT_S,
    JobContext,
    JobFailedError,
    Retry,
    error_record,
    recording_ref,
)
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
    ctx: JobContext, session_id: str, action_name: str, client_request: dict[str, Any]
) -> str:
    """Send an update (``"update"``) or update-layout (``"update-layout"``) of the session.

    Raises:
        Retry: waiting for the sid, or a transient failure within the budget.
        JobFailedError: the recording has finished, the server refused, the budget ran out, or
            the stored session does not decode (left as it is).
    """
    with failing_on_unreadable(ctx, action_name, session_id):
        return _update(ctx, session_id, action_name, client_request)


def _update(
    ctx: JobContext, session_id: str, action_name: str, client_request: dict[str, Any]
) -> str:
    action = UPDATE_ACTIONS[action_name]
    session = ctx.store.get(session_id)
    if session is None or session.is_finished or session.phase == Phase.STOPPING:
        state = "gone" if session is None else session.phase.value
        _fail(ctx, action_name, session_id, {"kind": "finished", "reason": f"session is {state}"})
    attempt = ctx.store.record_attempt(session_id, action_name)
    policy = ctx.policy(action_name)
    if session.sid is None:
        if attempt >= policy.max_attempts or session.phase == Phase.ORPHANED:
            reason = f"no sid after {attempt} looks (phase {session.phase.value})"
            _fail(ctx, action_name, session_id, {"kind": "no_sid", "reason": reason})
        raise Retry(SHORT_WAIT_S, f"waiting for the start to give a sid ({session.phase.value})")
    ctx.pace(session.app_id)
    try:
        ctx.client.call(parse_request(action, update_body(session, action, client_request)))
    except (KrtcApiError, RequestValidationError) as exc:
        record = error_record(exc, ctx.clock())
        if should_retry(exc, attempt, policy):
            raise Retry(delay_s(exc, attempt, policy), str(record["reason"])) from None
        ctx.store.transition(
            session_id, identity=session.identity, last_error=record, why=f"{action_name} failed"
        )
        _fail(ctx, action_name, session_id, record)
    ctx.store.note(session_id, f"{action_name} applied", why=_summary(client_request))
    return f"{action_name} applied"


def _summary(client_request: dict[str, Any]) -> str:
    return ", ".join(sorted(client_request)) or "(empty)"


def _fail(ctx: JobContext, action: str, session_id: str, record: dict[str, Any]) -> NoReturn:
    record.setdefault("at", ctx.clock())
    raise JobFailedError(action, session_id, record)
