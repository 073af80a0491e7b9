"""Dead letters: every failed task of the app becomes exactly one dead letter, and an alert.

Hooked on Celery's ``task_failure`` signal, which fires for a job that gave up
(:class:`JobFailedError`), an unexpected error, a time limit and a run that killed its worker
too often. Redis has no dead-letter queue of its own: without this, a failure would be only an
expiring FAILURE result.

A job that met a session it cannot read (error kind ``corrupt_session``) is alerted as
``corrupt_session`` rather than ``dead_letter``, once per session however many of its jobs fail;
its letter takes the identity from the raw fields and nothing is written to the record.
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
from orchestrator.state.raw import RawSessions
from workers import runtime

__all__ = ["connect", "record"]

log = logging.getLogger("workers.failures")


def record(task: Task, task_id: str, exc: BaseException, args: list[Any]) -> DeadLetter | None:
    """Keep a dead letter for a failed task (once per task id); ``None`` if one existed."""
    from workers.tasks import TASK_ACTIONS

    ctx = runtime.context(task.app.conf.krtc_settings)
    action = TASK_ACTIONS.get(task.name, task.name)
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
        task=task.name,
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
    if not ctx.dead_letters.add(letter):
        return None
    if session is not None:
        ctx.store.note(session_id, f"{action} job dead-lettered ({task_id})", why=error["reason"])
    if unreadable:
        ctx.alert(CORRUPT_SESSION, session_id, f"{task.name} dead-lettered: {error['reason']}")
    else:
        ctx.alert("dead_letter", session_id, f"{task.name} failed for good: {error['reason']}")
    log.error("dead letter %s: %s of session %s: %s", task_id, action, session_id, error["reason"])
    return letter


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
