"""When a schedule's recordings start: its rule's times, in its timezone, correct across DST.

Rules give local wall-clock times ("Mondays 10:00 Asia/Shanghai"); each is turned into an instant
with :mod:`zoneinfo`, by one policy for the two DST edge cases:

- a wall time that does not exist (the hour skipped when clocks spring forward) moves forward
  by the gap: a daily 02:30 in America/New_York starts at 03:30 EDT on that day;
- a wall time that happens twice (the hour repeated when clocks fall back) starts once, at the
  first of the two (daylight time).

So a daily meeting happens exactly once every local day, and never twice in a row at one instant
(a cron expression that also matches the shifted time gives that instant once).

Cron expressions are parsed and iterated over naive wall-clock times by ``croniter``; this module
applies the timezone, so the library's own handling of DST is never relied on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter  # type: ignore[import-untyped]

from orchestrator.schedule.model import CronRule, Rule, Schedule, WeeklyRule

__all__ = [
    "MAX_STEPS",
    "zone",
    "wall_to_instant",
    "is_valid_cron",
    "parse_time_of_day",
    "next_start",
    "upcoming",
]

#: Rule times looked at before giving up on finding the next one (a rule that never matches
#: after a point, such as ``0 0 30 2 *``).
MAX_STEPS = 10_000


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``.

    Raises:
        ValueError: there is no such timezone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r} (an IANA name such as Asia/Shanghai)") from exc


def wall_to_instant(wall: datetime, tz: tzinfo) -> datetime:
    """The instant of a naive local wall time in ``tz`` (see the module's DST policy)."""
    # fold=0 reads a repeated time as its first instant and a skipped time with the offset in
    # force before the gap, which lands the same length of time after the gap.
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def is_valid_cron(expr: str) -> bool:
    """Whether ``expr`` is a five-field cron expression."""
    return len(expr.split()) == 5 and bool(croniter.is_valid(expr))


def parse_time_of_day(value: str) -> time:
    """``HH:MM`` as a time.

    Raises:
        ValueError: not a time of day.
    """
    try:
        parsed = time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a time of day (HH:MM)") from exc
    if parsed.tzinfo is not None or parsed.second or parsed.microsecond:
        raise ValueError(f"{value!r}: give a local time of day as HH:MM, without an offset")
    return parsed


def _cron_times(rule: CronRule, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    wall = after.astimezone(tz).replace(tzinfo=None)
    # Iterate naive wall times and place each in the zone ourselves.
    it = croniter(rule.expr, wall - timedelta(minutes=1))
    for _ in range(MAX_STEPS):
        try:
            wall = it.get_next(datetime)
        except CroniterBadDateError:
            return  # the expression matches no date any more (e.g. Feb 30)
        yield wall_to_instant(wall, tz)


def _weekly_times(rule: WeeklyRule, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    at = parse_time_of_day(rule.at)
    day: date = after.astimezone(tz).date() - timedelta(days=1)
    for _ in range(MAX_STEPS):
        if day.weekday() in rule.days:
            yield wall_to_instant(datetime.combine(day, at), tz)
        day += timedelta(days=1)


def _rule_times(rule: Rule, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    if isinstance(rule, CronRule):
        return _cron_times(rule, tz, after)
    return _weekly_times(rule, tz, after)


def next_start(
    schedule: Schedule, *, after: float | None = None, not_before: float | None = None
) -> datetime | None:
    """The schedule's next start time (UTC), or ``None`` when it has no more.

    Args:
        schedule: the schedule.
        after: only a time strictly after this one (unix seconds): the last planned time.
        not_before: only a time at or after this one (unix seconds): times in the past are
            skipped (after an outage, or when a recurring schedule is added).

    Returns:
        For a one-off, ``start_at`` unless ``after`` or ``not_before`` excludes it; for a
        recurring schedule, the first rule time at or after ``start_at`` that satisfies both
        bounds and is not after ``until``.
    """
    first = schedule.start_at.timestamp()
    floor = max(first, not_before if not_before is not None else first)
    if schedule.rule is None:
        if (after is not None and first <= after) or first < floor:
            return None
        return schedule.start_at.astimezone(UTC)
    until = schedule.until.timestamp() if schedule.until is not None else None
    origin = max(floor, after if after is not None else floor)
    for candidate in _rule_times(
        schedule.rule, zone(schedule.timezone), datetime.fromtimestamp(origin, UTC)
    ):
        ts = candidate.timestamp()
        if until is not None and ts > until:
            return None
        if ts >= floor and (after is None or ts > after):
            return candidate
    return None


def upcoming(schedule: Schedule, *, after: float | None, limit: int) -> list[datetime]:
    """Up to ``limit`` next start times after ``after`` (a preview; ``count`` not applied)."""
    found: list[datetime] = []
    last = after
    while len(found) < limit:
        nxt = next_start(schedule, after=last)
        if nxt is None:
            break
        found.append(nxt)
        last = nxt.timestamp()
    return found
