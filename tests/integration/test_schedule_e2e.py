"""Scheduled recordings end to end: real beats, a real worker, the sandbox, the real Redis.

Times are short and real: a meeting a few seconds ahead lasting a few seconds. The lag of each
start and stop is measured three ways (the tick's dispatch time, the session's creation, the
sandbox's arrival time of the API call) and must stay within 2 s, and never be early.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis import Redis

from orchestrator.alerts import AlertStore
from orchestrator.schedule import Occurrence, Outcome, Scheduler, ScheduleStore
from tests.integration.worker_fixture import QueueStack, start_body

#: The issue's bound on start and stop lateness.
MAX_LAG_S = 2.0


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    # The reconciler stays out of the way (its own tests cover it).
    return {"schedule_tick_interval": 1.0, "reconcile_interval": 600.0}


class Beats:
    """``krtc-rec beat`` subprocesses of a test."""

    def __init__(self, stack: QueueStack) -> None:
        self.stack = stack
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1) -> None:
        for _ in range(count):
            n = len(self.processes)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "orchestrator.cli", "beat", "--schedule-file",
                     str(self.stack.tmp_path / f"beat-{n}")],
                    env={**os.environ, **self.stack.env},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)


@pytest.fixture
def beats(queue_stack: QueueStack) -> Iterator[Beats]:
    running = Beats(queue_stack)
    yield running
    running.stop()


def scheduler_for(stack: QueueStack) -> Scheduler:
    client = Redis.from_url(stack.settings.redis_url, decode_responses=True)
    return Scheduler(
        stack.settings, store=ScheduleStore(client, prefix=stack.settings.redis_prefix)
    )


def in_s(seconds: float) -> datetime:
    return datetime.fromtimestamp(time.time() + seconds, UTC)


def wait_outcome(
    scheduler: Scheduler, occurrence_id: str, *outcomes: Outcome, timeout: float = 20.0
) -> Occurrence:
    deadline = time.monotonic() + timeout
    while True:
        occurrence = scheduler.occurrence(occurrence_id)
        if occurrence.outcome in outcomes:
            return occurrence
        assert time.monotonic() < deadline, f"{occurrence_id} is still {occurrence.outcome}"
        time.sleep(0.1)


def wait_ticking(scheduler: Scheduler, timeout: float = 30.0) -> None:
    """Return once beat and the worker dispatch (a canary due now has been started)."""
    canary = scheduler.add(
        start_body(f"canary-{uuid.uuid4().hex[:8]}"), start_at=in_s(0), duration_s=600
    )
    wait_outcome(scheduler, f"{canary.id}-1", Outcome.STARTED, timeout=timeout)
    scheduler.cancel(f"{canary.id}-1")  # stopped by the next tick


def api_calls(stack: QueueStack, cname: str, action: str) -> list[dict[str, Any]]:
    return [
        r
        for r in stack.sandbox.requests()
        if r.get("cname") == cname and r.get("action") == f"CloudRecording{action}"
    ]


def test_two_beats_start_and_stop_each_meeting_once_and_on_time(
    queue_stack: QueueStack, beats: Beats
) -> None:
    # Given a worker, two beats, and three meetings starting in 3 s for 3 s
    queue_stack.start_worker()
    beats.start(2)
    scheduler = scheduler_for(queue_stack)
    wait_ticking(scheduler)
    tag = uuid.uuid4().hex[:8]
    cnames = [f"meeting-{tag}-{n}" for n in range(3)]
    schedules = [
        scheduler.add(start_body(cname), start_at=in_s(3.0), duration_s=3) for cname in cnames
    ]
    # When they have ended
    done = [wait_outcome(scheduler, f"{s.id}-1", Outcome.COMPLETED, timeout=25) for s in schedules]
    time.sleep(1.0)  # let the stop calls land in the sandbox
    # Then each started once and stopped once, within 2 s of its times, never early
    for cname, occurrence in zip(cnames, done, strict=True):
        session = queue_stack.recorder.get(occurrence.session_id or "")
        starts = api_calls(queue_stack, cname, "Start")
        stops = api_calls(queue_stack, cname, "Stop")
        assert len(starts) == 1 and len(stops) == 1, (starts, stops)
        lags = {
            "start dispatched": occurrence.start_lag_s,
            "session created": session.created_at - occurrence.start,
            "start call": starts[0]["time"] - occurrence.start,
            "stop requested": occurrence.stop_lag_s,
            "stop call": stops[0]["time"] - occurrence.end,
        }
        print(cname, {k: round(v or 0, 3) for k, v in lags.items()})
        assert all(lag is not None and 0 <= lag <= MAX_LAG_S for lag in lags.values()), lags
        assert stops[0]["sid"] == session.sid, "the stop ends the session the occurrence started"
    assert len(queue_stack.recorder.list(limit=50)) == 3 + 1, "the three and the canary"


def test_a_late_start_within_grace_runs_and_one_beyond_grace_is_missed_and_alerted(
    queue_stack: QueueStack, beats: Beats
) -> None:
    # Given two meetings due in 1 s, one with a 1 s grace and one with 60 s, and a cancelled one
    queue_stack.start_worker()
    scheduler = scheduler_for(queue_stack)
    tag = uuid.uuid4().hex[:8]
    strict = scheduler.add(
        start_body(f"strict-{tag}"), start_at=in_s(1.0), duration_s=10, misfire_grace_s=1
    )
    lenient = scheduler.add(
        start_body(f"lenient-{tag}"), start_at=in_s(1.0), duration_s=10, misfire_grace_s=60
    )
    cancelled = scheduler.add(start_body(f"cancelled-{tag}"), start_at=in_s(1.5), duration_s=3)
    scheduler.cancel(cancelled.id)
    # When no beat runs until 3 s after they were due (an outage)
    time.sleep(4.0)
    beats.start()
    # Then the lenient one starts late (and still stops at its planned end) ...
    late = wait_outcome(scheduler, f"{lenient.id}-1", Outcome.STARTED, Outcome.COMPLETED)
    # (3 s of outage plus beat's start-up: late, but within the grace)
    assert late.start_lag_s is not None and 3.0 <= late.start_lag_s <= 60
    # ... the strict one is missed, alerted, and never started
    missed = wait_outcome(scheduler, f"{strict.id}-1", Outcome.MISSED)
    assert missed.session_id is None and "misfire grace" in (missed.reason or "")
    ended = wait_outcome(scheduler, late.id, Outcome.COMPLETED)
    assert ended.stop_lag_s is not None and 0 <= ended.stop_lag_s <= MAX_LAG_S
    alerts = AlertStore(queue_stack.recorder.store.redis, keys=queue_stack.recorder.store.keys)
    assert [(a.kind.value, a.session_id) for a in alerts.recent()] == [("missed", missed.id)]
    assert api_calls(queue_stack, f"strict-{tag}", "Start") == []
    assert api_calls(queue_stack, f"cancelled-{tag}", "Start") == []
    assert len(api_calls(queue_stack, f"lenient-{tag}", "Start")) == 1
    assert scheduler.occurrence(f"{cancelled.id}-1").outcome == Outcome.CANCELLED
