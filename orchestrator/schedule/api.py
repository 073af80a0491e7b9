"""The producer API of scheduled recordings.

::

    from orchestrator.schedule import Scheduler

    scheduler = Scheduler.from_env()
    schedule = scheduler.add(body, start_at="2025-06-02T10:00:00+08:00", duration_s=3600,
                             weekly="mon@10:00", timezone="Asia/Shanghai")
    scheduler.list()                            # upcoming occurrences, per schedule
    scheduler.reschedule(occurrence_id, start_at="2025-06-02T11:00:00+08:00")
    scheduler.cancel(schedule.id)               # the series (or one occurrence by its id)

Adding stores the schedule and its first occurrence; nothing is queued until a tick of beat
finds it due (:mod:`orchestrator.schedule.dispatch`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.krtc.validation import FieldError, RequestValidationError
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
from orchestrator.schedule.planner import make_occurrence, plan_next
from orchestrator.schedule.recurrence import next_start
from orchestrator.schedule.store import ScheduleStore
from orchestrator.schedule.validation import ScheduleSpec, build_schedule, parse_instant
from orchestrator.settings import Settings, load_settings
from orchestrator.state.ids import new_session_id

__all__ = ["Scheduler", "ScheduleListing", "CancelResult"]


@dataclass(frozen=True)
class ScheduleListing:
    """A schedule with its occurrences (upcoming only, or all)."""

    schedule: Schedule
    occurrences: list[Occurrence]


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did.

    Attributes:
        cancelled: occurrence ids cancelled before they started.
        stopping: occurrence ids that were recording: their stop is due now.
        schedule: the schedule, when a whole series was cancelled.
    """

    cancelled: list[str]
    stopping: list[str]
    schedule: Schedule | None = None


class Scheduler:
    """Add, list, cancel and reschedule scheduled recordings.

    Args:
        settings: the configuration (``REDIS_URL``, ``KRTC_REDIS_PREFIX``).
        store: the schedule store (default: on ``settings.redis_url``).
        clock: unix time (injectable for tests); by default the store's, Redis' own clock.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: ScheduleStore | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        if store is None:
            from orchestrator.state.connection import redis_client

            client = redis_client(settings)
            store = ScheduleStore(client, prefix=settings.redis_prefix, clock=clock)
        self.store = store
        self._clock = store.clock if clock is None else clock

    @classmethod
    def from_env(cls, **overrides: Any) -> Scheduler:
        """A scheduler configured from the environment (``overrides`` win)."""
        return cls(load_settings(**overrides))

    def add(
        self,
        template: Mapping[str, Any],
        *,
        start_at: datetime | str,
        duration_s: float | None = None,
        end_at: datetime | str | None = None,
        cron: str | None = None,
        weekly: WeeklyRule | str | None = None,
        timezone: str | None = None,
        until: datetime | str | None = None,
        count: int | None = None,
        misfire_grace_s: float = DEFAULT_MISFIRE_GRACE_S,
    ) -> Schedule:
        """Validate and store a schedule, with its first occurrence.

        Args:
            template: the start request (wire form; storage named by profile).
            start_at: the first start (one-off) or the earliest one (recurring), with an offset.
            duration_s, end_at: how long each recording lasts; exactly one of them.
            cron: a five-field cron expression, in ``timezone``.
            weekly: a :class:`WeeklyRule` or ``"mon,thu@10:00"``, in ``timezone``.
            timezone: IANA name; required for a recurring schedule.
            until, count: bound a recurring schedule.
            misfire_grace_s: seconds late a start may still be sent; later, it is missed.

        Raises:
            RequestValidationError: every problem, by field; nothing was stored.
            StateUnavailableError: Redis is unreachable.
        """
        now = self._clock()
        spec = ScheduleSpec(
            template=template,
            start_at=start_at,
            duration_s=duration_s,
            end_at=end_at,
            cron=cron,
            weekly=weekly,
            timezone=timezone,
            until=until,
            count=count,
            misfire_grace_s=misfire_grace_s,
        )
        schedule = build_schedule(spec, schedule_id=new_session_id(now), now=now)
        not_before = now if schedule.is_recurring else now - schedule.misfire_grace_s
        first = next_start(schedule, not_before=not_before)
        assert first is not None  # build_schedule checked
        schedule = schedule.model_copy(update={"planned": 1})
        self.store.add(schedule, make_occurrence(schedule, 1, first, now))
        return schedule

    def get(self, schedule_id: str) -> Schedule:
        """The schedule.

        Raises:
            ScheduleNotFoundError: there is no such schedule.
        """
        return self.store.get_or_raise(schedule_id)

    def occurrence(self, occurrence_id: str) -> Occurrence:
        """The occurrence.

        Raises:
            ScheduleNotFoundError: there is no such occurrence.
        """
        return self.store.occurrence_or_raise(occurrence_id)

    def list(self, *, include_past: bool = False) -> builtins.list[ScheduleListing]:
        """Schedules with their upcoming (scheduled or recording) occurrences.

        Args:
            include_past: also past occurrences with their outcome, and schedules that have
                none upcoming (finished or cancelled).
        """
        listings = []
        for schedule in self.store.list():
            found = self.store.occurrences(schedule.id, live_only=not include_past)
            if found or include_past:
                listings.append(ScheduleListing(schedule, found))
        return listings

    def cancel(self, id: str, *, reason: str = "cancelled") -> CancelResult:
        """Cancel a schedule (by schedule id) or one occurrence (by occurrence id).

        A cancelled schedule plans nothing more and its upcoming occurrence is cancelled; a
        recording under way still stops at its planned end. A cancelled occurrence that has not
        started never starts (the series goes on); one that is recording is stopped now.

        Raises:
            ScheduleNotFoundError: no schedule or occurrence has this id.
            ScheduleConflictError: the occurrence is over, or its start is being dispatched.
        """
        schedule = self.store.get(id)
        if schedule is not None:
            self.store.set_state(id, ScheduleState.CANCELLED)
            cancelled = []
            for occurrence in self.store.occurrences(id, live_only=True):
                if occurrence.outcome != Outcome.SCHEDULED:
                    continue
                what, _ = self.store.cancel(occurrence.id, reason=reason)
                if what == "cancelled":
                    cancelled.append(occurrence.id)
            return CancelResult(cancelled, [], self.store.get(id))
        occurrence = self.store.occurrence_or_raise(id)
        what, outcome = self.store.cancel(id, reason=reason)
        if what == "cancelled":
            owner = self.store.get(occurrence.schedule_id)
            if owner is not None:
                plan_next(
                    self.store,
                    owner,
                    after=occurrence.slot,
                    index=occurrence.index,
                    now=self._clock(),
                )
            return CancelResult([id], [])
        if what == "stopping":
            return CancelResult([], [id])
        if what == "missing":
            raise ScheduleNotFoundError("occurrence", id)
        raise ScheduleConflictError(_conflict(id, what, outcome))

    def reschedule(
        self,
        id: str,
        *,
        start_at: datetime | str | None = None,
        duration_s: float | None = None,
        end_at: datetime | str | None = None,
        cron: str | None = None,
        weekly: WeeklyRule | str | None = None,
        timezone: str | None = None,
        until: datetime | str | None = None,
        count: int | None = None,
        misfire_grace_s: float | None = None,
    ) -> Schedule | Occurrence:
        """Move one occurrence (by occurrence id) or change a series (by schedule id).

        An occurrence not started yet gets a new start (and end: ``duration_s``, ``end_at``, or
        its current length); one that is recording gets a new end only. A series gets a new
        definition (what is not given is kept) and its upcoming occurrence is planned anew.

        Raises:
            RequestValidationError: bad values; nothing changed.
            ScheduleNotFoundError: no schedule or occurrence has this id.
            ScheduleConflictError: the occurrence is over, or its start is being dispatched.
        """
        current = self.store.get(id)
        if current is None:
            occurrence = self.store.occurrence_or_raise(id)
            series_only = {
                "cron": cron,
                "weekly": weekly,
                "timezone": timezone,
                "until": until,
                "count": count,
                "misfire_grace_s": misfire_grace_s,
            }
            given = [
                FieldError(k, "applies to a series (a schedule id)")
                for k, v in series_only.items()
                if v is not None
            ]
            if given:
                raise RequestValidationError("reschedule", given)
            return self._move(occurrence, start_at, duration_s, end_at)
        rule = current.rule
        keep_rule = cron is None and weekly is None
        spec = ScheduleSpec(
            template=current.template,
            start_at=start_at if start_at is not None else current.start_at,
            duration_s=(
                duration_s
                if duration_s is not None
                else None
                if end_at is not None
                else current.duration_s
            ),
            end_at=end_at,
            cron=rule.expr if keep_rule and isinstance(rule, CronRule) else cron,
            weekly=rule if keep_rule and isinstance(rule, WeeklyRule) else weekly,
            timezone=timezone or current.timezone,
            until=until if until is not None else current.until,
            count=count if count is not None else current.count,
            misfire_grace_s=(
                misfire_grace_s if misfire_grace_s is not None else current.misfire_grace_s
            ),
        )
        now = self._clock()
        changed = build_schedule(spec, schedule_id=id, now=now)
        changed = changed.model_copy(
            update={
                "created_at": current.created_at,
                "planned": current.planned,
                "updated_at": now,
                "state": ScheduleState.ACTIVE
                if current.state != ScheduleState.CANCELLED
                else current.state,
            }
        )
        if changed.state == ScheduleState.CANCELLED:
            raise ScheduleConflictError(f"schedule {id} is cancelled: add a new one instead")
        for occurrence in self.store.occurrences(id, live_only=True):
            if occurrence.outcome != Outcome.SCHEDULED:
                continue
            what, outcome = self.store.cancel(occurrence.id, reason="rescheduled (series)")
            if what != "cancelled":
                raise ScheduleConflictError(_conflict(occurrence.id, what, outcome))
        self.store.replace(changed)
        plan_next(self.store, changed, after=None, index=changed.planned, now=now)
        return self.store.get_or_raise(id)

    def _move(
        self,
        occurrence: Occurrence,
        start_at: datetime | str | None,
        duration_s: float | None,
        end_at: datetime | str | None,
    ) -> Occurrence:
        errors: list[FieldError] = []
        start = occurrence.start
        if start_at is not None:
            try:
                start = parse_instant(start_at).timestamp()
            except ValueError as exc:
                errors.append(FieldError("start_at", str(exc)))
        end = start + (occurrence.end - occurrence.start)
        if duration_s is not None and end_at is not None:
            errors.append(FieldError("duration_s", "give a duration or an end time, not both"))
        elif duration_s is not None:
            end = start + duration_s
        elif end_at is not None:
            try:
                end = parse_instant(end_at).timestamp()
            except ValueError as exc:
                errors.append(FieldError("end_at", str(exc)))
        if not errors and end <= start:
            errors.append(FieldError("end_at", "must be after the start"))
        if not errors and end <= self._clock():
            errors.append(FieldError("end_at", "is in the past"))
        if errors:
            raise RequestValidationError("reschedule", errors)
        what, outcome = self.store.move(occurrence, start=start, end=end)
        if what == "missing":
            raise ScheduleNotFoundError("occurrence", occurrence.id)
        if what not in ("moved", "ended"):
            raise ScheduleConflictError(_conflict(occurrence.id, what, outcome))
        return self.store.occurrence_or_raise(occurrence.id)


def _conflict(occurrence_id: str, what: str, outcome: Outcome | None) -> str:
    if what == "busy":
        return f"occurrence {occurrence_id} is being dispatched right now; try again in a second"
    state = outcome.value if outcome is not None else "gone"
    return f"occurrence {occurrence_id} is {state}: it can no longer change"
