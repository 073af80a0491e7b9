"""The API call recorder (orchestrator/metrics/recorder.py) against a scripted Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from orchestrator.krtc import errors as e
from orchestrator.krtc.enums import Action
from orchestrator.metrics import OUTCOMES, MetricsRecorder, outcome_of, record_schedule_lag
from orchestrator.state import Keys

KEYS = Keys("t")


class ScriptedRedis:
    """Just enough of redis-py for the recorder: pipelines of HINCRBY/HINCRBYFLOAT."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, float]] = {}
        self.down = False
        self.executes = 0

    def pipeline(self, transaction: bool = True) -> ScriptedRedis._Pipe:
        return ScriptedRedis._Pipe(self)

    class _Pipe:
        def __init__(self, redis: ScriptedRedis) -> None:
            self.redis = redis
            self.ops: list[tuple[str, str, float]] = []

        def hincrby(self, key: str, field: str, amount: int) -> None:
            assert isinstance(amount, int)
            self.ops.append((key, field, amount))

        def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
            self.ops.append((key, field, amount))

        def execute(self) -> list[Any]:
            self.redis.executes += 1
            if self.redis.down:
                raise RedisConnectionError("Connection refused")
            for key, field, amount in self.ops:
                bucket = self.redis.hashes.setdefault(key, {})
                bucket[field] = bucket.get(field, 0) + amount
            return []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis() -> ScriptedRedis:
    return ScriptedRedis()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder(redis: ScriptedRedis, clock: Clock) -> MetricsRecorder:
    return MetricsRecorder(redis, KEYS, clock=clock, retry_after_s=5.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (None, "ok"),
        (e.ServerError(Action.STOP, "boom", status=500), "transient"),
        (e.RateLimitedError(Action.STOP, "slow down", status=429), "transient"),
        (e.TransportError(Action.STOP, "timed out", maybe_applied=True), "transient"),
        (e.AuthError(Action.STOP, "no", status=403), "permanent"),
        (e.InvalidRequestError(Action.STOP, "bad", status=400), "permanent"),
        (e.NotFoundError(Action.STOP, "gone", status=404), "not_found"),
        (e.ConflictError(Action.STOP, "busy", status=409), "conflict"),
        (RuntimeError("bug"), "error"),
    ],
)
def test_each_failure_has_its_outcome_label(error: BaseException | None, outcome: str) -> None:
    assert outcome_of(error) == outcome
    assert outcome in OUTCOMES


def test_a_call_adds_its_count_and_its_latency(
    recorder: MetricsRecorder, redis: ScriptedRedis
) -> None:
    recorder.observe_call(Action.UPDATE_LAYOUT, 0.3, None)
    recorder.observe_call(Action.UPDATE_LAYOUT, 0.03, e.ServerError(Action.STOP, "x", status=502))

    assert redis.hashes[KEYS.metrics_api_requests()] == {
        "update-layout|ok": 1,
        "update-layout|transient": 1,
    }
    latency = redis.hashes[KEYS.metrics_api_seconds()]
    assert latency["update-layout|0.5"] == 1
    assert latency["update-layout|0.05"] == 1
    assert latency["update-layout|count"] == 2
    assert latency["update-layout|sum"] == pytest.approx(0.33)


def test_while_redis_fails_calls_are_kept_and_written_once_it_answers(
    recorder: MetricsRecorder, redis: ScriptedRedis, clock: Clock
) -> None:
    # Given Redis refuses connections
    redis.down = True
    # When calls are recorded, the first write fails and the next ones wait for the pause
    recorder.record_call("stop", "ok", 0.1)
    recorder.record_call("stop", "ok", 0.1)
    assert redis.executes == 1
    assert recorder.pending() > 0
    # Then, once Redis answers and the pause is over, everything is written once
    redis.down = False
    clock.now += 5.0
    recorder.record_call("stop", "transient", 0.1)
    assert recorder.pending() == 0
    assert redis.hashes[KEYS.metrics_api_requests()] == {"stop|ok": 2, "stop|transient": 1}
    assert redis.hashes[KEYS.metrics_api_seconds()]["stop|count"] == 3


def test_recording_never_raises_when_redis_fails(
    recorder: MetricsRecorder, redis: ScriptedRedis
) -> None:
    redis.down = True

    recorder.observe_call(Action.START, 0.1, None)
    assert recorder.flush(force=True) is False


def test_schedule_lag_is_a_histogram_and_a_negative_lag_counts_as_zero(
    redis: ScriptedRedis,
) -> None:
    assert record_schedule_lag(redis, KEYS, 75.0) is True  # type: ignore[arg-type]
    assert record_schedule_lag(redis, KEYS, -3.0) is True  # type: ignore[arg-type]

    assert redis.hashes[KEYS.metrics_schedule_lag()] == {
        "120.0": 1,
        "0.1": 1,
        "count": 2,
        "sum": 75.0,
    }


def test_schedule_lag_is_dropped_not_raised_when_redis_fails(redis: ScriptedRedis) -> None:
    redis.down = True

    assert record_schedule_lag(redis, KEYS, 1.0) is False  # type: ignore[arg-type]


def test_a_workers_recorder_adds_calls_up_and_writes_them_once_per_interval(
    redis: ScriptedRedis,
) -> None:
    recorder = MetricsRecorder(redis, KEYS, flush_every_s=0.2)  # type: ignore[arg-type]
    for _ in range(50):
        recorder.observe_call(Action.START, 0.05, None)
    assert redis.executes == 0, "nothing is written per call"
    deadline = time.monotonic() + 2.0
    while redis.executes == 0:
        assert time.monotonic() < deadline, "the thread never wrote"
        time.sleep(0.01)
    assert redis.executes == 1
    assert redis.hashes[KEYS.metrics_api_requests()] == {"start|ok": 50}

    recorder.observe_call(Action.STOP, 0.05, None)
    recorder.close()
    assert redis.hashes[KEYS.metrics_api_requests()] == {"start|ok": 50, "stop|ok": 1}
