"""The per-appId rate limit without Redis: off by default, validation, key names and wiring.

Its behaviour against a real Redis is in tests/integration/test_ratelimit.py.
"""

from __future__ import annotations

import functools

import pytest
from redis import Redis

from orchestrator.jobs import JobContext
from orchestrator.ratelimit import RateLimiter
from orchestrator.settings import DEFAULT_RATE_LIMIT_BURST, Settings
from orchestrator.state import Keys

#: Nothing listens on port 9 (discard): any command sent there fails.
NOWHERE = "redis://127.0.0.1:9/0"


def _dead_redis() -> Redis:
    return Redis.from_url(NOWHERE, socket_connect_timeout=0.2)


def test_a_rate_of_zero_never_waits_and_never_touches_redis() -> None:
    limiter = RateLimiter(_dead_redis(), keys=Keys("t"), rate_per_s=0)

    assert not limiter.is_enabled
    assert [limiter.acquire("app") for _ in range(100)] == [0.0] * 100


@pytest.mark.parametrize(
    ("rate", "burst"), [(-1.0, 5), (float("inf"), 5), (float("nan"), 5), (1.0, 0)]
)
def test_a_negative_or_infinite_rate_or_an_empty_burst_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(_dead_redis(), keys=Keys("t"), rate_per_s=rate, burst=burst)


def test_the_limit_of_each_app_id_has_its_own_key_under_the_prefix() -> None:
    keys = Keys("p")

    assert keys.rate_limit("app1") == "p:ratelimit:app1"
    assert keys.rate_limit("a:b") != keys.rate_limit("a%3Ab")
    assert keys.rate_limit("a:b").startswith("p:ratelimit:")


def test_the_burst_defaults_to_a_small_number() -> None:
    settings = Settings()

    assert settings.rate_limit_per_app == 0
    assert settings.rate_limit_burst == DEFAULT_RATE_LIMIT_BURST == 5


def test_jobs_are_not_throttled_when_the_limit_is_off(settings: Settings) -> None:
    ctx = JobContext.from_settings(settings.model_copy(update={"redis_url": NOWHERE}))

    assert ctx.throttle("app") == 0.0


def test_jobs_are_throttled_by_the_shared_limiter_when_a_rate_is_set(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"redis_url": NOWHERE, "rate_limit_per_app": 3.0, "rate_limit_burst": 2}
    )

    ctx = JobContext.from_settings(configured)

    throttle = ctx.throttle
    assert isinstance(throttle, functools.partial)
    limiter = throttle.func.__self__  # type: ignore[attr-defined]
    assert isinstance(limiter, RateLimiter)
    assert (limiter.rate_per_s, limiter.burst) == (3.0, 2)
    # A wait that pace() would not sleep (it retries the job instead) must not hold a slot.
    assert throttle.keywords == {"max_wait_s": 1.0}
