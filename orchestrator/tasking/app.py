"""The send-only Celery app: what producers, the scheduler, the reconciler and the CLI send with.

It has the workers' configuration (broker, queues, routes, serialization; see
:mod:`orchestrator.tasking.config`) but no tasks: it sends by name. It has no result backend
either, since producers follow sessions, not task results, and a backend would make sending wait
on it when Redis is down. Nor does it publish a ``task-sent`` event per task: that is one more
Redis round trip (and client) per job, about a third of the cost of ``Recorder.start``
(bench/throughput.py); monitors such as Flower still see every task from the worker's
``task-received`` event.
"""

from __future__ import annotations

from celery import Celery

from orchestrator.settings import Settings
from orchestrator.tasking.config import celery_config

__all__ = ["configured_app", "sending_app"]


def configured_app(settings: Settings) -> Celery:
    """A Celery app with the project's configuration and no tasks (the workers add theirs)."""
    celery = Celery("krtc", set_as_current=False)
    celery.conf.update(celery_config(settings))
    celery.conf.krtc_settings = settings
    return celery


def sending_app(settings: Settings) -> Celery:
    """An app that only sends tasks by name (see the module's description)."""
    celery = configured_app(settings)
    celery.conf.result_backend = None
    celery.conf.task_ignore_result = True
    celery.conf.task_send_sent_event = False
    return celery
