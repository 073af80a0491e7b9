"""Time limits, the Redis wait inside them, and the reconcile batch's budget."""

from __future__ import annotations

from orchestrator.settings import Settings
from orchestrator.tasking.timing import (
    BATCH_MARGIN_S,
    batch_budget_s,
    hard_time_limit_s,
    longest_run_s,
    redis_wait_s,
    soft_time_limit_s,
)


def test_the_default_redis_wait_fits_the_bookkeeping_and_keeps_the_limits() -> None:
    settings = Settings()

    assert redis_wait_s(settings) <= 5.0
    assert (soft_time_limit_s(settings), hard_time_limit_s(settings)) == (19, 23)


def test_longer_redis_timeouts_raise_the_time_limits() -> None:
    settings = Settings(redis_connect_timeout_s=5.0, redis_socket_timeout_s=10.0)

    assert redis_wait_s(settings) == 16.0
    assert longest_run_s(settings) == settings.connect_timeout_s + settings.read_timeout_s + 16.0
    assert settings.redis_socket_timeout_s < soft_time_limit_s(settings)


def test_a_batch_session_begun_at_the_deadline_ends_before_the_soft_limit() -> None:
    for settings in (Settings(), Settings(connect_timeout_s=1.0, read_timeout_s=2.0)):
        budget = batch_budget_s(settings)
        query_s = settings.connect_timeout_s + settings.read_timeout_s

        assert budget > 3.0
        assert budget + query_s + BATCH_MARGIN_S <= soft_time_limit_s(settings)
