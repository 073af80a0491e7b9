"""Dead letters: every failed task of the app is filed as a dead letter, and alerted once.

Hooked on Celery's ``task_failure`` signal, which fires for a job that gave up
(:class:`JobFailedError`), an unexpected error, a time limit and a run that killed its worker
too often. Redis has no dead-letter queue of its own: without this, a failure would be only an
expiring FAILURE result.

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
from orchestrator.state import DeadLetter
from orchestrator.state.dead_letters import Filing
from workers import runtime

__all__ = ["connect", "record"]

log = logging.getLogger("workers.failures")


def record(task: Task, task_id: str, exc: BaseException, args: list[Any]) -> Filing:
    """File the failure of a task as a dead letter; alert when it is a new letter.

    Returns:
        What the dead-letter store did (a new letter, one more failure of the live letter of
        this session and action, or nothing for a redelivered failure).
    """
    from workers.tasks import TASK_ACTIONS

    ctx = runtime.context(task.app.conf.krtc_settings)
    action = TASK_ACTIONS.get(task.name, task.name)
    session_id = str(args[0]) if args else "?"
    if isinstance(exc, JobFailedError):
        error = dict(exc.error)
    else:
        error = {"kind": type(exc).__name__, "status": None, "code": None, "reason": str(exc)}
    error.setdefault("at", ctx.clock())
    session = ctx.store.get(session_id) if args else None
    letter = DeadLetter(
        id=task_id,
        task=task.name,
        action=action,
        session_id=session_id,
        args=list(args),
        error=error,
        attempts=session.attempts.get(action, 0) if session else 0,
        failed_at=ctx.clock(),
        app_id=session.app_id if session else "",
        cname=session.cname if session else "",
        uid=session.uid if session else "",
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
    ctx.alert("dead_letter", session_id, f"{task.name} failed for good: {error['reason']}")
    log.error("dead letter %s: %s of session %s: %s", task_id, action, session_id, error["reason"])
    return filed


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
