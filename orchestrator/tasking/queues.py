"""Task names and the queues they go to, shared by producers, workers and the reconciler.

Stops have their own queue so that a backlog of starts never delays one; reconcile batches
have theirs so that polling never delays a start; the scheduled-recording ticks have theirs so
that a long reconcile batch never delays a scheduled start.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = [
    "START_QUEUE",
    "STOP_QUEUE",
    "RECONCILE_QUEUE",
    "SCHEDULE_QUEUE",
    "QUEUES",
    "TASK_QUEUES",
    "TaskSender",
    "send_task",
]

START_QUEUE = "krtc"
STOP_QUEUE = "krtc-stop"
RECONCILE_QUEUE = "krtc-reconcile"
SCHEDULE_QUEUE = "krtc-schedule"
#: The queues a worker consumes, in order of priority.
QUEUES = (STOP_QUEUE, SCHEDULE_QUEUE, START_QUEUE, RECONCILE_QUEUE)

#: task name -> queue.
TASK_QUEUES = {
    "krtc.start": START_QUEUE,
    "krtc.update": START_QUEUE,
    "krtc.update_layout": START_QUEUE,
    "krtc.stop": STOP_QUEUE,
    "krtc.stop_stray": STOP_QUEUE,
    "krtc.reconcile": RECONCILE_QUEUE,
    "krtc.reconcile_batch": RECONCILE_QUEUE,
    "krtc.schedule_tick": SCHEDULE_QUEUE,
}


class TaskSender(Protocol):
    """What sends a task: a Celery app (``send_task``)."""

    def send_task(self, name: str, args: Any = None, **options: Any) -> Any: ...


def send_task(app: TaskSender, name: str, args: list[Any], **options: Any) -> str:
    """Send task ``name`` to its queue; returns the task id."""
    result = app.send_task(
        name, args=args, queue=TASK_QUEUES[name], **{"ignore_result": True, **options}
    )
    return str(result.id)
