"""The stray-stop job: stop a recording that no unfinished session follows.

A start answer can name a sid that no session can take any more: its session finished (a cancel,
a reconciler's verdict) or vanished while the call was in flight, or it already records with
another sid. Such a recording runs, and bills, until its ``maxIdleTime`` ends it, so the start job
queues this job with the recording's reference (appId, cname, sid, mode: no secret) and the
session it came from. The stop retries within the stop budget (spec D13), like a session's stop;
404 means it has ended already.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.jobs.context import JobContext, JobFailedError, Retry, error_record
from orchestrator.krtc.errors import KrtcApiError, NotFoundError
from orchestrator.krtc.retry import delay_s, should_retry
from orchestrator.state import SessionNotFoundError

__all__ = ["run_stop_stray"]

log = logging.getLogger("orchestrator.jobs.stray")

_REFERENCE_FIELDS = ("appId", "cname", "sid", "mode")


def run_stop_stray(
    ctx: JobContext, session_id: str, reference: dict[str, Any], attempt: int
) -> str:
    """Stop the recording ``reference`` names (its session is ``session_id``).

    Args:
        ctx: the job context.
        session_id: the session whose start gave the sid (for its history and alerts).
        reference: ``{appId, cname, sid, mode}``.
        attempt: this run's number, from 1.

    Raises:
        Retry: a transient failure within the stop budget.
        JobFailedError: refused for good, or the budget ran out (a dead letter and an alert).
    """
    missing = [name for name in _REFERENCE_FIELDS if not reference.get(name)]
    if missing:
        raise JobFailedError(
            "stop",
            session_id,
            {"kind": "bad_reference", "reason": f"stray stop without {', '.join(missing)}"},
        )
    ref = {name: str(reference[name]) for name in _REFERENCE_FIELDS}
    ctx.pace(ref["appId"])
    try:
        response = ctx.client.stop(ref)
    except NotFoundError:
        return _done(ctx, session_id, ref, "404: it had ended already")
    except KrtcApiError as exc:
        record = error_record(exc, ctx.clock())
        policy = ctx.policy("stop")
        if should_retry(exc, attempt, policy):
            raise Retry(
                delay_s(exc, attempt, policy),
                f"stray stop attempt {attempt}/{policy.max_attempts}: {record['reason']}",
            ) from None
        ctx.alert("stop_failing", session_id, f"stray recording {ref['sid']}: {record['reason']}")
        raise JobFailedError("stop", session_id, record) from None
    return _done(ctx, session_id, ref, f"stop accepted (status {response.status})")


def _done(ctx: JobContext, session_id: str, ref: dict[str, str], how: str) -> str:
    log.info("stray recording %s of session %s stopped: %s", ref["sid"], session_id, how)
    try:
        ctx.store.note(session_id, f"stray recording {ref['sid']} stopped", why=how)
    except SessionNotFoundError:
        pass
    return f"stray recording {ref['sid']} stopped: {how}"
