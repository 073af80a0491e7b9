"""Budgets and loops of the jobs, with a real worker and the sandbox's faults: each run of a job
has its own attempt budget, waits are bounded by time, the stop's confirmation ends, and updates
apply in the producer's order (orchestrator/jobs/budget.py, orchestrator/state/sequences.py)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.alerts.store import AlertStore
from orchestrator.state import DeadLetter, Phase
from orchestrator.tasking.app import sending_app
from orchestrator.tasking.queues import send_task
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.integration

#: A small update budget, so that today's per-session count would run out by the fifth update.
UPDATE_MAX_ATTEMPTS = 3
STOP_CONFIRM_S = 1.5
SID_WAIT_S = 6.0

LAYOUT = "CloudRecordingUpdateLayout"


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {
        "update_max_attempts": UPDATE_MAX_ATTEMPTS,
        "stop_confirm_s": STOP_CONFIRM_S,
        "sid_wait_s": SID_WAIT_S,
    }


def _until(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


def _outcome(stack: QueueStack, task_id: str, timeout_s: float = 15.0) -> str:
    """The result line the worker logged for task ``task_id`` once it succeeded."""
    marker = f"[{task_id}] succeeded"

    def line() -> str:
        return next((x for x in stack.logs().splitlines() if marker in x), "")

    found: str = _until(line, timeout_s, what=f"task {task_id} to succeed")
    return found


def _layout_of(entry: dict[str, Any]) -> int | None:
    """The mixedVideoLayout an update-layout request of the sandbox's log carried."""
    body = entry.get("body") or {}
    client = body.get("clientRequest", body.get("client_request")) or {}
    value = client.get("mixedVideoLayout", client.get("mixed_video_layout"))
    return None if value is None else int(value)


def _layout_calls(stack: QueueStack) -> list[dict[str, Any]]:
    return [r for r in stack.sandbox.requests() if r["action"] == LAYOUT]


def _applied(stack: QueueStack, session_id: str, action: str = "update-layout") -> int:
    history = stack.recorder.get(session_id, with_history=True).history
    return sum(h.what == f"{action} applied" for h in history)


def _alert_kinds(stack: QueueStack, session_id: str) -> Counter[str]:
    store = stack.recorder.store
    alerts = AlertStore(store.redis, keys=store.keys).recent()
    return Counter(a.kind.value for a in alerts if a.session_id == session_id)


def _recording(stack: QueueStack, cname: str) -> tuple[str, str]:
    session = stack.recorder.start(start_body(cname))
    recording = stack.wait(session.id, Phase.RECORDING)
    assert recording.sid
    return session.id, recording.sid


def test_the_fifth_layout_update_gets_its_full_retries(queue_stack: QueueStack) -> None:
    # Given a recording whose layout was updated four times
    queue_stack.start_worker()
    session_id, _ = _recording(queue_stack, "budget-fifth")
    for n in range(1, 5):
        queue_stack.recorder.update_layout(session_id, {"mixedVideoLayout": n % 3})
        _until(lambda n=n: _applied(queue_stack, session_id) == n, what=f"update {n}")

    # When the fifth meets one 500 fewer than the update budget allows
    failures = UPDATE_MAX_ATTEMPTS - 1
    queue_stack.sandbox.set_faults(
        fail_next=[{"action": "update-layout", "status": 500, "count": failures}]
    )
    queue_stack.recorder.update_layout(session_id, {"mixedVideoLayout": 3 % 3})

    # Then it is retried through them and applied, with no dead letter
    _until(lambda: _applied(queue_stack, session_id) == 5, what="the fifth update")
    outcomes = [r["outcome"] for r in _layout_calls(queue_stack)]
    assert outcomes == ["ok"] * 4 + ["injected_error"] * failures + ["ok"]
    assert queue_stack.recorder.dead_letters.list() == []
    # and the session still counts every call, for people
    assert queue_stack.recorder.get(session_id).attempts["update-layout"] == 4 + failures + 1


def test_an_older_layout_that_comes_after_a_newer_one_was_applied_is_not_sent(
    queue_stack: QueueStack,
) -> None:
    # Given a layout numbered by one producer (1) whose message is delayed, and a newer one
    # (2) queued by another producer and applied
    queue_stack.start_worker()
    session_id, sid = _recording(queue_stack, "budget-order")
    older = queue_stack.recorder.sequences.next(session_id, "update-layout")
    queue_stack.recorder.update_layout(session_id, {"mixedVideoLayout": 1})
    _until(lambda: _applied(queue_stack, session_id) == 1, what="the newer layout")

    # When the older message arrives
    sender = sending_app(queue_stack.settings)
    task_id = send_task(
        sender, "krtc.update_layout", [session_id, {"mixedVideoLayout": 2}, older.sequence]
    )

    # Then it ends without a call and without a dead letter; the newer layout stays
    assert "superseded" in _outcome(queue_stack, task_id)
    assert [_layout_of(r) for r in _layout_calls(queue_stack)] == [1]
    assert queue_stack.sandbox.recording(sid)["layout"]["mixedVideoLayout"] == 1
    assert queue_stack.recorder.dead_letters.list() == []
    # and an old producer's message, without a number, is still applied
    send_task(sender, "krtc.update_layout", [session_id, {"mixedVideoLayout": 0}])
    _until(lambda: _applied(queue_stack, session_id) == 2, what="the unnumbered layout")


def test_three_copies_of_one_update_message_delivered_at_once_send_one_call(
    queue_stack: QueueStack,
) -> None:
    # Given a numbered layout update, and calls slow enough to overlap
    queue_stack.start_worker()
    session_id, _ = _recording(queue_stack, "budget-copies")
    numbered = queue_stack.recorder.sequences.next(session_id, "update-layout")
    queue_stack.sandbox.set_faults(latency_ms=600)

    # When three copies of its message (one task id) are delivered at once
    sender = sending_app(queue_stack.settings)
    args = [session_id, {"mixedVideoLayout": 2}, numbered.sequence]
    ids = {
        send_task(sender, "krtc.update_layout", args, task_id="copies-of-one-update")
        for _ in range(3)
    }
    assert ids == {"copies-of-one-update"}

    # Then one call is made, and the copies end without a dead letter
    _until(lambda: _applied(queue_stack, session_id) == 1, what="the update")
    succeeded = "[copies-of-one-update] succeeded"
    _until(lambda: queue_stack.logs().count(succeeded) == 3, timeout_s=20, what="every copy")
    assert queue_stack.logs().count("superseded") == 2
    assert len(_layout_calls(queue_stack)) == 1
    assert queue_stack.recorder.dead_letters.list() == []


def test_a_stop_never_confirmed_raises_stop_unconfirmed_once_and_the_job_ends(
    queue_stack: QueueStack,
) -> None:
    # Given a recording that will never reach status 8 (held at 6 by the server)
    queue_stack.start_worker()
    session_id, sid = _recording(queue_stack, "budget-confirm")
    queue_stack.sandbox.set_status(sid, 6)

    # When it is stopped
    queue_stack.recorder.stop(session_id)

    # Then, after the confirmation budget, stop_unconfirmed is raised and the queries end
    started = time.monotonic()
    _until(lambda: _alert_kinds(queue_stack, session_id)["stop_unconfirmed"], what="the alert")
    assert time.monotonic() - started >= STOP_CONFIRM_S - 0.5
    queries = _until(lambda: queue_stack.sandbox.stats()["byAction"].get("CloudRecordingQuery"))
    time.sleep(2.5)
    assert queue_stack.sandbox.stats()["byAction"]["CloudRecordingQuery"] == queries
    # and the session is left stopping for the reconciler, without a dead letter
    session = queue_stack.recorder.get(session_id, with_history=True)
    assert session.phase == Phase.STOPPING and session.last_status == 6
    assert any("stop not confirmed" in h.what for h in session.history)
    assert queue_stack.recorder.dead_letters.list() == []

    # When the stop is queued again (as the reconciler does) and again is not confirmed
    sender = sending_app(queue_stack.settings)
    task_id = send_task(sender, "krtc.stop", [session_id])
    assert "unconfirmed" in _outcome(queue_stack, task_id)

    # Then the alert is still raised once
    assert _alert_kinds(queue_stack, session_id) == {"stop_unconfirmed": 1}


def test_a_stop_and_an_update_waiting_for_a_sid_give_up_after_their_time_budget(
    queue_stack: QueueStack,
) -> None:
    # Given a start that keeps failing with 500s (no sid for a long while)
    queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 500, "count": 1000}])
    queue_stack.start_worker(KRTC_START_MAX_ATTEMPTS="1000")
    session = queue_stack.recorder.start(start_body("budget-sid-wait"))
    _until(lambda: queue_stack.recorder.get(session.id).attempts.get("start"), what="a start")

    # When a layout update and a stop are queued meanwhile
    queued = time.monotonic()
    queue_stack.recorder.update_layout(session.id, {"mixedVideoLayout": 1})
    queue_stack.recorder.stop(session.id)

    # Then each waits its time budget (far more looks than the update's 3 attempts) and not
    # much longer (far fewer than the stop's 200 attempts), then gives up: a dead letter each
    seen: dict[str, float] = {}

    def both_letters() -> bool:
        letters: list[DeadLetter] = queue_stack.recorder.dead_letters.list()
        for letter in letters:
            seen.setdefault(letter.action, time.monotonic() - queued)
        return {"update-layout", "stop"} <= set(seen)

    _until(both_letters, timeout_s=SID_WAIT_S + 15, what="both jobs to give up")
    for action, elapsed in seen.items():
        assert SID_WAIT_S <= elapsed < SID_WAIT_S + 10, (action, elapsed)
    kinds = {x.action: x.error["kind"] for x in queue_stack.recorder.dead_letters.list()}
    assert kinds == {"update-layout": "no_sid", "stop": "no_sid"}
    assert queue_stack.sandbox.stats()["byAction"].get("CloudRecordingStop") is None
