"""One clock decides: a beat 2 s behind and a worker 3 s ahead change nothing.

Real processes under Debian's ``faketime`` (``faketime -f -2s krtc-rec beat``, ``faketime -f +3s
krtc-rec worker``), the real Redis and the sandbox. The sandbox (unskewed, like Redis) timestamps
every API call as it arrives: those times are the reference.

Before this held, Celery's ``expires`` on the beat tasks (set from the beat's clock, checked
against the worker's) had every schedule tick and reconcile round discarded as revoked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.alerts import AlertStore
from orchestrator.metrics.skew import read_skews
from orchestrator.reconcile.rounds import RoundGate
from orchestrator.schedule import Outcome
from orchestrator.state import Phase
from tests.integration.test_schedule_e2e import (
    api_calls,
    in_s,
    scheduler_for,
    wait_outcome,
    wait_ticking,
)
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("faketime") is None and not os.environ.get("CI"),
        reason="faketime is not installed (Debian: apt-get install faketime)",
    ),
]

BEAT_SKEW = "-2s"
WORKER_SKEW = "+3s"


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"schedule_tick_interval": 1.0, "reconcile_interval": 1.0}


@pytest.fixture
def skewed_beat(queue_stack: QueueStack) -> Iterator[subprocess.Popen[bytes]]:
    log = (queue_stack.tmp_path / "beat.log").open("wb")
    beat = subprocess.Popen(
        ["faketime", "-f", BEAT_SKEW, sys.executable, "-m", "orchestrator.cli", "beat",
         "--schedule-file", str(queue_stack.tmp_path / "beat-schedule")],
        env={**os.environ, **queue_stack.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    yield beat
    # faketime runs beat as its child: end the whole group, not only faketime.
    os.killpg(beat.pid, signal.SIGTERM)
    try:
        beat.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(beat.pid, signal.SIGKILL)
        beat.wait(10)


def test_a_skewed_beat_and_worker_start_stop_and_reconcile_on_time(
    queue_stack: QueueStack, skewed_beat: subprocess.Popen[bytes]
) -> None:
    # Given a worker 3 s ahead and a beat 2 s behind
    queue_stack.start_worker(wrapper=["faketime", "-f", WORKER_SKEW])
    scheduler = scheduler_for(queue_stack)
    wait_ticking(scheduler, timeout=40)
    gate = RoundGate(
        queue_stack.recorder.store.redis, queue_stack.recorder.store.keys, interval_s=1.0
    )
    rounds_before = len(gate.recent(100))
    # When a meeting is scheduled 4 s ahead for 4 s, and a recording has a max duration of 5 s
    tag = uuid.uuid4().hex[:8]
    meeting = scheduler.add(start_body(f"skew-meeting-{tag}"), start_at=in_s(4.0), duration_s=4)
    capped = queue_stack.recorder.start(start_body(f"skew-capped-{tag}"), max_duration_s=5)
    queue_stack.wait(capped.id, Phase.RECORDING)
    # Then the meeting starts within 2 s of its time and stops within 2.5 s of its end
    done = wait_outcome(scheduler, f"{meeting.id}-1", Outcome.COMPLETED, timeout=30)
    queue_stack.wait(capped.id, Phase.STOPPED, timeout=20)
    time.sleep(1.0)
    [start] = api_calls(queue_stack, f"skew-meeting-{tag}", "Start")
    [stop] = api_calls(queue_stack, f"skew-meeting-{tag}", "Stop")
    assert 0 <= start["time"] - done.start <= 2.0, start["time"] - done.start
    assert 0 <= stop["time"] - done.end <= 2.5, stop["time"] - done.end
    # ... the capped recording was stopped after 5 s, never before
    [capped_start] = api_calls(queue_stack, f"skew-capped-{tag}", "Start")
    [capped_stop] = api_calls(queue_stack, f"skew-capped-{tag}", "Stop")
    ran = capped_stop["time"] - capped_start["time"]
    assert 5.0 <= ran <= 5.0 + 3.0, ran
    # ... and the reconciler kept polling (a round a second)
    assert len(gate.recent(100)) - rounds_before >= 5
    # ... while each skewed process reported its skew and raised one alert
    store = queue_stack.recorder.store
    skews = read_skews(store.redis, store.keys, store.clock())
    by_role = {name.split("@")[0]: skew for name, skew in skews.items()}
    assert by_role["worker"] == pytest.approx(3.0, abs=0.5), skews
    assert by_role["beat"] == pytest.approx(-2.0, abs=0.5), skews
    alerts = AlertStore(store.redis, keys=store.keys).recent()
    skew_alerts = sorted(a.session_id.split("@")[0] for a in alerts if a.kind == "clock_skew")
    assert skew_alerts == ["beat", "worker"]
