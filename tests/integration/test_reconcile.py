"""The reconciler against the sandbox, the real Redis and a real worker."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from orchestrator.jobs.context import JobContext
from orchestrator.reconcile.runner import run_once
from orchestrator.reconcile.session import reconcile_session
from orchestrator.state import Phase, Session
from orchestrator.tasking.queues import send_task
from tests.integration.worker_fixture import QueueStack, start_body


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"reconcile_interval": 1.0, "stuck_after": 1.0}


class Alerts(list[tuple[str, str, str]]):
    def __call__(self, kind: str, session_id: str, reason: str) -> None:
        self.append((kind, session_id, reason))

    def kinds(self, session_id: str) -> list[str]:
        return [k for k, s, _ in self if s == session_id]


@pytest.fixture
def alerts() -> Alerts:
    return Alerts()


@pytest.fixture
def ctx(queue_stack: QueueStack, alerts: Alerts) -> JobContext:
    context = JobContext.from_settings(queue_stack.settings)
    context.enqueue = functools.partial(send_task, queue_stack.recorder.celery)
    context.alert = alerts
    return context


def _recording(stack: QueueStack, cname: str, **body: Any) -> Session:
    """A session whose recording the server reports at status 5 (with files)."""
    session = stack.recorder.start(start_body(cname, **body))
    recording = stack.wait(session.id, Phase.RECORDING)
    stack.wait_server_status(str(recording.sid), 5)
    return recording


def test_status_8_server_side_stops_the_session_keeps_files_and_frees_the_identity(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    queue_stack.start_worker()
    session = _recording(queue_stack, "rc-idle")
    queue_stack.sandbox.set_status(str(session.sid), 8)
    outcome = reconcile_session(ctx, session.id)
    stopped = queue_stack.recorder.get(session.id, with_history=True)
    assert stopped.phase == Phase.STOPPED and stopped.last_status == 8
    assert stopped.files
    assert outcome.changes and "-> stopped" in outcome.changes[0]
    assert stopped.history[-1].source.value == "poll"
    again = queue_stack.recorder.start(start_body("rc-idle"))
    assert again.id != session.id, "the identity is free: a new session, not a 409 deadlock"


def test_abnormal_exit_fails_the_session_and_alerts(
    queue_stack: QueueStack, ctx: JobContext, alerts: Alerts
) -> None:
    queue_stack.start_worker()
    session = _recording(queue_stack, "rc-20")
    queue_stack.sandbox.set_faults(abnormal_exit_sids=[session.sid])
    reconcile_session(ctx, session.id)
    reconcile_session(ctx, session.id)
    failed = queue_stack.recorder.get(session.id)
    assert failed.phase == Phase.FAILED and failed.last_status == 20
    assert alerts.kinds(session.id) == ["abnormal_exit"], "once, not once per poll"


def test_404_while_recording_is_lost_not_left_recording(
    queue_stack: QueueStack, ctx: JobContext, alerts: Alerts
) -> None:
    queue_stack.start_worker()
    session = _recording(queue_stack, "rc-lost")
    queue_stack.sandbox.set_status(str(session.sid), 8)
    queue_stack.sandbox.advance(3600)  # past the sandbox's retention: the sid is forgotten
    reconcile_session(ctx, session.id)
    lost = queue_stack.recorder.get(session.id)
    assert lost.phase == Phase.FAILED
    assert lost.last_error and lost.last_error["kind"] == "lost"
    assert alerts.kinds(session.id) == ["lost"]


def test_a_stop_whose_message_was_lost_is_issued_again(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    queue_stack.start_worker()
    session = _recording(queue_stack, "rc-restop")
    # The stop is recorded but its task never reaches the broker (a crash between the two).
    queue_stack.recorder.store.request_stop(session.id)
    time.sleep(queue_stack.settings.reconcile_interval + 0.2)
    outcome = reconcile_session(ctx, session.id)
    assert any("stop re-queued" in c for c in outcome.changes)
    queue_stack.wait(session.id, Phase.STOPPED)
    assert queue_stack.sandbox.recordings(cname="rc-restop", active=True) == []


def test_stuck_below_status_5_alerts(
    queue_stack: QueueStack, ctx: JobContext, alerts: Alerts
) -> None:
    queue_stack.sandbox.set_faults(stuck_new=True, stuck_status=2)
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("rc-stuck"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    reconcile_session(ctx, session.id)
    assert queue_stack.recorder.get(session.id).phase == Phase.STARTING, "status 2 -> starting"
    time.sleep(queue_stack.settings.stuck_after + 0.2)
    reconcile_session(ctx, recording.id)
    assert "stuck" in alerts.kinds(session.id)


def test_max_duration_stops_the_recording(queue_stack: QueueStack, ctx: JobContext) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("rc-max"), max_duration_s=1)
    queue_stack.wait(session.id, Phase.RECORDING)
    reconcile_session(ctx, session.id)
    assert queue_stack.recorder.get(session.id).desired.value == "recording"
    time.sleep(1.1)
    outcome = reconcile_session(ctx, session.id)
    assert any("max duration" in c for c in outcome.changes)
    queue_stack.wait(session.id, Phase.STOPPED)


def test_orphaned_session_expires_after_its_max_idle_horizon(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    queue_stack.sandbox.set_faults(apply_then_fail=[{"action": "start", "how": "error"}])
    queue_stack.start_worker()
    body = start_body("rc-orphan")
    body["clientRequest"]["recordingConfig"]["maxIdleTime"] = 1
    session = queue_stack.recorder.start(body)
    queue_stack.wait(session.id, Phase.ORPHANED)
    reconcile_session(ctx, session.id)
    assert queue_stack.recorder.get(session.id).phase == Phase.ORPHANED
    time.sleep(1 + queue_stack.settings.reconcile_interval + 0.2)
    reconcile_session(ctx, session.id)
    assert queue_stack.recorder.get(session.id).phase == Phase.FAILED


def test_run_once_reconciles_every_active_session(queue_stack: QueueStack, ctx: JobContext) -> None:
    queue_stack.start_worker()
    sessions = [_recording(queue_stack, f"rc-once-{n}") for n in range(3)]
    for session in sessions:
        queue_stack.sandbox.set_status(str(session.sid), 8)
    outcomes, _ = run_once(ctx)
    assert sorted(o.session_id for o in outcomes) == sorted(s.id for s in sessions)
    assert all(queue_stack.recorder.get(s.id).phase == Phase.STOPPED for s in sessions)


def test_status_20_pages_exactly_once_through_the_alert_store(queue_stack: QueueStack) -> None:
    from orchestrator.alerts.store import AlertStore

    real = JobContext.from_settings(queue_stack.settings)  # with the configured alerter
    real.enqueue = functools.partial(send_task, queue_stack.recorder.celery)
    queue_stack.start_worker()
    session = _recording(queue_stack, "rc-20-once")
    queue_stack.sandbox.set_faults(abnormal_exit_sids=[session.sid])
    for _ in range(3):
        reconcile_session(real, session.id)
    store = queue_stack.recorder.store
    recent = AlertStore(store.redis, keys=store.keys).recent(50)
    mine = [a for a in recent if a.session_id == session.id]
    assert [a.kind.value for a in mine] == ["abnormal_exit"]
    assert mine[0].sid == session.sid and mine[0].cname == "rc-20-once"


def test_an_orphan_whose_alert_was_lost_is_alerted_by_the_next_round(
    queue_stack: QueueStack, ctx: JobContext, alerts: Alerts
) -> None:
    # Given a session orphaned by a start job that died before it could alert (no worker runs:
    # the store's writes stand for the job's)
    store = queue_stack.recorder.store
    session = queue_stack.recorder.start(start_body("rc-orphan-unalerted"))
    store.transition(session.id, to=Phase.STARTING, why="sending start")
    store.transition(session.id, to=Phase.ORPHANED, why="409 without a sid")
    # When two rounds reconcile it
    reconcile_session(ctx, session.id)
    reconcile_session(ctx, session.id)
    # Then it is alerted (the alert store makes the repeats one alert)
    assert set(alerts.kinds(session.id)) == {"orphaned"}
    assert queue_stack.recorder.get(session.id).phase == Phase.ORPHANED
