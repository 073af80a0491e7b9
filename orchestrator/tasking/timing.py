"""How long a job may run: what the workers' time limits and the reconciler's patience share."""

from __future__ import annotations

from orchestrator.settings import Settings
from orchestrator.state.connection import RedisOptions

__all__ = [
    "BOOKKEEPING_S",
    "BATCH_MARGIN_S",
    "redis_wait_s",
    "longest_run_s",
    "soft_time_limit_s",
    "hard_time_limit_s",
    "batch_budget_s",
]

#: Seconds a task spends outside its HTTP call at most (Redis round trips, rate-limit waits).
BOOKKEEPING_S = 5.0
#: Seconds a reconcile batch keeps free before its soft time limit, for the Redis writes of the
#: sessions still in flight at its deadline and its report to the round.
BATCH_MARGIN_S = 2.0


def redis_wait_s(settings: Settings) -> float:
    """The longest one Redis command (or a read with its retries) waits before it fails."""
    return RedisOptions.from_settings(settings).longest_wait_s


def longest_run_s(settings: Settings) -> float:
    """The longest a task runs: one API call (connect + read timeout) plus bookkeeping.

    Bookkeeping is :data:`BOOKKEEPING_S`, or the longest Redis wait if that is longer: a job
    whose Redis fails ends at that failure, so one wait is what a dead Redis adds.
    """
    bookkeeping = max(BOOKKEEPING_S, redis_wait_s(settings))
    return settings.connect_timeout_s + settings.read_timeout_s + bookkeeping


def soft_time_limit_s(settings: Settings) -> int:
    """Celery's soft time limit: just above :func:`longest_run_s`."""
    return int(longest_run_s(settings)) + 1


def hard_time_limit_s(settings: Settings) -> int:
    """Celery's hard time limit: a margin above :func:`longest_run_s`."""
    return int(longest_run_s(settings)) + 5


def batch_budget_s(settings: Settings) -> float:
    """Seconds after its start at which a reconcile batch begins no more sessions.

    A session begun just before then still ends before the soft time limit: its query takes
    at most the connect plus read timeout, and :data:`BATCH_MARGIN_S` is left for its Redis
    writes and the batch's report. With the default timeouts: 19 - 13.05 - 2 = 3.95 s.
    """
    query_s = settings.connect_timeout_s + settings.read_timeout_s
    return max(0.0, soft_time_limit_s(settings) - query_s - BATCH_MARGIN_S)
