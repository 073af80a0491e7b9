"""The Celery application: ``celery -A workers.app:app worker`` (or ``krtc-rec worker``).

Broker and result backend come from ``REDIS_URL``; everything else from
:func:`orchestrator.tasking.config.celery_config`. The tasks are registered by
:mod:`workers.tasks`. Processes that only send tasks use
:func:`orchestrator.tasking.sending_app` instead.
"""

from __future__ import annotations

from celery import Celery

from orchestrator.settings import Settings, load_settings
from orchestrator.tasking.app import configured_app, sending_app

__all__ = ["app", "create_app"]


def create_app(settings: Settings | None = None, *, with_tasks: bool = True) -> Celery:
    """A Celery app configured from ``settings`` (default: the environment).

    Args:
        settings: the configuration.
        with_tasks: register the tasks and the worker signal handlers; without them, the
            send-only app of :func:`orchestrator.tasking.sending_app`.
    """
    settings = settings or load_settings()
    if not with_tasks:
        return sending_app(settings)
    from workers.tasks import register

    celery = configured_app(settings)
    register(celery)
    return celery


app = create_app()
