"""Scheduled recordings: one-off and recurring, started and stopped on time, exactly once.

Schedules and their occurrences live in Redis (never in Celery ETAs); a beat tick claims due
starts and stops atomically and carries them out (see :mod:`orchestrator.schedule.dispatch`).
"""

from orchestrator.schedule.api import CancelResult, ScheduleListing, Scheduler
from orchestrator.schedule.dispatch import Dispatcher, TickReport, idempotency_key
from orchestrator.schedule.errors import ScheduleConflictError, ScheduleNotFoundError
from orchestrator.schedule.model import (
    DEFAULT_MISFIRE_GRACE_S,
    CronRule,
    Occurrence,
    Outcome,
    Schedule,
    ScheduleState,
    WeeklyRule,
)
from orchestrator.schedule.store import ScheduleStore

__all__ = [
    "DEFAULT_MISFIRE_GRACE_S",
    "CancelResult",
    "CronRule",
    "Dispatcher",
    "Occurrence",
    "Outcome",
    "Schedule",
    "ScheduleConflictError",
    "ScheduleListing",
    "ScheduleNotFoundError",
    "ScheduleState",
    "ScheduleStore",
    "Scheduler",
    "TickReport",
    "WeeklyRule",
    "idempotency_key",
]
