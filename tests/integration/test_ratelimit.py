"""The per-appId rate limit against a real Redis, and through a real worker.

The limiter's promise: over any window of D seconds, at most ``rate × D + burst`` calls of one
appId go, however many processes share it; other appIds are not affected.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest
from redis import Redis

from orchestrator.ratelimit import RateLimiter
from orchestrator.state import Keys, Phase
from tests.integration.worker_fixture import QueueStack, start_body

#: Seconds that wall-clock readings in different processes may disagree by (sleep overshoot).
SLACK_S = 0.05


def _limiter(redis_client: Redis, key_prefix: str, rate: float, burst: int) -> RateLimiter:
    return RateLimiter(redis_client, keys=Keys(key_prefix), rate_per_s=rate, burst=burst)


def hammer(
    url: str,
    prefix: str,
    app_id: str,
    rate: float,
    burst: int,
    duration: float,
    ready: Any,
    out: Any,
) -> None:
    """One contending process: reserve, wait, "call", again, for ``duration`` seconds from the
    moment every process is ready; puts the times its calls went on ``out``."""
    client = Redis.from_url(url)
    limiter = RateLimiter(client, keys=Keys(prefix), rate_per_s=rate, burst=burst)
    client.ping()
    went: list[float] = []
    try:
        ready.wait(timeout=60)
        end = time.time() + duration
        while True:
            wait = limiter.acquire(app_id)
            go_at = time.time() + wait
            if go_at >= end:
                break
            time.sleep(wait)
            went.append(go_at)
    finally:
        client.close()
        out.put(went)


def test_four_processes_on_one_app_id_get_rate_times_duration_plus_burst(
    redis_url: str, key_prefix: str
) -> None:
    rate, burst, duration, processes = 20.0, 5, 2.0, 4
    # Given four processes, released together once all have started, that call as fast as the
    # limit lets them
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes)
    out = context.Queue()
    args = (redis_url, key_prefix, "app-hot", rate, burst, duration, ready, out)
    workers = [context.Process(target=hammer, args=args) for _ in range(processes)]
    # When they hammer one appId for two seconds
    for worker in workers:
        worker.start()
    try:
        results = [out.get(timeout=90) for _ in workers]
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()

    # Then together they made rate × 2 s + burst calls: never more, and the limit was used up
    went = sorted(t for times in results for t in times)
    allowed = rate * duration + burst
    # (the lower bound is loose: on a loaded 2-core machine the processes lose some slots)
    assert allowed * 0.6 <= len(went) <= allowed, (len(went), [len(r) for r in results])
    assert all(results), "every process got calls through"
    # and no window of the run held more than its share
    for i in range(len(went)):
        for j in range(i + burst, len(went)):
            assert j - i + 1 <= rate * (went[j] - went[i] + SLACK_S) + burst


def test_reservations_space_calls_one_interval_apart_after_the_burst(
    redis_client: Redis, key_prefix: str
) -> None:
    limiter = _limiter(redis_client, key_prefix, rate=10.0, burst=2)

    waits = [limiter.acquire("app") for _ in range(5)]

    assert waits[:2] == [0.0, 0.0]
    for n, wait in enumerate(waits[2:], start=1):
        assert n * 0.1 - 0.02 <= wait <= n * 0.1


def test_app_ids_do_not_share_a_limit(redis_client: Redis, key_prefix: str) -> None:
    limiter = _limiter(redis_client, key_prefix, rate=1.0, burst=3)

    # Given appId A has used its burst
    assert [limiter.acquire("A") for _ in range(3)] == [0.0] * 3
    assert limiter.acquire("A") > 0.9
    # Then appId B still has all of its own
    assert [limiter.acquire("B") for _ in range(3)] == [0.0] * 3
    assert limiter.acquire("B") > 0.9


def test_a_rate_of_zero_lets_everything_through_and_writes_nothing(
    redis_client: Redis, key_prefix: str
) -> None:
    limiter = _limiter(redis_client, key_prefix, rate=0.0, burst=1)

    assert all(limiter.acquire("app") == 0.0 for _ in range(200))
    assert not list(redis_client.scan_iter(match=Keys(key_prefix).pattern()))


def test_a_wait_longer_than_the_caller_accepts_reserves_nothing(
    redis_client: Redis, key_prefix: str
) -> None:
    limiter = _limiter(redis_client, key_prefix, rate=1.0, burst=1)
    assert limiter.acquire("app") == 0.0

    # When a caller turns down a one-second wait (it retries later instead)
    refused = limiter.acquire("app", max_wait_s=0.5)

    # Then the next caller gets that same slot, not the one after it
    assert 0.9 <= refused <= 1.0
    assert 0.9 <= limiter.acquire("app") <= 1.0
    assert 1.9 <= limiter.acquire("app", max_wait_s=5.0) <= 2.0


def test_an_idle_app_ids_state_expires_once_its_burst_is_back(
    redis_client: Redis, key_prefix: str
) -> None:
    limiter = _limiter(redis_client, key_prefix, rate=10.0, burst=5)

    limiter.acquire("app")

    ttl_ms = redis_client.pttl(Keys(key_prefix).rate_limit("app"))
    assert 0 < ttl_ms <= 102


@pytest.mark.integration
def test_a_worker_spaces_the_start_calls_of_one_app_id_by_the_limit(
    queue_stack: QueueStack,
) -> None:
    rate, burst, starts = 2.0, 2, 8
    # Given a worker that could send all the starts at once, limited to 2 calls/s per appId
    queue_stack.start_worker(KRTC_RATE_LIMIT_PER_APP=str(rate), KRTC_RATE_LIMIT_BURST=str(burst))

    # When eight recordings of one appId are started together
    sessions = [queue_stack.recorder.start(start_body(f"limited-{n}")) for n in range(starts)]

    # Then all of them record
    for session in sessions:
        queue_stack.wait(session.id, Phase.RECORDING, timeout=30)
    # and the sandbox saw the start calls no faster than the limit
    went = sorted(
        entry["time"]
        for entry in queue_stack.sandbox.requests()
        if entry["action"] == "CloudRecordingStart" and entry["appId"] == "app-test"
    )
    assert len(went) == starts
    for i in range(len(went)):
        for j in range(i + 1, len(went)):
            assert j - i + 1 <= rate * (went[j] - went[i] + SLACK_S) + burst, went
    assert went[-1] - went[0] >= (starts - burst) / rate - SLACK_S
