"""Dead letters: every failed task of the app becomes exactly one dead letter, and an alert.

Hooked on Celery's ``task_failure`` signal, which fires for a job that gave up
(:class:`JobFailedError`), an unexpected error, a time limit and a run that killed its worker
too often. Redis has no dead-letter queue of its own: without this, a failure would be only an
expiring FAILURE result.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import task_failure

from orchestrator.jobs import JobFailedError
from orchestrator.state import DeadLetter
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
    if not ctx.dead_letters.add(letter):
        return None
    if session is not None:
        ctx.store.note(session_id, f"{action} job dead-lettered ({task_id})", why=error["reason"])
    ctx.alert("dead_letter", session_id, f"{task.name} failed for good: {error['reason']}")
    log.error("dead letter %s: %s of session %s: %s", task_id, action, session_id, error["reason"])
    return letter


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
