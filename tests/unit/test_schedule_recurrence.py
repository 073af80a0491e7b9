"""Recurrence of schedules (orchestrator/schedule/recurrence.py): rule times in a timezone, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.schedule.model import CronRule, Rule, Schedule, WeeklyRule
from orchestrator.schedule.recurrence import next_start, upcoming, wall_to_instant

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


def make(
    start_at: datetime,
    rule: Rule | None = None,
    *,
    tz: str = "UTC",
    until: datetime | None = None,
    count: int | None = None,
) -> Schedule:
    return Schedule(
        id="S",
        template={},
        start_at=start_at,
        duration_s=3600,
        timezone=tz,
        rule=rule,
        until=until,
        count=count,
        created_at=0.0,
        updated_at=0.0,
    )


def local(times: list[datetime], tz: ZoneInfo) -> list[str]:
    return [t.astimezone(tz).isoformat() for t in times]


def test_weekly_monday_10_shanghai_gives_mondays_at_10_local() -> None:
    schedule = make(
        datetime(2025, 6, 4, tzinfo=SHANGHAI),  # a Wednesday
        WeeklyRule(days=(0,), at="10:00"),
        tz="Asia/Shanghai",
    )

    times = upcoming(schedule, after=None, limit=3)

    assert local(times, SHANGHAI) == [
        "2025-06-09T10:00:00+08:00",
        "2025-06-16T10:00:00+08:00",
        "2025-06-23T10:00:00+08:00",
    ]
    assert times[0] == datetime(2025, 6, 9, 2, 0, tzinfo=UTC)


def test_cron_and_weekly_rules_agree_on_the_same_meeting() -> None:
    start = datetime(2025, 6, 1, tzinfo=SHANGHAI)
    cron = make(start, CronRule(expr="0 10 * * 1,4"), tz="Asia/Shanghai")
    weekly = make(start, WeeklyRule(days=(0, 3), at="10:00"), tz="Asia/Shanghai")

    assert upcoming(cron, after=None, limit=6) == upcoming(weekly, after=None, limit=6)


@pytest.mark.parametrize(
    "rule", [CronRule(expr="30 2 * * *"), WeeklyRule(days=tuple(range(7)), at="02:30")]
)
def test_daily_0230_new_york_across_spring_forward_runs_once_a_day_shifted_by_the_gap(
    rule: Rule,
) -> None:
    # 2025-03-09 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
    schedule = make(datetime(2025, 3, 8, tzinfo=NEW_YORK), rule, tz="America/New_York")

    times = upcoming(schedule, after=None, limit=3)

    assert local(times, NEW_YORK) == [
        "2025-03-08T02:30:00-05:00",
        "2025-03-09T03:30:00-04:00",
        "2025-03-10T02:30:00-04:00",
    ]
    assert times[1] - times[0] == timedelta(hours=24)
    assert times[2] - times[1] == timedelta(hours=23)


@pytest.mark.parametrize(
    "rule", [CronRule(expr="30 1 * * *"), WeeklyRule(days=tuple(range(7)), at="01:30")]
)
def test_daily_0130_new_york_across_fall_back_runs_once_at_the_first_0130(rule: Rule) -> None:
    # 2025-11-02 02:00 EDT falls back to 01:00 EST: 01:30 happens twice that day.
    schedule = make(datetime(2025, 11, 1, tzinfo=NEW_YORK), rule, tz="America/New_York")

    times = upcoming(schedule, after=None, limit=3)

    assert local(times, NEW_YORK) == [
        "2025-11-01T01:30:00-04:00",
        "2025-11-02T01:30:00-04:00",
        "2025-11-03T01:30:00-05:00",
    ]
    assert times[2] - times[1] == timedelta(hours=25)


def test_daily_0230_new_york_on_the_fall_back_day_is_a_plain_day() -> None:
    start = datetime(2025, 11, 1, tzinfo=NEW_YORK)
    schedule = make(start, CronRule(expr="30 2 * * *"), tz="America/New_York")

    assert local(upcoming(schedule, after=None, limit=3), NEW_YORK) == [
        "2025-11-01T02:30:00-04:00",
        "2025-11-02T02:30:00-05:00",
        "2025-11-03T02:30:00-05:00",
    ]


def test_half_hourly_cron_across_spring_forward_never_gives_one_instant_twice() -> None:
    start = datetime(2025, 3, 9, 1, 0, tzinfo=NEW_YORK)
    schedule = make(start, CronRule(expr="*/30 * * * *"), tz="America/New_York")

    times = upcoming(schedule, after=None, limit=5)

    assert local(times, NEW_YORK) == [
        "2025-03-09T01:00:00-05:00",
        "2025-03-09T01:30:00-05:00",
        "2025-03-09T03:00:00-04:00",
        "2025-03-09T03:30:00-04:00",
        "2025-03-09T04:00:00-04:00",
    ]
    assert len(set(times)) == len(times)


def test_half_hourly_cron_across_fall_back_skips_the_repeated_hour() -> None:
    start = datetime(2025, 11, 2, 0, 30, tzinfo=NEW_YORK)
    schedule = make(start, CronRule(expr="*/30 * * * *"), tz="America/New_York")

    times = upcoming(schedule, after=None, limit=5)

    assert local(times, NEW_YORK) == [
        "2025-11-02T00:30:00-04:00",
        "2025-11-02T01:00:00-04:00",
        "2025-11-02T01:30:00-04:00",
        "2025-11-02T02:00:00-05:00",
        "2025-11-02T02:30:00-05:00",
    ]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))


def test_wall_to_instant_policy_for_skipped_and_repeated_times() -> None:
    skipped = wall_to_instant(datetime(2025, 3, 9, 2, 30), NEW_YORK)
    repeated = wall_to_instant(datetime(2025, 11, 2, 1, 30), NEW_YORK)

    assert skipped == datetime(2025, 3, 9, 7, 30, tzinfo=UTC)  # 03:30 EDT
    assert repeated == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)  # the first 01:30, EDT


def test_the_start_time_itself_is_the_first_time_when_the_rule_matches_it() -> None:
    start = datetime(2025, 6, 9, 10, 0, tzinfo=SHANGHAI)
    schedule = make(start, WeeklyRule(days=(0,), at="10:00"), tz="Asia/Shanghai")

    assert next_start(schedule) == start


def test_until_bounds_the_rule() -> None:
    schedule = make(
        datetime(2025, 6, 1, tzinfo=UTC),
        CronRule(expr="0 12 * * *"),
        until=datetime(2025, 6, 3, 12, 0, tzinfo=UTC),
    )

    assert [t.day for t in upcoming(schedule, after=None, limit=10)] == [1, 2, 3]


def test_not_before_skips_past_times_and_after_is_exclusive() -> None:
    schedule = make(datetime(2025, 6, 1, tzinfo=UTC), CronRule(expr="0 12 * * *"))
    june_5_noon = datetime(2025, 6, 5, 12, tzinfo=UTC).timestamp()

    assert next_start(schedule, not_before=june_5_noon) == datetime(2025, 6, 5, 12, tzinfo=UTC)
    assert next_start(schedule, after=june_5_noon) == datetime(2025, 6, 6, 12, tzinfo=UTC)
    later = next_start(schedule, not_before=june_5_noon + 1)
    assert later == datetime(2025, 6, 6, 12, tzinfo=UTC)


def test_a_one_off_has_one_time() -> None:
    start = datetime(2025, 6, 1, 9, tzinfo=UTC)
    schedule = make(start)

    assert next_start(schedule) == start
    assert next_start(schedule, after=start.timestamp()) is None
    assert next_start(schedule, not_before=start.timestamp() + 1) is None


def test_a_rule_that_never_matches_again_has_no_next_time() -> None:
    schedule = make(datetime(2025, 6, 1, tzinfo=UTC), CronRule(expr="0 0 30 2 *"))

    assert next_start(schedule) is None
