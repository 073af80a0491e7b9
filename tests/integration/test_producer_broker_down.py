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
    # Starts as Celery messages: a broker that is down refuses them.
    dead_broker = Settings(
        redis_url="redis://127.0.0.1:1/0", redis_prefix=store.keys.prefix, start_lane=False
    )
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


def test_a_start_in_the_lane_needs_only_the_store_but_a_stop_still_says_so(
    store: SessionStore,
) -> None:
    # The start lane lives in the store's Redis: a separate broker that is down does not stop
    # a start from being queued, and the stop (a Celery message) still fails loudly.
    dead_broker = Settings(redis_url="redis://127.0.0.1:1/0", redis_prefix=store.keys.prefix)
    celery = create_app(dead_broker, with_tasks=False)
    celery.conf.broker_connection_timeout = 0.5
    celery.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0}
    recorder = Recorder(dead_broker, store=store, celery=celery)

    session = recorder.start(start_body("lane-broker-down"))
    [entry] = store.redis.lrange(store.keys.start_lane("ready"), 0, -1)
    assert entry.endswith(f" {session.id}")
    store.transition(session.id, to=Phase.RECORDING, sid="s" * 20)
    with pytest.raises(StateUnavailableError, match="reconciler queues it again"):
        recorder.stop(session.id)


def test_a_start_is_queued_by_the_create_script_exactly_when_created(
    store: SessionStore,
) -> None:
    # In the lane (the default) and as a Celery message: one entry, pushed with the session.
    db = store.redis.connection_pool.connection_kwargs["db"]
    url = f"redis://127.0.0.1:6379/{db}"
    recorder = Recorder(Settings(redis_url=url, redis_prefix=store.keys.prefix), store=store)
    first = recorder.start(start_body("lane"))
    assert recorder.start(start_body("lane")).id == first.id
    [entry] = store.redis.lrange(store.keys.start_lane("ready"), 0, -1)
    # The session's first run, under the session's id (state.lane.created_entry).
    assert entry == f"{first.id} {first.id}"

    settings = Settings(redis_url=url, redis_prefix=store.keys.prefix, start_lane=False)
    recorder = Recorder(settings, store=store)
    queue = f"{store.keys.prefix}:celery:krtc"
    first = recorder.start(start_body("outbox"))
    again = recorder.start(start_body("outbox"))
    assert again.id == first.id
    assert store.redis.llen(queue) == 1, "one message, pushed with the session"
    message = json.loads(store.redis.lindex(queue, 0))
    assert message["headers"]["task"] == "krtc.start"
    assert json.loads(base64.b64decode(message["body"]))[0] == [first.id]
