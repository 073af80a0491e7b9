"""Task names and the queues they go to, shared by producers, workers and the reconciler.

Stops have their own queue so that a backlog of starts never delays one; reconcile batches
have theirs so that polling never delays a start; the scheduled-recording ticks have theirs so
that a long reconcile batch never delays a scheduled start; the collector (retention) has its
own, consumed last, so that deleting old records never delays anything that records.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from redis import Redis

from orchestrator.state.keys import Keys

__all__ = [
    "START_QUEUE",
    "STOP_QUEUE",
    "RECONCILE_QUEUE",
    "SCHEDULE_QUEUE",
    "GC_QUEUE",
    "QUEUES",
    "TASK_QUEUES",
    "TaskSender",
    "send_task",
    "queue_lengths",
    "START_LANE",
]

START_QUEUE = "krtc"
STOP_QUEUE = "krtc-stop"
RECONCILE_QUEUE = "krtc-reconcile"
SCHEDULE_QUEUE = "krtc-schedule"
GC_QUEUE = "krtc-gc"
#: The queues a worker consumes, in order of priority.
QUEUES = (STOP_QUEUE, SCHEDULE_QUEUE, START_QUEUE, RECONCILE_QUEUE, GC_QUEUE)

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
    "krtc.gc": GC_QUEUE,
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


#: The name :func:`queue_lengths` gives the start lane (:mod:`orchestrator.state.lane`).
START_LANE = "start-lane"


def queue_lengths(redis: Redis, keys: Keys) -> dict[str, int]:
    """Messages waiting in each queue (the Redis lists kombu keeps them in), and the starts
    waiting in the start lane (ready, or due for a retry later), in one round trip."""
    pipe = redis.pipeline(transaction=False)
    for queue in QUEUES:
        pipe.llen(keys.celery_queue(queue))
    pipe.llen(keys.start_lane("ready"))
    pipe.zcard(keys.start_lane("delayed"))
    *lengths, ready, delayed = cast("list[int]", pipe.execute())
    found = {queue: int(n) for queue, n in zip(QUEUES, lengths, strict=True)}
    found[START_LANE] = int(ready) + int(delayed)
    return found
