"""Dead letters: every failed task of the app is filed as a dead letter, and alerted once.

Hooked on Celery's ``task_failure`` signal, which fires for a job that gave up
(:class:`JobFailedError`), an unexpected error, a time limit and a run that killed its worker
too often. Redis has no dead-letter queue of its own: without this, a failure would be only an
expiring FAILURE result.

A job that met a session it cannot read (error kind ``corrupt_session``) is alerted as
``corrupt_session`` rather than ``dead_letter``, once per session however many of its jobs fail;
its letter takes the identity from the raw fields and nothing is written to the record.

A (session, action) keeps one live letter (:mod:`orchestrator.state.dead_letters`): the first
failure files it and raises the ``dead_letter`` alert; a later failure (the reconciler re-queues a
stop that keeps failing) counts into that letter and notes the session, without a new alert.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import task_failure

from orchestrator.jobs import JobFailedError
from orchestrator.jobs.context import JobContext
from orchestrator.jobs.unreadable import CORRUPT_SESSION
from orchestrator.state import CorruptSessionError, DeadLetter, Session
from orchestrator.state.dead_letters import Filing
from orchestrator.state.raw import RawSessions
from workers import runtime

__all__ = ["connect", "file_letter", "record"]

log = logging.getLogger("workers.failures")


def record(task: Task, task_id: str, exc: BaseException, args: list[Any]) -> Filing:
    """File the failure of a task as a dead letter; alert when it is a new letter.

    Returns:
        What the dead-letter store did (a new letter, one more failure of the live letter of
        this session and action, or nothing for a redelivered failure).
    """
    return file_letter(runtime.context(task.app.conf.krtc_settings), task.name, task_id, exc, args)


def file_letter(
    ctx: JobContext, task_name: str, task_id: str, exc: BaseException, args: list[Any]
) -> Filing:
    """:func:`record` for a job run outside a Celery task (the start lane: :mod:`workers.lane`)."""
    from workers.tasks import TASK_ACTIONS

    action = TASK_ACTIONS.get(task_name, task_name)
    session_id = str(args[0]) if args else "?"
    if isinstance(exc, JobFailedError):
        error = dict(exc.error)
    else:
        error = {"kind": type(exc).__name__, "status": None, "code": None, "reason": str(exc)}
    error.setdefault("at", ctx.clock())
    unreadable = error.get("kind") == CORRUPT_SESSION
    session = None if unreadable or not args else _session(ctx, session_id)
    if session is not None:
        identity = session.identity
    else:
        identity = (_raw_identity(ctx, session_id) if args else None) or ("", "", "")
    letter = DeadLetter(
        id=task_id,
        task=task_name,
        action=action,
        session_id=session_id,
        args=list(args),
        error=error,
        attempts=session.attempts.get(action, 0) if session else 0,
        failed_at=ctx.clock(),
        app_id=identity[0],
        cname=identity[1],
        uid=identity[2],
    )
    filed = ctx.dead_letters.add(letter)
    if filed is Filing.DUPLICATE:
        return filed
    if filed is Filing.UPDATED:
        if session is not None:
            ctx.store.note(
                session_id,
                f"{action} job failed again ({task_id}); dead letter updated",
                why=error["reason"],
            )
        log.warning(
            "%s of session %s failed again (%s), counted in its dead letter: %s",
            action,
            session_id,
            task_id,
            error["reason"],
        )
        return filed
    if session is not None:
        ctx.store.note(session_id, f"{action} job dead-lettered ({task_id})", why=error["reason"])
    if unreadable:
        ctx.alert(CORRUPT_SESSION, session_id, f"{task_name} dead-lettered: {error['reason']}")
    else:
        ctx.alert("dead_letter", session_id, f"{task_name} failed for good: {error['reason']}")
    log.error("dead letter %s: %s of session %s: %s", task_id, action, session_id, error["reason"])
    return filed


def _session(ctx: JobContext, session_id: str) -> Session | None:
    """The session, or ``None`` when it is gone or cannot be read (the letter is kept anyway)."""
    try:
        return ctx.store.get(session_id)
    except CorruptSessionError:
        return None


def _raw_identity(ctx: JobContext, session_id: str) -> tuple[str, str, str] | None:
    """The identity as stored, for a session that does not decode."""
    return RawSessions(ctx.store.redis, keys=ctx.store.keys).identity_of(session_id)


def connect(app: Celery) -> None:
    """Record the failures of ``app``'s tasks."""

    def on_failure(
        sender: Task | None = None,
        task_id: str | None = None,
        exception: BaseException | None = None,
        args: list[Any] | None = None,
        **_: Any,
    ) -> None:
        from workers.tasks import TASK_ACTIONS

        if sender is None or sender.app is not app or task_id is None or exception is None:
            return
        if sender.name not in TASK_ACTIONS:
            return  # reconcile tasks: the next round does their work again
        try:
            record(sender, task_id, exception, list(args or []))
        except Exception:  # the hook must never hide the failure it reports
            log.exception("could not record the dead letter of task %s", task_id)

    task_failure.connect(on_failure, weak=False)
