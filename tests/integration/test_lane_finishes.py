"""A lane start's finish sent with its dispatcher's next take (real Redis, real sandbox).

A finish batched with the take must leave Redis exactly as the run's own finish
(``StartFlights.finish``) leaves it; one finish Redis refuses fails only its own run; and a run
whose finish the dispatcher cannot send (it blocks on an empty lane, it stopped, its round trip
failed, it took too long) sends the finish itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import workers.lane_finishes as lane_finishes
from orchestrator.jobs import JobContext
from orchestrator.state import Phase, Session, SessionStore
from orchestrator.state.codec import session_from_hash
from orchestrator.state.errors import StateBackendError, StateUnavailableError
from orchestrator.state.flights import StartFlights
from orchestrator.state.lane import LaneEntry, StartLane
from orchestrator.state.results import AdoptOutcome, AdoptResult
from tests.integration.worker_fixture import QueueStack, start_body
from workers.lane import LaneConsumer
from workers.lane_finishes import BatchedFinishes

pytestmark = pytest.mark.timeout(60)

LEASE_S = 30.0
#: What differs between two sessions started alike.
_OWN = {"id", "cname", "sid", "request", "created_at", "updated_at", "phase_since", "started_at"}


def _begun(
    store: SessionStore, lane: StartLane, flights: StartFlights, count: int
) -> list[tuple[LaneEntry, Session]]:
    """``count`` sessions queued and taken (begun) from the lane."""
    for n in range(count):
        session, _ = store.create(app_id="app-test", cname=f"fin-{n}", uid="1001", mode="mix")
        lane.push(session.id)
    params = lane.begin_params(flights, lease_s=LEASE_S, max_deaths=3)
    taken = lane.cycle(count, visibility_s=60, acks=[], begin=params)
    assert len(taken) == count and all(e.begun for e in taken)
    return [(e, session_from_hash(e.session_id, e.fields)) for e in taken]


def _after(store: SessionStore, session_id: str) -> tuple[dict[str, str], list[str]]:
    """The session's fields (what differs between two sessions left out) and its history."""
    fields = store.redis.hgetall(store.keys.session(session_id))
    history = [e.what for e in store.history(session_id)]
    return {k: v for k, v in fields.items() if k not in _OWN}, history


def _finish_args(entry: LaneEntry) -> dict[str, Any]:
    return {"run_id": entry.run_id, "token": entry.token, "now": time.time(), "why": "started"}


def test_a_finish_sent_with_the_take_writes_what_the_runs_own_finish_writes(
    store: SessionStore, lane: StartLane, flights: StartFlights
) -> None:
    (own, own_session), (batched, batched_session) = _begun(store, lane, flights, 2)
    direct = flights.finish(own_session, "sid-own", **_finish_args(own))

    later = store.create(app_id="app-test", cname="fin-later", uid="1001", mode="mix")[0]
    lane.push(later.id)
    call = flights.finish_call(batched_session, "sid-b", **_finish_args(batched))
    replies, taken = lane.cycle_finishing(
        [call], 5, visibility_s=60, acks=[own.delivery, batched.delivery]
    )
    assert [e.session_id for e in taken] == [later.id], "the take ran in the same round trip"
    assert (
        call.result(replies[0])
        == direct
        == AdoptResult(AdoptOutcome.RECORDING, Phase.STARTING, None)
    )
    assert _after(store, batched.session_id) == _after(store, own.session_id)
    assert store.get(batched.session_id).sid == "sid-b"  # type: ignore[union-attr]
    for entry in (own, batched):
        assert not store.redis.exists(store.keys.lease(entry.session_id, "start"))
        assert not store.redis.exists(store.keys.run(entry.run_id))
    assert lane.depth().inflight == 1, "both acknowledged, the new one in flight"


def test_a_finish_redis_refuses_fails_only_its_own_run(
    store: SessionStore, lane: StartLane, flights: StartFlights
) -> None:
    (good, good_session), (bad, bad_session) = _begun(store, lane, flights, 2)
    # Its history is not a list: the script's RPUSH is refused.
    store.redis.delete(store.keys.history(bad.session_id))
    store.redis.set(store.keys.history(bad.session_id), "not a list")
    calls = [
        flights.finish_call(bad_session, "sid-bad", **_finish_args(bad)),
        flights.finish_call(good_session, "sid-good", **_finish_args(good)),
    ]
    replies, _ = lane.cycle_finishing(calls, 0, visibility_s=60, acks=[])
    assert isinstance(replies[0], StateBackendError)
    assert "WRONGTYPE" in str(replies[0])
    assert calls[1].result(replies[1]).outcome == AdoptOutcome.RECORDING
    assert store.get(good.session_id).phase == Phase.RECORDING  # type: ignore[union-attr]


class _Run(threading.Thread):
    """A run's finish through ``finishes``, in its own thread (as a lane run does it)."""

    def __init__(self, finishes: BatchedFinishes, entry: LaneEntry, session: Session) -> None:
        super().__init__(daemon=True)
        self.finishes, self.entry, self.session = finishes, entry, session
        self.result: AdoptResult | BaseException | None = None

    def run(self) -> None:
        sid = f"sid-{self.entry.session_id[-6:]}"
        try:
            self.result = self.finishes.finish(self.session, sid, **_finish_args(self.entry))
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.result = exc


def _waiting(lock: threading.Condition, finishes: BatchedFinishes, count: int) -> None:
    deadline = time.monotonic() + 5
    with lock:
        while len(finishes) < count:
            assert time.monotonic() < deadline, "the runs never handed their finishes over"
            lock.wait(0.05)


def _recording(store: SessionStore, runs: list[_Run]) -> None:
    for run in runs:
        run.join(5)
        assert isinstance(run.result, AdoptResult), run.result
        assert run.result.outcome == AdoptOutcome.RECORDING
        assert store.get(run.entry.session_id).phase == Phase.RECORDING  # type: ignore[union-attr]


def test_runs_wait_for_the_dispatcher_and_get_their_own_answers(
    store: SessionStore, lane: StartLane, flights: StartFlights
) -> None:
    lock = threading.Condition()
    finishes = BatchedFinishes(lock, lambda: flights)
    runs = [_Run(finishes, e, s) for e, s in _begun(store, lane, flights, 3)]
    for run in runs:
        run.start()
    _waiting(lock, finishes, 3)
    assert all(store.get(r.entry.session_id).phase == Phase.STARTING for r in runs)  # type: ignore[union-attr]
    with lock:
        pending = finishes.take()
    replies, _ = lane.cycle_finishing([p.call for p in pending], 0, visibility_s=60, acks=[])
    finishes.settle(pending, replies)
    _recording(store, runs)


@pytest.mark.parametrize("how", ["blocked", "closed", "handed back", "not sent in time"])
def test_a_run_sends_its_finish_itself_when_the_dispatcher_cannot(
    store: SessionStore,
    lane: StartLane,
    flights: StartFlights,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    lock = threading.Condition()
    finishes = BatchedFinishes(lock, lambda: flights)
    monkeypatch.setattr(lane_finishes, "FINISH_WAIT_S", 0.2)
    runs = [_Run(finishes, e, s) for e, s in _begun(store, lane, flights, 2)]
    if how == "blocked":
        finishes.blocked = True
    elif how == "closed":
        with lock:
            assert finishes.close() == []
    for run in runs:
        run.start()
    if how == "handed back":  # the dispatcher's round trip failed: they try on their own
        _waiting(lock, finishes, 2)
        with lock:
            finishes.hand_back(finishes.take())
    _recording(store, runs)
    assert len(finishes) == 0


def _run_on_a_lane_consumer(queue_stack: QueueStack, cname: str, count: int) -> list[Session]:
    """``count`` starts queued, then run by an in-process lane consumer of 8 threads against
    the sandbox (100 ms a call) until every session records."""
    queue_stack.sandbox.set_faults(latency_ms=100)
    ctx = JobContext.from_settings(queue_stack.settings)
    ids = [queue_stack.recorder.start(start_body(f"{cname}-{n}")).id for n in range(count)]
    consumer = LaneConsumer(lambda: ctx, threads=8, name="test")
    consumer.start()
    try:
        return [queue_stack.wait(i, Phase.RECORDING) for i in ids]
    finally:
        consumer.stop(5)


def test_a_lane_worker_sends_most_finishes_with_its_takes(
    queue_stack: QueueStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched: list[int] = []
    cycle: Callable[..., Any] = StartLane.cycle_finishing

    def counting(self: StartLane, finishes: Any, *args: Any, **kwargs: Any) -> Any:
        batched.append(len(finishes))
        return cycle(self, finishes, *args, **kwargs)

    monkeypatch.setattr(StartLane, "cycle_finishing", counting)
    sessions = _run_on_a_lane_consumer(queue_stack, "batch", 24)
    assert len({s.sid for s in sessions}) == len(sessions), "one sid per session"
    assert sum(batched) >= len(sessions) // 2, f"finishes sent with takes: {batched}"
    assert max(batched) >= 2, "several finishes in one round trip"


@pytest.mark.parametrize("applied", [False, True], ids=["not-sent", "answer-lost"])
def test_a_failed_round_trip_hands_the_finishes_back_and_each_session_records_once(
    queue_stack: QueueStack, monkeypatch: pytest.MonkeyPatch, applied: bool
) -> None:
    """The dispatcher's round trip with finishes fails once (before Redis ran it, or after,
    its answer lost): every run sends its finish itself; one start and one sid per session."""
    failed: list[int] = []
    cycle: Callable[..., Any] = StartLane.cycle_finishing

    def failing_once(self: StartLane, finishes: Any, *args: Any, **kwargs: Any) -> Any:
        if finishes and not failed:
            failed.append(len(finishes))
            if applied:
                cycle(self, finishes, *args, **kwargs)
            raise StateUnavailableError("Redis is unreachable (injected by the test)")
        return cycle(self, finishes, *args, **kwargs)

    monkeypatch.setattr(StartLane, "cycle_finishing", failing_once)
    # No more entries than threads: the failed take leaves nothing behind in flight.
    sessions = _run_on_a_lane_consumer(queue_stack, "lost", 8)
    assert failed, "no round trip carried a finish"
    assert len({s.sid for s in sessions}) == len(sessions)
    starts = queue_stack.sandbox.stats()["byAction"]["CloudRecordingStart"]
    assert starts == {"ok": len(sessions)}, "one start per session"
    assert "CloudRecordingStop" not in queue_stack.sandbox.stats()["byAction"], "no stray sid"
