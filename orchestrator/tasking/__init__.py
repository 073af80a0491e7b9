"""Sending tasks: everything a process needs to queue work for the workers, and nothing more.

* :mod:`~orchestrator.tasking.queues`: the task names and the queue each goes to;
* :mod:`~orchestrator.tasking.message`: a task message built here and pushed by a Lua script
  (the outbox of a start);
* :mod:`~orchestrator.tasking.config`: the Celery configuration, with its timing checks;
* :mod:`~orchestrator.tasking.timing`: how long a job may run (time limits, leases);
* :mod:`~orchestrator.tasking.app`: the send-only Celery app;
* :mod:`~orchestrator.tasking.starts`: the one path that creates a session and queues its start.

The workers (``workers/``) build on this package; nothing in ``orchestrator`` imports them.
"""

from orchestrator.tasking.app import configured_app, sending_app
from orchestrator.tasking.message import QueuedMessage, celery_message
from orchestrator.tasking.queues import QUEUES, TASK_QUEUES, TaskSender, send_task

__all__ = [
    "QUEUES",
    "TASK_QUEUES",
    "QueuedMessage",
    "TaskSender",
    "celery_message",
    "configured_app",
    "send_task",
    "sending_app",
]
