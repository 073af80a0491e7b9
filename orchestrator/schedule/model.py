"""What a schedule is: a start request to send at planned times, and each time's outcome.

A :class:`Schedule` holds a start request template (wire form, validated when the schedule is
added), the first start time, how long each recording lasts, and optionally a recurrence: a cron
expression or a weekly rule, evaluated in the schedule's timezone, bounded by ``until`` and/or
``count``. Each planned time is an :class:`Occurrence`, with an outcome::

    scheduled ──> started ──> completed
        │            └──────> (stays started while its stop is retried)
        ├──> cancelled
        ├──> missed    (nothing ran within the misfire grace)
        └──> failed    (the start could not be queued: e.g. the channel is already recording)

Occurrence ids are ``{schedule id}-{n}``, ``n`` being the rule's n-th time (1-based), so that
planning the same time twice names the same occurrence.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DEFAULT_MISFIRE_GRACE_S",
    "WEEKDAYS",
    "Outcome",
    "ScheduleState",
    "CronRule",
    "WeeklyRule",
    "Rule",
    "Schedule",
    "Occurrence",
    "occurrence_id",
]

#: Seconds after its planned start that an occurrence may still start (an outage, a late tick).
DEFAULT_MISFIRE_GRACE_S = 300
#: Weekday names as the weekly rule takes them, Monday first (``datetime.weekday()`` order).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Outcome(StrEnum):
    """What became of an occurrence."""

    #: Planned; its start is not due yet (or is being dispatched).
    SCHEDULED = "scheduled"
    #: Its session was created and its start queued; the stop is planned at its end.
    STARTED = "started"
    #: Its stop was requested at its end (or when it was cancelled while recording).
    COMPLETED = "completed"
    #: Cancelled before it started.
    CANCELLED = "cancelled"
    #: Not started within its misfire grace; alerted, never started late.
    MISSED = "missed"
    #: The start could not be queued (the channel is recording already, or Redis refused it).
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        """True once nothing more happens to the occurrence."""
        return self not in (Outcome.SCHEDULED, Outcome.STARTED)


class ScheduleState(StrEnum):
    """Whether a schedule still plans occurrences."""

    ACTIVE = "active"
    #: Cancelled: nothing new is planned (a recording under way still stops at its end).
    CANCELLED = "cancelled"
    #: Its rule has no more times (a one-off that ran, ``until`` or ``count`` reached).
    FINISHED = "finished"


class CronRule(BaseModel):
    """A standard five-field cron expression, evaluated in the schedule's timezone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["cron"] = "cron"
    expr: str


class WeeklyRule(BaseModel):
    """Given weekdays at one local time of day.

    Attributes:
        days: weekday numbers, 0 for Monday (see :data:`WEEKDAYS`).
        at: the local time of day, ``HH:MM``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["weekly"] = "weekly"
    days: tuple[int, ...]
    at: str


Rule = Annotated[CronRule | WeeklyRule, Field(discriminator="kind")]


class Schedule(BaseModel):
    """A recording to start at planned times.

    Attributes:
        id: the schedule's id.
        template: the start request, in wire form (storage named by profile; no secret).
        start_at: the first start (one-off), or the earliest start (recurring), tz-aware.
        duration_s: how long each recording lasts, in seconds.
        timezone: IANA name; recurrences are evaluated in it (wall-clock times across DST).
        rule: the recurrence; ``None`` for a one-off.
        until: no occurrence starts after this time.
        count: at most this many occurrences (the rule's first ``count`` times).
        misfire_grace_s: seconds after the planned start that a start may still be sent.
        state: active, cancelled or finished.
        planned: the index of the last occurrence planned (0: none yet).
        created_at, updated_at: unix seconds.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    template: dict[str, Any]
    start_at: datetime
    duration_s: int = Field(gt=0)
    timezone: str = "UTC"
    rule: Rule | None = None
    until: datetime | None = None
    count: int | None = Field(default=None, gt=0)
    misfire_grace_s: int = Field(default=DEFAULT_MISFIRE_GRACE_S, ge=0)
    state: ScheduleState = ScheduleState.ACTIVE
    planned: int = 0
    created_at: float
    updated_at: float

    @property
    def is_recurring(self) -> bool:
        """True when the schedule has a recurrence rule."""
        return self.rule is not None


class Occurrence(BaseModel):
    """One planned recording of a schedule.

    Attributes:
        id: ``{schedule id}-{index}``.
        schedule_id: its schedule.
        index: the rule's n-th time (1-based).
        slot: the rule's time for it, unix seconds (stays when the occurrence is rescheduled).
        start: the planned start, unix seconds.
        end: the planned end, unix seconds.
        outcome: what became of it.
        session_id: the session it started, once started.
        reason: why it was missed, failed or cancelled.
        dispatched_at: when its start was queued, unix seconds.
        stopped_at: when its stop was requested, unix seconds.
        created_at, updated_at: unix seconds.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    schedule_id: str
    index: int
    slot: float
    start: float
    end: float
    outcome: Outcome = Outcome.SCHEDULED
    session_id: str | None = None
    reason: str | None = None
    dispatched_at: float | None = None
    stopped_at: float | None = None
    created_at: float
    updated_at: float

    @property
    def start_lag_s(self) -> float | None:
        """Seconds from the planned start to the start being queued, once it was."""
        return None if self.dispatched_at is None else self.dispatched_at - self.start

    @property
    def stop_lag_s(self) -> float | None:
        """Seconds from the planned end to the stop being requested, once it was."""
        return None if self.stopped_at is None else self.stopped_at - self.end


def occurrence_id(schedule_id: str, index: int) -> str:
    """The id of a schedule's ``index``-th occurrence."""
    return f"{schedule_id}-{index}"
