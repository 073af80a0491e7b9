"""How long a job may run: what the workers' time limits and the reconciler's patience share."""

from __future__ import annotations

from orchestrator.settings import Settings

__all__ = ["BOOKKEEPING_S", "longest_run_s", "hard_time_limit_s"]

#: Seconds a task spends outside its HTTP call at most (Redis round trips, rate-limit waits).
BOOKKEEPING_S = 5.0


def longest_run_s(settings: Settings) -> float:
    """The longest a task runs: one API call (connect + read timeout) plus bookkeeping."""
    return settings.connect_timeout_s + settings.read_timeout_s + BOOKKEEPING_S


def hard_time_limit_s(settings: Settings) -> int:
    """Celery's hard time limit: a margin above :func:`longest_run_s`."""
    return int(longest_run_s(settings)) + 5
