"""A session record that does not decode (corrupt, or of a newer schema) never loops.

Real Redis, a real worker subprocess and the sandbox: the record is broken by hand (HSET), then
jobs are queued for it and reconcile rounds run over it.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import pytest

from orchestrator.alerts import Alert, AlertStore
from orchestrator.jobs.context import JobContext
from orchestrator.reconcile.runner import run_once
from orchestrator.state import DeadLetter, Phase, Session
from orchestrator.tasking.queues import send_task
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.integration

#: A value a field is broken with; it must never be echoed (it could be anything).
GARBAGE = "gArBaGe-\u00e9-41"


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"reconcile_interval": 1.0}


def _recording(stack: QueueStack, cname: str) -> Session:
    session = stack.recorder.start(start_body(cname))
    recording = stack.wait(session.id, Phase.RECORDING)
    # The server's own view too (status 5): before that, a round sees it still starting.
    stack.wait_server_status(str(recording.sid))
    return recording


def _break(stack: QueueStack, session_id: str, field: str, value: str) -> None:
    store = stack.recorder.store
    store.redis.hset(store.keys.session(session_id), field, value)


def _letters(stack: QueueStack, session_id: str) -> list[DeadLetter]:
    return [x for x in stack.recorder.dead_letters.list() if x.session_id == session_id]


def _alerts(stack: QueueStack, session_id: str) -> list[Alert]:
    store = stack.recorder.store
    recent = AlertStore(store.redis, keys=store.keys).recent(100)
    return [a for a in recent if a.session_id == session_id]


def _wait_for_letters(stack: QueueStack, session_id: str, count: int) -> list[DeadLetter]:
    deadline = time.monotonic() + 15
    while len(letters := _letters(stack, session_id)) < count:
        assert time.monotonic() < deadline, f"no dead letter:\n{stack.logs()}"
        time.sleep(0.1)
    return letters


def _raw(stack: QueueStack, session_id: str) -> dict[str, str]:
    store = stack.recorder.store
    return dict(store.redis.hgetall(store.keys.session(session_id)))


def test_a_stop_of_a_corrupt_session_is_dead_lettered_once_with_one_alert(
    queue_stack: QueueStack,
) -> None:
    # Given a recording whose stored mode was overwritten with garbage
    worker = queue_stack.start_worker()
    session = _recording(queue_stack, "corrupt-stop")
    _break(queue_stack, session.id, "mode", GARBAGE)
    before = _raw(queue_stack, session.id)

    # When a stop is queued for it
    send_task(queue_stack.recorder.celery, "krtc.stop", [session.id])

    # Then exactly one dead letter says what does not decode, without the stored value
    [letter] = _wait_for_letters(queue_stack, session.id, 1)
    time.sleep(2.0)  # time enough for a retry loop to show
    assert _letters(queue_stack, session.id) == [letter]
    assert letter.error["kind"] == "corrupt_session"
    assert session.id in letter.error["reason"]
    assert "mode" in letter.error["reason"]
    assert (letter.app_id, letter.cname, letter.uid) == ("app-test", "corrupt-stop", "1001")
    # And one alert of kind corrupt_session (not a dead_letter one besides)
    [alert] = _alerts(queue_stack, session.id)
    assert alert.kind.value == "corrupt_session" and alert.cname == "corrupt-stop"
    # And the job ran once, wrote nothing, and the worker said so once, without the garbage
    log = worker.log()
    assert log.count("Task krtc.stop[") == 2, "received once, failed once: no retry"
    assert log.count(f"dead letter {letter.id}") == 1
    assert "could not record the dead letter" not in log
    assert GARBAGE not in log
    assert _raw(queue_stack, session.id) == before
    assert queue_stack.sandbox.recordings(cname="corrupt-stop", active=True), "not stopped"


def test_a_start_of_a_session_of_a_newer_schema_is_dead_lettered_and_never_sent(
    queue_stack: QueueStack,
) -> None:
    # Given a pending session that a newer version has rewritten (schema 99), its start queued
    session = queue_stack.recorder.start(start_body("newer-start"))
    _break(queue_stack, session.id, "schema", "99")
    before = _raw(queue_stack, session.id)

    # When a worker takes the start
    worker = queue_stack.start_worker()

    # Then one dead letter, one alert; nothing sent to the API, the record left as it was
    [letter] = _wait_for_letters(queue_stack, session.id, 1)
    time.sleep(1.0)
    assert letter.error["kind"] == "corrupt_session"
    assert "newer version" in letter.error["reason"] and "schema 99" in letter.error["reason"]
    assert [a.kind.value for a in _alerts(queue_stack, session.id)] == ["corrupt_session"]
    assert queue_stack.sandbox.recordings(cname="newer-start") == []
    assert _raw(queue_stack, session.id) == before
    # Run once, not retried: one line of its failure.
    assert worker.log().count("Task krtc.start[") == 1


def test_a_start_the_lane_began_of_a_corrupt_session_is_dead_lettered_and_never_sent(
    queue_stack: QueueStack,
) -> None:
    # Given a pending session with a field the take does not check broken, its start queued
    session = queue_stack.recorder.start(start_body("corrupt-begun"))
    _break(queue_stack, session.id, "mode", GARBAGE)

    # When a worker takes the start (the take begins it: lease, starting, attempt)
    worker = queue_stack.start_worker()

    # Then one dead letter, one alert, nothing sent, and the lease is free again
    [letter] = _wait_for_letters(queue_stack, session.id, 1)
    time.sleep(1.0)
    assert letter.error["kind"] == "corrupt_session" and "mode" in letter.error["reason"]
    assert [a.kind.value for a in _alerts(queue_stack, session.id)] == ["corrupt_session"]
    assert queue_stack.sandbox.recordings(cname="corrupt-begun") == []
    store = queue_stack.recorder.store
    assert not store.redis.exists(store.keys.lease(session.id, "start"))
    raw = _raw(queue_stack, session.id)
    assert raw["mode"] == GARBAGE, "the broken field is left as is"
    # The take began it (the documented exception): starting, its attempt counted.
    assert (raw["phase"], raw["attempts:start"]) == ("starting", "1")
    log = worker.log()
    assert log.count("Task krtc.start[") == 1 and GARBAGE not in log


def test_every_job_of_a_corrupt_session_is_a_letter_but_the_session_alerts_once(
    queue_stack: QueueStack,
) -> None:
    queue_stack.start_worker()
    session = _recording(queue_stack, "corrupt-jobs")
    _break(queue_stack, session.id, "attempts:stop", GARBAGE)
    celery = queue_stack.recorder.celery

    send_task(celery, "krtc.stop", [session.id])
    send_task(celery, "krtc.update", [session.id, {"streamSubscribe": {}}])
    send_task(celery, "krtc.update_layout", [session.id, {"mixedVideoLayout": 1}])

    letters = _wait_for_letters(queue_stack, session.id, 3)
    assert sorted(x.action for x in letters) == ["stop", "update", "update-layout"]
    assert all("attempts:stop: not an integer" in x.error["reason"] for x in letters)
    assert all(GARBAGE not in x.model_dump_json() for x in letters)
    assert [a.kind.value for a in _alerts(queue_stack, session.id)] == ["corrupt_session"]


def test_a_reconcile_round_skips_a_corrupt_session_alerts_once_and_reconciles_the_rest(
    queue_stack: QueueStack, caplog: pytest.LogCaptureFixture
) -> None:
    # Given two good recordings, one of which the server has stopped, and a corrupt one
    queue_stack.start_worker()
    good = [_recording(queue_stack, f"round-good-{n}") for n in range(2)]
    bad = _recording(queue_stack, "round-bad")
    queue_stack.sandbox.set_status(str(good[0].sid), 8)
    _break(queue_stack, bad.id, "created_at", GARBAGE)
    ctx = JobContext.from_settings(queue_stack.settings)  # with the configured alerter
    ctx.enqueue = functools.partial(send_task, queue_stack.recorder.celery)
    caplog.set_level(logging.INFO, logger="orchestrator")

    # When two rounds run
    try:
        rounds = [run_once(ctx)[0] for _ in range(2)]
    finally:
        ctx.close()

    # Then the good sessions are reconciled in the first round
    assert queue_stack.recorder.get(good[0].id).phase == Phase.STOPPED
    assert queue_stack.recorder.get(good[1].id).phase == Phase.RECORDING
    for outcomes in rounds:
        skipped = {o.session_id: o.skipped for o in outcomes if o.skipped}
        assert list(skipped) == [bad.id]
        assert "created_at" in str(skipped[bad.id])
    # And the corrupt one alerted once, with one warning a round and no traceback
    [alert] = _alerts(queue_stack, bad.id)
    assert alert.kind.value == "corrupt_session"
    assert (alert.app_id, alert.cname, alert.uid) == ("app-test", "round-bad", "1001")
    mine = [r for r in caplog.records if bad.id in r.getMessage()]
    assert [r.levelname for r in mine if r.name == "orchestrator.reconcile"] == ["WARNING"] * 2
    assert [r.levelname for r in mine if r.name == "orchestrator.alerts"] == ["ERROR"], (
        "the alert's own log line (critical alerts log at ERROR), once"
    )
    assert not any(r.exc_info for r in caplog.records)
    assert GARBAGE not in caplog.text
