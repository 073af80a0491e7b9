"""A stop that keeps failing, with a real worker: one live dead letter and one alert per kind,
however often the stop is re-queued (workers/failures.py, orchestrator/state/dead_letters.py)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from orchestrator.alerts.store import AlertStore
from orchestrator.state import DeadLetter, Phase
from orchestrator.tasking.queues import send_task
from tests.integration.worker_fixture import QueueStack, start_body
from workers.app import create_app

pytestmark = pytest.mark.integration

#: Each stop job (each stop request: the budget is per run) gives up after two calls.
STOP_MAX_ATTEMPTS = 2


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"stop_max_attempts": STOP_MAX_ATTEMPTS}


def _wait_for_failures(stack: QueueStack, failures: int, timeout_s: float = 20.0) -> DeadLetter:
    """The first dead letter once it counts ``failures`` failures (fails the test on timeout)."""
    deadline = time.monotonic() + timeout_s
    letters: list[DeadLetter] = []
    while time.monotonic() < deadline:
        letters = stack.recorder.dead_letters.list()
        if letters and sum(x.failures for x in letters) >= failures:
            break
        time.sleep(0.05)
    assert letters and sum(x.failures for x in letters) >= failures, letters
    return letters[0]


def test_a_stop_failing_again_and_again_keeps_one_letter_and_alerts_once(
    queue_stack: QueueStack,
) -> None:
    # Given a recording whose stops the server always answers with a 500
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("stop-failing"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    queue_stack.sandbox.set_faults(error_rates={"stop": 1.0})

    # When the stop gives up, and is queued again three times (as the reconciler does)
    queue_stack.recorder.stop(session.id)
    _wait_for_failures(queue_stack, 1)
    sender = create_app(queue_stack.settings, with_tasks=False)
    for failures in (2, 3, 4):
        send_task(sender, "krtc.stop", [session.id])
        _wait_for_failures(queue_stack, failures)

    # Then there is one live letter counting the four failures, with the last error
    letters = queue_stack.recorder.dead_letters.list()
    assert len(letters) == 1, [(x.id, x.failures) for x in letters]
    [letter] = letters
    assert (letter.action, letter.session_id, letter.failures) == ("stop", session.id, 4)
    assert len(letter.task_ids) == 3 and letter.id not in letter.task_ids
    assert letter.error["status"] == 500
    assert letter.last_failed_at is not None and letter.last_failed_at >= letter.failed_at
    # and one alert of each kind the failure raises: the stop's own and the dead letter's
    alerts = AlertStore(queue_stack.recorder.store.redis, keys=queue_stack.recorder.store.keys)
    kinds = Counter(a.kind.value for a in alerts.recent() if a.session_id == session.id)
    assert kinds == {"stop_failing": 1, "dead_letter": 1}
    # and the session, still stopping, says how often its stop failed
    history = queue_stack.recorder.get(session.id, with_history=True).history
    assert sum("failed again" in entry.what for entry in history) == 3
    assert queue_stack.sandbox.recording(str(recording.sid))["active"] is True

    # When the fault clears and the letter is replayed, the recording stops and the letter stays
    queue_stack.sandbox.clear_faults()
    task_id = queue_stack.recorder.replay(letter.id)
    queue_stack.wait(session.id, Phase.STOPPED)
    [replayed] = queue_stack.recorder.dead_letters.list()
    assert replayed.replays == [task_id] and replayed.failures == 4
