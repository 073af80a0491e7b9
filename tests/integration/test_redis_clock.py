"""RedisClock: Redis' TIME carried forward with a monotonic clock; skew measured, not used."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from orchestrator.state import RedisClock, SessionStore, redis_time
from orchestrator.state.errors import StateUnavailableError


class Ticker:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_clock_follows_redis_time_not_the_wall_clock(redis_client: Redis) -> None:
    ticker = Ticker()
    seen: list[float] = []
    clock = RedisClock(
        redis_client, monotonic=ticker, wall=lambda: time.time() + 7.0, on_sync=seen.append
    )
    first = clock()
    assert first == pytest.approx(redis_time(redis_client), abs=0.05)
    assert clock.skew_s == pytest.approx(7.0, abs=0.05)
    assert seen == [clock.skew_s]
    ticker.now += 12.5  # no round trip: the offset is carried forward
    assert clock() == pytest.approx(first + 12.5, abs=1e-6)
    assert len(seen) == 1


def test_the_clock_reads_time_again_after_resync_s(redis_client: Redis) -> None:
    ticker = Ticker()
    seen: list[float] = []
    clock = RedisClock(redis_client, monotonic=ticker, resync_s=60, on_sync=seen.append)
    clock()
    ticker.now += 59
    clock()
    assert len(seen) == 1
    ticker.now += 2
    clock()
    assert len(seen) == 2


def test_a_lost_redis_keeps_the_last_offset_but_a_never_seen_one_is_an_error() -> None:
    dead = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(StateUnavailableError):
        RedisClock(dead)()


def test_a_clock_that_synced_once_survives_an_outage(redis_client: Redis) -> None:
    ticker = Ticker()
    clock = RedisClock(redis_client, monotonic=ticker, resync_s=10)
    first = clock()
    clock._redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    ticker.now += 30
    assert clock() == pytest.approx(first + 30, abs=1e-6)


def test_the_store_writes_times_on_redis_clock(store: SessionStore, redis_client: Redis) -> None:
    assert isinstance(store.clock, RedisClock)
    assert store.clock() == pytest.approx(redis_time(redis_client), abs=0.05)
