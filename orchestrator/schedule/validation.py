"""Checking a schedule request before anything is stored; every problem is a field error.

:func:`build_schedule` validates the start request template (:func:`validated_start_body`), the
times, the end, the recurrence and the timezone together, and raises one
:class:`RequestValidationError` listing every problem found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.krtc.validation import FieldError, RequestValidationError
from orchestrator.producer import validated_start_body
from orchestrator.schedule.model import (
    DEFAULT_MISFIRE_GRACE_S,
    WEEKDAYS,
    CronRule,
    Rule,
    Schedule,
    WeeklyRule,
)
from orchestrator.schedule.recurrence import is_valid_cron, next_start, parse_time_of_day, zone

__all__ = ["ScheduleSpec", "parse_instant", "parse_weekly", "build_schedule"]

_SUBJECT = "schedule"


@dataclass(frozen=True)
class ScheduleSpec:
    """A schedule as asked for, before validation (the arguments of ``Scheduler.add``)."""

    template: Mapping[str, Any]
    start_at: datetime | str
    duration_s: float | None = None
    end_at: datetime | str | None = None
    cron: str | None = None
    weekly: WeeklyRule | str | None = None
    timezone: str | None = None
    until: datetime | str | None = None
    count: int | None = None
    misfire_grace_s: float = DEFAULT_MISFIRE_GRACE_S


def parse_instant(value: datetime | str) -> datetime:
    """A timezone-aware datetime from a datetime or an ISO 8601 string.

    Raises:
        ValueError: not ISO 8601, or without a UTC offset (``Z`` counts as one).
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an ISO 8601 date and time") from exc
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{value.isoformat()} has no UTC offset: give one (e.g. +08:00 or Z), so the time "
            "is not read in the server's timezone"
        )
    return value


def parse_weekly(value: str) -> WeeklyRule:
    """``"mon,wed@10:00"``: weekdays (``mon``..``sun``) and a local time of day.

    Raises:
        ValueError: another shape, an unknown day, or a bad time.
    """
    days_part, sep, at = value.partition("@")
    if not sep:
        raise ValueError(f"{value!r}: give DAYS@HH:MM, e.g. mon,thu@10:00")
    days = []
    for name in days_part.split(","):
        name = name.strip().lower()[:3]
        if name not in WEEKDAYS:
            raise ValueError(f"{value!r}: unknown weekday {name!r} (use {', '.join(WEEKDAYS)})")
        days.append(WEEKDAYS.index(name))
    parse_time_of_day(at.strip())
    return WeeklyRule(days=tuple(sorted(set(days))), at=at.strip())


def _rule(spec: ScheduleSpec, errors: list[FieldError]) -> Rule | None:
    if spec.cron is not None and spec.weekly is not None:
        errors.append(FieldError("cron", "give a cron expression or a weekly rule, not both"))
        return None
    if spec.cron is not None:
        if not is_valid_cron(spec.cron):
            errors.append(FieldError("cron", f"{spec.cron!r} is not a five-field cron expression"))
            return None
        return CronRule(expr=spec.cron)
    if spec.weekly is None:
        return None
    try:
        rule = parse_weekly(spec.weekly) if isinstance(spec.weekly, str) else spec.weekly
        if not rule.days or any(d not in range(7) for d in rule.days):
            raise ValueError("days must be weekday numbers 0 (Monday) to 6, at least one")
        parse_time_of_day(rule.at)
    except ValueError as exc:
        errors.append(FieldError("weekly", str(exc)))
        return None
    return rule


def _instant(name: str, value: datetime | str | None, errors: list[FieldError]) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        errors.append(FieldError(name, str(exc)))
        return None


def _template(template: Mapping[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    try:
        return validated_start_body(template)
    except RequestValidationError as exc:
        errors.extend(FieldError(f"template.{e.path}", e.message) for e in exc.errors)
        return {}


def _check(errors: Iterable[FieldError]) -> None:
    found = list(errors)
    if found:
        raise RequestValidationError(_SUBJECT, found)


def build_schedule(spec: ScheduleSpec, *, schedule_id: str, now: float) -> Schedule:
    """The schedule ``spec`` asks for, validated.

    A recurring schedule needs a timezone (its rule is read in it) and a time after ``now``; a
    one-off may start at most its misfire grace in the past. With ``end_at``, each occurrence
    lasts ``end_at - start_at``.

    Raises:
        RequestValidationError: every problem, by field (``template.*`` for the start request).
    """
    errors: list[FieldError] = []
    body = _template(spec.template, errors)
    start_at = _instant("start_at", spec.start_at, errors)
    end_at = _instant("end_at", spec.end_at, errors)
    until = _instant("until", spec.until, errors)
    rule = _rule(spec, errors)
    recurring = spec.cron is not None or spec.weekly is not None
    tz_name = spec.timezone
    if tz_name is not None:
        try:
            zone(tz_name)
        except ValueError as exc:
            errors.append(FieldError("timezone", str(exc)))
    elif recurring:
        errors.append(
            FieldError(
                "timezone",
                "a recurring schedule needs a timezone (an IANA name such as Asia/Shanghai): "
                "its times are local wall-clock times, kept across DST changes",
            )
        )
    if (spec.duration_s is None) == (spec.end_at is None):
        errors.append(FieldError("duration_s", "give either a duration or an end time"))
    duration: float | None = spec.duration_s
    if spec.duration_s is not None and spec.duration_s < 1:
        errors.append(FieldError("duration_s", "must be at least 1 second"))
    if end_at is not None and start_at is not None:
        duration = (end_at - start_at).total_seconds()
        if duration < 1:
            errors.append(FieldError("end_at", "must be after start_at"))
    if spec.misfire_grace_s < 0:
        errors.append(FieldError("misfire_grace_s", "must not be negative"))
    if not recurring:
        for name, value in (("until", spec.until), ("count", spec.count)):
            if value is not None:
                errors.append(FieldError(name, "applies to a recurring schedule only"))
    if spec.count is not None and spec.count < 1:
        errors.append(FieldError("count", "must be at least 1"))
    if until is not None and start_at is not None and until < start_at:
        errors.append(FieldError("until", "must not be before start_at"))
    _check(errors)
    assert start_at is not None and duration is not None
    schedule = Schedule(
        id=schedule_id,
        template=body,
        start_at=start_at,
        duration_s=int(round(duration)),
        timezone=tz_name or "UTC",
        rule=rule,
        until=until.astimezone(UTC) if until is not None else None,
        count=spec.count,
        misfire_grace_s=int(spec.misfire_grace_s),
        created_at=now,
        updated_at=now,
    )
    not_before = now if recurring else now - schedule.misfire_grace_s
    if next_start(schedule, not_before=not_before) is None:
        what = "its rule has no time left after now" if recurring else "start_at is in the past"
        _check([FieldError("start_at", f"nothing to schedule: {what}")])
    return schedule
