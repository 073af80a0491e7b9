"""The Celery application: ``celery -A workers.app:app worker`` (or ``krtc-rec worker``).

Broker and result backend come from ``REDIS_URL``; everything else from
:func:`workers.config.celery_config`. The tasks are registered by :mod:`workers.tasks`.
"""

from __future__ import annotations

from celery import Celery

from orchestrator.settings import Settings, load_settings
from workers.config import celery_config

__all__ = ["app", "create_app"]


def create_app(settings: Settings | None = None, *, with_tasks: bool = True) -> Celery:
    """A Celery app configured from ``settings`` (default: the environment).

    Args:
        settings: the configuration.
        with_tasks: register the tasks and the worker signal handlers. Without them the app
            only sends tasks by name (producers): it has no result backend either, since
            producers follow sessions, not task results, and a backend would make sending
            wait on it when Redis is down. Nor does it publish a ``task-sent`` event per task:
            that is one more Redis round trip (and client) per job, about a third of the cost
            of ``Recorder.start`` (bench/throughput.py); monitors such as Flower still see
            every task from the worker's ``task-received`` event.
    """
    settings = settings or load_settings()
    celery = Celery("krtc", set_as_current=False)
    celery.conf.update(celery_config(settings))
    celery.conf.krtc_settings = settings
    if not with_tasks:
        celery.conf.result_backend = None
        celery.conf.task_ignore_result = True
        celery.conf.task_send_sent_event = False
    if with_tasks:
        from workers.tasks import register

        register(celery)
    return celery


app = create_app()
