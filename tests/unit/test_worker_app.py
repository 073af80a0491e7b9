"""The Celery apps: the workers' and the send-only one of producers."""

from __future__ import annotations

from orchestrator.settings import Settings
from workers.app import create_app


def test_send_only_app_sends_no_task_events_and_has_no_backend() -> None:
    # Given the app a producer sends with
    app = create_app(Settings(redis_prefix="krtc-unit"), with_tasks=False)

    # Then sending a task is one message: no task-sent event, no result to store
    assert app.conf.task_send_sent_event is False
    assert app.conf.task_ignore_result is True
    assert app.conf.result_backend is None


def test_worker_app_sends_task_events_only_when_asked() -> None:
    # Flower turns events on in the workers it watches; KRTC_TASK_EVENTS turns them on always.
    app = create_app(Settings(redis_prefix="krtc-unit"))
    assert app.conf.worker_send_task_events is False
    assert "krtc.start" in app.tasks

    app = create_app(Settings(redis_prefix="krtc-unit", task_events=True))
    assert app.conf.worker_send_task_events is True
