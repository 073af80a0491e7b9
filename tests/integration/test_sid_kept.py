"""A sid a start answer gives is never thrown away, and a start is in flight at most once.

Real parts: the sandbox (with latency, so that a start is in flight long enough for the session to
change under it), a real worker subprocess and the real Redis. Each test changes the session the
way another process would while the start call is under way, then checks what the sandbox itself
records: the recording that start made is followed or stopped, never left running unknown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.krtc.enums import Mode
from orchestrator.state import Desired, Phase, Session
from orchestrator.tasking.message import celery_message
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.timeout(90)

#: The start answer arrives this long after the call (below the 1 s read timeout).
LATENCY_MS = 700


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"read_timeout_s": 2.0}


def _calls(stack: QueueStack, action: str, cname: str) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.sandbox.requests()
        if r.get("action") == f"CloudRecording{action}" and r.get("cname") == cname
    ]


def _eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def _in_flight(stack: QueueStack, cname: str) -> Session:
    """Start a recording and return its session once its start call is under way."""
    stack.sandbox.set_faults(latency_ms=LATENCY_MS)
    session = stack.recorder.start(start_body(cname))
    _eventually(
        lambda: stack.recorder.get(session.id).attempts.get("start", 0) >= 1,
        what="the start call was sent",
    )
    return stack.recorder.get(session.id)


def _active(stack: QueueStack, cname: str) -> list[dict[str, Any]]:
    return stack.sandbox.recordings(cname=cname, active=True)


def test_a_session_finished_while_its_start_is_in_flight_gets_the_sid_and_the_recording_stops(
    queue_stack: QueueStack,
) -> None:
    # Given a start in flight
    queue_stack.start_worker()
    session = _in_flight(queue_stack, "sid-finished")
    # When the session is finished meanwhile (an operator, or the reconciler's verdict)
    queue_stack.recorder.store.transition(
        session.id, to=Phase.STOPPED, why="finished by another process"
    )
    # Then the answer's sid is stored on it, and the recording it names is stopped
    _eventually(lambda: queue_stack.recorder.get(session.id).sid is not None, what="sid kept")
    queue_stack.sandbox.clear_faults()
    _eventually(lambda: _active(queue_stack, "sid-finished") == [], what="stray recording stopped")
    stored = queue_stack.recorder.get(session.id, with_history=True)
    assert stored.phase == Phase.STOPPED
    assert len(_calls(queue_stack, "Stop", "sid-finished")) >= 1
    assert any("stray" in entry.what for entry in stored.history)
    assert "the start answer names sid" in queue_stack.logs()


def test_an_orphaned_session_takes_the_sid_of_a_late_answer(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    session = _in_flight(queue_stack, "sid-orphaned")
    # A concurrent duplicate run met 409 without a sid and orphaned the session.
    queue_stack.recorder.store.transition(
        session.id, to=Phase.ORPHANED, why="409 without a sid (a duplicate run)"
    )
    recording = queue_stack.wait(session.id, Phase.RECORDING, timeout=10)
    [server] = _active(queue_stack, "sid-orphaned")
    assert recording.sid == server["sid"]
    assert recording.started_at is not None


def test_a_session_gone_while_its_start_is_in_flight_has_its_recording_stopped(
    queue_stack: QueueStack,
) -> None:
    queue_stack.start_worker()
    session = _in_flight(queue_stack, "sid-gone")
    store = queue_stack.recorder.store
    store.redis.delete(store.keys.session(session.id), store.keys.history(session.id))
    queue_stack.sandbox.clear_faults()
    _eventually(lambda: len(_calls(queue_stack, "Start", "sid-gone")) == 1, what="start made")
    _eventually(lambda: _active(queue_stack, "sid-gone") == [], what="stray recording stopped")


def test_a_stop_requested_while_the_start_is_in_flight_stops_the_recording(
    queue_stack: QueueStack,
) -> None:
    queue_stack.start_worker()
    session = _in_flight(queue_stack, "sid-stop")
    queue_stack.recorder.stop(session.id)
    stopped = queue_stack.wait(session.id, Phase.STOPPED, timeout=15)
    assert stopped.sid is not None
    assert stopped.desired == Desired.STOPPED
    assert _active(queue_stack, "sid-stop") == []


def test_three_copies_of_a_start_message_send_one_start(queue_stack: QueueStack) -> None:
    # Given a pending session whose start message is delivered three times at once (the same
    # message restored after a visibility timeout, redelivered, re-queued)
    queue_stack.sandbox.set_faults(latency_ms=LATENCY_MS)
    store = queue_stack.recorder.store
    body = start_body("sid-triple")
    session, created = store.create(
        app_id=body["appId"], cname=body["cname"], uid=body["uid"], mode=Mode.MIX, request=body
    )
    assert created
    message = celery_message(queue_stack.recorder.celery, "krtc.start", [session.id])
    for _ in range(3):
        store.redis.lpush(message.key, message.payload)
    # When a worker with many threads takes them
    queue_stack.start_worker()
    recording = queue_stack.wait(session.id, Phase.RECORDING, timeout=15)
    time.sleep(2 * LATENCY_MS / 1000 + 1.0)
    # Then the sandbox saw one start, and one recording runs
    assert len(_calls(queue_stack, "Start", "sid-triple")) == 1
    [server] = _active(queue_stack, "sid-triple")
    assert server["sid"] == recording.sid
    assert queue_stack.recorder.get(session.id).attempts["start"] == 1
