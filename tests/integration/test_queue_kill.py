"""A worker SIGKILLed in the middle of a stop loses nothing: the stop is delivered again."""

from __future__ import annotations

import time

from orchestrator.state import Phase
from tests.integration.worker_fixture import QueueStack, start_body


def test_stop_survives_a_worker_killed_mid_call(queue_stack: QueueStack) -> None:
    # A read timeout above the injected latency, so the call is under way when the kill lands;
    # the visibility timeout still exceeds the task time limit plus the backoff.
    slow = {"KRTC_READ_TIMEOUT_S": "3"}
    first = queue_stack.start_worker(**slow)
    session = queue_stack.recorder.start(start_body("kill-stop"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)

    queue_stack.sandbox.set_faults(latency_ms=2000)
    queue_stack.recorder.stop(session.id)
    queue_stack.wait(session.id, Phase.STOPPING)
    first.kill()
    assert queue_stack.recorder.get(session.id).phase == Phase.STOPPING

    queue_stack.sandbox.clear_faults()
    killed_at = time.monotonic()
    queue_stack.start_worker(**slow)
    stopped = queue_stack.wait(
        session.id, Phase.STOPPED, timeout=queue_stack.settings.visibility_timeout + 20
    )
    redelivered_after = time.monotonic() - killed_at
    assert stopped.phase == Phase.STOPPED
    assert queue_stack.sandbox.recording(str(recording.sid))["active"] is False
    assert queue_stack.recorder.dead_letters.list() == []
    # Redelivery waits for the visibility timeout, not for Celery's default hour.
    assert redelivered_after < queue_stack.settings.visibility_timeout + 20
