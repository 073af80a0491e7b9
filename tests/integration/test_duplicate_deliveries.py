"""Every job delivered three times at once gives the result of one delivery.

Copies of one message (the same task id: what a visibility-timeout restore or a redelivery
makes) are pushed onto the queue together; a real worker with many threads takes them at once.
What the sandbox saw, and what Redis recorded, must be what one delivery gives. The start's case
is in test_sid_kept.py.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from orchestrator.reconcile.rounds import RoundGate
from orchestrator.schedule import Outcome
from orchestrator.state import Phase
from orchestrator.tasking.message import celery_message
from tests.integration.test_schedule_e2e import in_s, scheduler_for, wait_outcome
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.timeout(90)

COPIES = 3


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"reconcile_interval": 600.0, "schedule_tick_interval": 60.0}


def _push_copies(stack: QueueStack, task: str, args: list[Any]) -> None:
    message = celery_message(stack.recorder.celery, task, args)
    for _ in range(COPIES):
        stack.recorder.store.redis.lpush(message.key, message.payload)


def _calls(stack: QueueStack, action: str, cnames: set[str]) -> int:
    return sum(
        1
        for r in stack.sandbox.requests()
        if r.get("action") == f"CloudRecording{action}" and r.get("cname") in cnames
    )


def test_a_reconcile_batch_delivered_three_times_runs_once(queue_stack: QueueStack) -> None:
    # Given three recording sessions
    queue_stack.start_worker()
    tag = uuid.uuid4().hex[:6]
    cnames = {f"dup-batch-{tag}-{n}" for n in range(3)}
    sessions = [queue_stack.recorder.start(start_body(c)) for c in sorted(cnames)]
    for session in sessions:
        queue_stack.wait(session.id, Phase.RECORDING)
    store = queue_stack.recorder.store
    gate = RoundGate(store.redis, store.keys, interval_s=600)
    round_id = gate.begin()
    assert round_id is not None
    assert gate.batch_done(round_id, add_batches=1) is None
    queries_before = _calls(queue_stack, "Query", cnames)
    # When the round's one batch is delivered three times at once
    _push_copies(queue_stack, "krtc.reconcile_batch", [round_id, [s.id for s in sessions]])
    deadline = time.monotonic() + 20
    while not gate.recent():
        assert time.monotonic() < deadline, "the round never closed"
        time.sleep(0.1)
    time.sleep(1.0)  # the copies have been taken and skipped by now
    # Then the round counted each session once, and each was queried once
    [summary] = gate.recent()
    assert (summary.id, summary.sessions, summary.queried) == (round_id, 3, 3)
    assert _calls(queue_stack, "Query", cnames) - queries_before == 3
    assert "is run elsewhere" in queue_stack.logs()


def test_a_schedule_tick_delivered_three_times_starts_the_meeting_once(
    queue_stack: QueueStack,
) -> None:
    scheduler = scheduler_for(queue_stack)
    cname = f"dup-tick-{uuid.uuid4().hex[:6]}"
    schedule = scheduler.add(start_body(cname), start_at=in_s(0.5), duration_s=60)
    time.sleep(0.6)
    _push_copies(queue_stack, "krtc.schedule_tick", [])
    queue_stack.start_worker()
    started = wait_outcome(scheduler, f"{schedule.id}-1", Outcome.STARTED, timeout=20)
    queue_stack.wait(str(started.session_id), Phase.RECORDING)
    time.sleep(1.0)
    assert _calls(queue_stack, "Start", {cname}) == 1
    assert len(queue_stack.recorder.list(limit=10)) == 1


def test_a_stop_delivered_three_times_stops_once(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    cname = f"dup-stop-{uuid.uuid4().hex[:6]}"
    session = queue_stack.recorder.start(start_body(cname))
    queue_stack.wait(session.id, Phase.RECORDING)
    # The stop is recorded, and its message delivered three times at once.
    assert queue_stack.recorder.store.request_stop(session.id).needs_stop_call
    _push_copies(queue_stack, "krtc.stop", [session.id])
    stopped = queue_stack.wait(session.id, Phase.STOPPED, timeout=20)
    time.sleep(1.0)
    assert stopped.phase == Phase.STOPPED
    assert queue_stack.sandbox.recordings(cname=cname, active=True) == []
    assert _calls(queue_stack, "Stop", {cname}) == 1
