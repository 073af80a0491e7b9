"""Reconcile rounds: the gate in Redis, and two real beats over a few intervals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from orchestrator.reconcile.rounds import SPACING, RoundGate
from orchestrator.state import Keys, Phase, SessionStore
from tests.integration.state_fixture import FakeClock
from tests.integration.worker_fixture import QueueStack, start_body


def test_gate_allows_one_round_at_a_time_and_spaces_them(store: SessionStore) -> None:
    clock = FakeClock()
    gate = RoundGate(store.redis, store.keys, interval_s=0.5, clock=clock)
    first = gate.begin()
    assert first is not None
    assert gate.begin() is None, "a round is under way"
    assert gate.batch_done(first, add_batches=2) is None
    time.sleep(0.5)  # spacing over, but the round is still open: no overlap
    assert gate.begin() is None
    assert gate.batch_done(first, sessions=3, queried=3) is None
    clock.advance(2.0)
    summary = gate.batch_done(first, sessions=2, queried=1, changes=1)
    assert summary is not None
    assert (summary.sessions, summary.queried, summary.changes) == (5, 4, 1)
    assert summary.duration_s == pytest.approx(2.0)
    assert gate.begin() is not None, "closed and spaced: the next round may begin"
    assert [r.id for r in gate.recent()] == [first]


def test_gate_spacing_blocks_a_second_beat_right_after_a_short_round(store: SessionStore) -> None:
    gate = RoundGate(store.redis, store.keys, interval_s=5.0)
    round_id = gate.begin()
    assert round_id is not None
    assert gate.batch_done(round_id, add_batches=0) is not None, "empty round closes at once"
    assert gate.begin() is None, "the other beat's tick in the same interval does nothing"


def test_round_key_expiry_recovers_from_lost_batches(store: SessionStore) -> None:
    gate = RoundGate(store.redis, store.keys, interval_s=1.0)
    assert gate.begin() is not None
    store.redis.delete(Keys(store.keys.prefix).reconcile_round())  # what the TTL does
    time.sleep(0.85)
    assert gate.begin() is not None


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"reconcile_interval": 1.0}


def test_two_beats_over_four_intervals_run_about_four_rounds(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    sessions = [queue_stack.recorder.start(start_body(f"beat-{n}")) for n in range(2)]
    for session in sessions:
        queue_stack.wait(session.id, Phase.RECORDING)
    beats = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "beat", "--schedule-file",
             str(queue_stack.tmp_path / f"beat-{n}")],
            env={**os.environ, **queue_stack.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(2)
    ]  # fmt: skip
    try:
        time.sleep(4.5)
    finally:
        for beat in beats:
            beat.terminate()
        for beat in beats:
            beat.wait(10)
    time.sleep(0.5)
    gate = RoundGate(
        queue_stack.recorder.store.redis, queue_stack.recorder.store.keys, interval_s=1.0
    )
    rounds = gate.recent()
    # Two beats tick twice an interval between them; rounds still begin at least SPACING of
    # an interval apart (how many fit depends on how fast the beats came up on a busy machine).
    assert 2 <= len(rounds) <= 5, rounds
    starts = sorted(r.started for r in rounds)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= SPACING * 1.0 - 0.05, gaps
    queries = sum(
        1 for r in queue_stack.sandbox.requests() if r.get("action") == "CloudRecordingQuery"
    )
    assert len(rounds) <= queries <= 2 * len(rounds) + 2, "two beats must not double the polling"
    assert all(r.sessions == 2 for r in rounds)


def test_beat_fails_an_abnormal_exit_and_alerts_exactly_once(queue_stack: QueueStack) -> None:
    from orchestrator.alerts.store import AlertStore

    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("beat-20"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    beat = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "beat", "--schedule-file",
         str(queue_stack.tmp_path / "beat-20")],
        env={**os.environ, **queue_stack.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        queue_stack.sandbox.set_faults(abnormal_exit_sids=[recording.sid])
        failed = queue_stack.wait(session.id, Phase.FAILED, timeout=15)
        time.sleep(2.5)  # more rounds poll it: still one alert
    finally:
        beat.terminate()
        beat.wait(10)
    assert failed.last_status == 20
    store = queue_stack.recorder.store
    alerts = [a for a in AlertStore(store.redis, keys=store.keys).recent(50)]
    assert [(a.kind.value, a.session_id, a.sid) for a in alerts] == [
        ("abnormal_exit", session.id, recording.sid)
    ]
