"""A broker that refuses the job after the session is stored: a clear error, nothing lost."""

from __future__ import annotations

import base64
import json

import pytest

from orchestrator.producer import Recorder
from orchestrator.settings import Settings
from orchestrator.state import Desired, Phase, SessionStore, StateUnavailableError
from tests.integration.worker_fixture import start_body
from workers.app import create_app


def test_start_and_stop_stored_but_not_queued_say_so(store: SessionStore) -> None:
    dead_broker = Settings(redis_url="redis://127.0.0.1:1/0", redis_prefix=store.keys.prefix)
    celery = create_app(dead_broker, with_tasks=False)
    celery.conf.broker_connection_timeout = 0.5
    celery.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0}
    recorder = Recorder(dead_broker, store=store, celery=celery)

    with pytest.raises(StateUnavailableError, match="reconciler queues it again") as failure:
        recorder.start(start_body("broker-down"))
    assert "krtc.start" in str(failure.value)
    (session,) = store.list()
    assert session.phase == Phase.PENDING, "stored: the reconciler re-queues a quiet pending start"

    store.transition(session.id, to=Phase.RECORDING, sid="s" * 20)
    with pytest.raises(StateUnavailableError):
        recorder.stop(session.id)
    assert store.get_or_raise(session.id).desired == Desired.STOPPED, "the stop request is kept"


def test_a_start_is_queued_by_the_create_script_exactly_when_created(
    store: SessionStore,
) -> None:
    db = store.redis.connection_pool.connection_kwargs["db"]
    settings = Settings(redis_url=f"redis://127.0.0.1:6379/{db}", redis_prefix=store.keys.prefix)
    recorder = Recorder(settings, store=store)
    queue = f"{store.keys.prefix}:celery:krtc"
    first = recorder.start(start_body("outbox"))
    again = recorder.start(start_body("outbox"))
    assert again.id == first.id
    assert store.redis.llen(queue) == 1, "one message, pushed with the session"
    message = json.loads(store.redis.lindex(queue, 0))
    assert message["headers"]["task"] == "krtc.start"
    assert json.loads(base64.b64decode(message["body"]))[0] == [first.id]
