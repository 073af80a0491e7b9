"""The start job: send a session's start request once, and make the outcome stick.

Idempotent: a redelivered or repeated start of a session that already has a sid does nothing.
A 409 follows spec D12: the sid of the 409 body (or one already known) makes it a success;
without a sid the session is ``orphaned`` and someone is alerted.

Single flight: a run holds the session's start lease (a Redis key with an expiry on Redis'
clock) while its call is in flight; another run of the same start (a redelivery, a re-queue by
the reconciler or the scheduler, a message restored after the visibility timeout) waits for it
instead of sending a second start.

A sid that a start answer gives is never thrown away: it is logged first, then stored whatever
the session did meanwhile (:meth:`SessionStore.adopt_sid`); when no unfinished session follows it
(finished, gone, or holding another sid) the recording it names is stopped at once
(``krtc.stop_stray``), and a stop requested meanwhile is queued.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import NoReturn

from orchestrator.errors import ConfigError
from orchestrator.jobs.budget import RunBudget
from orchestrator.jobs.context import (
    SHORT_WAIT_S,
    JobContext,
    JobFailedError,
    Retry,
    error_record,
)
from orchestrator.jobs.unreadable import failing_on_unreadable, unreadable_error
from orchestrator.krtc.errors import ConflictError, KrtcApiError
from orchestrator.krtc.retry import delay_s, should_retry
from orchestrator.krtc.validation import RequestValidationError
from orchestrator.state import CorruptSessionError, Desired, Phase, Session
from orchestrator.state.codec import session_from_hash
from orchestrator.state.flights import BEGIN_WHY, Finisher
from orchestrator.state.results import AdoptOutcome, AdoptResult
from orchestrator.tasking.timing import longest_run_s

__all__ = ["run_start", "run_begun_start", "adopt_sid", "orphaned_reason"]

log = logging.getLogger("orchestrator.jobs.start")

_SENT_PHASES = (Phase.RECORDING, Phase.STOPPING, Phase.ORPHANED)


def run_start(
    ctx: JobContext,
    session_id: str,
    *,
    run_id: str,
    budget: RunBudget | None = None,
    finish: Finisher | None = None,
) -> str:
    """Start the recording of ``session_id``.

    Args:
        ctx: the job context.
        session_id: the session.
        run_id: this run's id (the task id): the start budget counts the run's attempts.
        budget: the run's budget, when the caller wants to see it afterwards (``settled``).
        finish: what stores the sid (default :meth:`StartFlights.finish`, its own round trip;
            the start lane's workers batch it with their next take).

    Returns:
        a one-line outcome for the task result (no secrets).

    Raises:
        Retry: a transient failure within the budget.
        JobFailedError: a permanent failure or an exhausted budget (the session is ``failed``),
            or a stored session that does not decode (left as it is).
    """
    with failing_on_unreadable(ctx, "start", session_id):
        return _start(ctx, session_id, budget or RunBudget.of(ctx, run_id), finish)


def _start(ctx: JobContext, session_id: str, budget: RunBudget, finish: Finisher | None) -> str:
    session = ctx.store.get(session_id)
    if session is None:
        return f"session {session_id} is gone; nothing to start"
    if session.is_finished or session.phase in _SENT_PHASES:
        return f"nothing to do: session is {session.phase.value}"
    if session.desired == Desired.STOPPED and not _maybe_sent(session):
        ctx.store.transition(
            session_id,
            identity=session.identity,
            to=Phase.STOPPED,
            allowed_from=[Phase.PENDING, Phase.STARTING],
            why="stop requested before the start was sent",
        )
        return "cancelled: a stop was requested before the start was sent"
    return _send_start(ctx, session, budget, finish)


def _send_start(
    ctx: JobContext, session: Session, budget: RunBudget, finish: Finisher | None
) -> str:
    """Take the lease, send the start and store its sid; the session as read before.

    Two round trips around the call (:mod:`orchestrator.state.flights`): one takes the lease,
    moves the session to ``starting`` and counts the attempt; one stores the sid, releases
    the lease and forgets the run. On any other way out the lease is released here.
    """
    ctx.pace(session.app_id)
    token = uuid.uuid4().hex
    begun = ctx.flights.begin(
        session,
        run_id=budget.run_id,
        token=token,
        lease_s=longest_run_s(ctx.settings),
        now=ctx.store.clock(),
        why=BEGIN_WHY,
        record=session.phase == Phase.PENDING,
    )
    if begun.busy:
        raise Retry(SHORT_WAIT_S, "another run of this start has its call in flight")
    if not begun.applied:
        assert begun.found is not None
        return f"nothing to do: session is {begun.found.value}"
    return _call(ctx, session, budget, token, begun.attempt, finish)


def run_begun_start(
    ctx: JobContext,
    session_id: str,
    fields: Mapping[bytes, bytes],
    *,
    run_id: str,
    token: str,
    attempt: int,
    budget: RunBudget | None = None,
    finish: Finisher | None = None,
) -> str:
    """Go on with a start its delivery already began (the start lane's take: the lease is
    ``token``'s, the session ``starting`` and the attempt counted, as :func:`run_start` begins
    it): send the start and store its sid.

    Args:
        ctx: the job context.
        session_id: the session.
        fields: the session's hash after the begin, as stored.
        run_id, budget, finish: as for :func:`run_start`.
        token: the start lease's token.
        attempt: the run's attempt the begin counted.

    Returns, raises: as :func:`run_start`.
    """
    budget = budget or RunBudget.of(ctx, run_id)
    try:
        session = session_from_hash(session_id, fields)
    except CorruptSessionError as exc:
        # The take checked only what it wrote (the schema, the attempts counter): the job
        # gives up on the rest as it does on any record it cannot read.
        ctx.leases.release(session_id, "start", token)
        raise JobFailedError("start", session_id, unreadable_error(exc, ctx.clock())) from None
    return _call(ctx, session, budget, token, attempt, finish)


def _call(
    ctx: JobContext,
    session: Session,
    budget: RunBudget,
    token: str,
    attempt: int,
    finish: Finisher | None,
) -> str:
    """Send the begun start and store its sid; on any other way out release the lease."""
    finished = False
    try:
        try:
            body = ctx.profiles.resolve(session.request)
            response = ctx.client.start(body)
        except ConflictError as exc:
            return _conflict(ctx, session, exc)
        except (KrtcApiError, RequestValidationError, ConfigError) as exc:
            _failed_attempt(ctx, session, exc, attempt)
        assert response.sid, "KrtcClient.start refuses an answer without a sid"
        why = f"started (attempt {attempt})"
        _log_sid(session, response.sid, why)
        result = (finish or ctx.flights.finish)(
            session, response.sid, run_id=budget.run_id, token=token, now=ctx.clock(), why=why
        )
        finished = budget.settled = True
        return _after_adopt(ctx, session, response.sid, result)
    finally:
        if not finished:
            ctx.leases.release(session.id, "start", token)


def adopt_sid(ctx: JobContext, session: Session, sid: str, why: str) -> str:
    """Keep the sid a start answer gave, and stop what no session follows; the outcome line."""
    _log_sid(session, sid, why)
    result = ctx.store.adopt_sid(session.id, sid, why=why, identity=session.identity)
    return _after_adopt(ctx, session, sid, result)


def _log_sid(session: Session, sid: str, why: str) -> None:
    # Logged before Redis is touched: if the store fails now, the sid is still on record.
    log.info("session %s: the start answer names sid %s (%s)", session.id, sid, why)


def _after_adopt(ctx: JobContext, session: Session, sid: str, result: AdoptResult) -> str:
    """Stop what no session follows, queue a stop requested meanwhile; the outcome line."""
    # The sid on the replicas: a failover must not forget a recording the server runs.
    ctx.store.replica_acks.confirm("sid", [session.id])
    if result.is_stray:
        where = "is gone" if result.session is None else f"is {result.session.phase.value}"
        if result.outcome == AdoptOutcome.OTHER and result.session is not None:
            where = f"records with sid {result.session.sid} already"
        reason = f"the start answer named sid {sid} but the session {where}: stopping it"
        ctx.send("krtc.stop_stray", [session.id, {**_reference(session), "sid": sid}])
        ctx.alert("stray_recording", session.id, reason)
        log.warning("session %s: %s", session.id, reason)
        return f"stray: sid {sid} ({where}); its stop is queued"
    if result.outcome == AdoptOutcome.MUST_STOP:
        ctx.send("krtc.stop", [session.id])
        return f"recording: sid {sid}; a stop was requested meanwhile and is queued"
    return f"recording: sid {sid}"


def _reference(session: Session) -> dict[str, str]:
    return {"appId": session.app_id, "cname": session.cname, "mode": session.mode.value}


def _maybe_sent(session: Session) -> bool:
    """Whether an earlier attempt may have reached the server (so a recording may run)."""
    if not session.attempts.get("start"):
        return False
    error = session.last_error or {}
    return bool(error.get("maybe_applied", True))


def _conflict(ctx: JobContext, session: Session, exc: ConflictError) -> str:
    sid = exc.sid or session.sid
    if sid:
        why = "409: already recording; sid taken from the answer (spec D12)"
        return adopt_sid(ctx, session, sid, why) + " (409, already running)"
    now = ctx.clock()
    ctx.store.transition(
        session.id,
        identity=session.identity,
        to=Phase.ORPHANED,
        allowed_from=[Phase.STARTING],
        last_error=error_record(exc, now),
        why="409 without a sid: running, but it cannot be stopped or queried (spec D12)",
    )
    ctx.alert("orphaned", session.id, orphaned_reason(session))
    return "orphaned: 409 without a sid"


def orphaned_reason(session: Session) -> str:
    """The text of a session's ``orphaned`` alert (raised here, and again by the reconciler)."""
    return (
        f"{session.app_id}/{session.cname}/{session.uid} is recording without a known sid; "
        "its maxIdleTime bounds it"
    )


def _failed_attempt(ctx: JobContext, session: Session, exc: Exception, attempt: int) -> NoReturn:
    now = ctx.clock()
    record = error_record(exc, now)
    policy = ctx.policy("start")
    if should_retry(exc, attempt, policy):
        ctx.store.transition(session.id, identity=session.identity, last_error=record, record=False)
        wait = delay_s(exc, attempt, policy)
        raise Retry(wait, f"start attempt {attempt}/{policy.max_attempts}: {record['reason']}")
    exhausted = isinstance(exc, KrtcApiError) and exc.retryable
    why = f"start gave up after {attempt} attempts" if exhausted else "start refused for good"
    ctx.store.transition(
        session.id,
        identity=session.identity,
        to=Phase.FAILED,
        allowed_from=[Phase.STARTING],
        last_error=record,
        why=f"{why}: {record['reason']}",
    )
    ctx.alert("start_failed", session.id, f"{why}: {record['reason']}")
    raise JobFailedError("start", session.id, record)
