"""Planning: one upcoming occurrence per active schedule, the next planned when one is claimed.

A schedule keeps exactly one occurrence waiting in the due set. When the tick claims it (to
start it, or to mark it missed or failed) or a person cancels it, the next one is planned from
the rule. Past times are skipped, except within the misfire grace: after an outage one
occurrence is marked missed, not one per lost time. Occurrence ids are deterministic, so a
retried planning (a claim whose lease ran out) finds the occurrence there already.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.schedule.model import Occurrence, Schedule, ScheduleState, occurrence_id
from orchestrator.schedule.recurrence import next_start
from orchestrator.schedule.store import ScheduleStore

__all__ = ["make_occurrence", "plan_next"]


def make_occurrence(schedule: Schedule, index: int, start: datetime, now: float) -> Occurrence:
    """The ``index``-th occurrence of ``schedule``, starting at ``start``."""
    ts = start.timestamp()
    return Occurrence(
        id=occurrence_id(schedule.id, index),
        schedule_id=schedule.id,
        index=index,
        slot=ts,
        start=ts,
        end=ts + schedule.duration_s,
        created_at=now,
        updated_at=now,
    )


def plan_next(
    store: ScheduleStore,
    schedule: Schedule,
    *,
    after: float | None,
    index: int,
    now: float,
) -> Occurrence | None:
    """Plan the occurrence after the ``index``-th one (whose rule time was ``after``).

    Marks the schedule finished when its rule has no more times (or ``count`` is reached).

    Returns:
        The occurrence planned (or found planned already), or ``None``.
    """
    if schedule.state != ScheduleState.ACTIVE:
        return None
    nxt = index + 1
    start = None
    if schedule.count is None or nxt <= schedule.count:
        start = next_start(schedule, after=after, not_before=now - schedule.misfire_grace_s)
    if start is None:
        if schedule.planned <= index:
            store.set_state(schedule.id, ScheduleState.FINISHED)
        return None
    occurrence = make_occurrence(schedule, nxt, start, now)
    if store.plan(occurrence) < 0:
        return None
    return occurrence
