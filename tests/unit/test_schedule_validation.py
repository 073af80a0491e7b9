"""Validation of schedule requests (orchestrator/schedule/validation.py): nothing bad is stored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.krtc.validation import RequestValidationError
from orchestrator.schedule.model import CronRule, WeeklyRule
from orchestrator.schedule.validation import (
    ScheduleSpec,
    build_schedule,
    parse_instant,
    parse_weekly,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC).timestamp()


def body(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "appId": "app-test",
        "cname": "weekly-review",
        "uid": "1001",
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 30, "streamTypes": 2},
            "recordingFileConfig": {"avFileType": ["hls"]},
            "storageConfig": {"profile": "recordings"},
        },
    }
    request.update(changes)
    return request


def paths(exc: pytest.ExceptionInfo[RequestValidationError]) -> set[str]:
    return {e.path for e in exc.value.errors}


def build(**fields: Any) -> Any:
    fields.setdefault("template", body())
    fields.setdefault("start_at", "2025-06-02T10:00:00+08:00")
    if "end_at" not in fields:
        fields.setdefault("duration_s", 3600)
    return build_schedule(ScheduleSpec(**fields), schedule_id="S1", now=NOW)


def test_a_one_off_keeps_the_template_in_wire_form_with_the_profile_by_name() -> None:
    schedule = build()

    assert schedule.template["clientRequest"]["storageConfig"] == {"profile": "recordings"}
    assert schedule.start_at == datetime(2025, 6, 2, 2, 0, tzinfo=UTC)
    assert (schedule.duration_s, schedule.rule, schedule.timezone) == (3600, None, "UTC")


def test_end_at_gives_the_duration() -> None:
    schedule = build(end_at="2025-06-02T11:30:00+08:00")

    assert schedule.duration_s == 5400


def test_a_weekly_rule_is_parsed_from_days_and_a_time() -> None:
    schedule = build(weekly="Mon,thu@10:00", timezone="Asia/Shanghai", count=4)

    assert schedule.rule == WeeklyRule(days=(0, 3), at="10:00")
    assert schedule.count == 4
    assert build(cron="0 10 * * 1", timezone="Asia/Shanghai").rule == CronRule(expr="0 10 * * 1")


def test_every_problem_is_reported_at_once_and_by_field() -> None:
    with pytest.raises(RequestValidationError) as exc:
        build(
            template=body(cname=""),
            start_at="2025-06-02T10:00:00",
            cron="61 * * * *",
            timezone="Mars/Olympus",
            misfire_grace_s=-1,
        )

    assert {"template.cname", "start_at", "cron", "timezone", "misfire_grace_s"} <= paths(exc)


def test_inline_storage_credentials_are_refused_in_a_template() -> None:
    template = body()
    template["clientRequest"]["storageConfig"] = {
        "vendor": 4, "region": 0, "bucket": "b", "accessKey": "a", "secretKey": "s",
    }  # fmt: skip

    with pytest.raises(RequestValidationError) as exc:
        build(template=template)

    assert paths(exc) == {"template.clientRequest.storageConfig"}


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"duration_s": None}, "duration_s"),
        ({"duration_s": 60, "end_at": "2025-06-02T11:00:00+08:00"}, "duration_s"),
        ({"duration_s": 0}, "duration_s"),
        ({"end_at": "2025-06-02T09:00:00+08:00"}, "end_at"),
        ({"cron": "0 10 * * 1"}, "timezone"),
        ({"cron": "0 10 * * 1", "weekly": "mon@10:00", "timezone": "UTC"}, "cron"),
        ({"weekly": "someday@10:00", "timezone": "UTC"}, "weekly"),
        ({"weekly": "mon@25:00", "timezone": "UTC"}, "weekly"),
        ({"count": 3}, "count"),
        ({"until": "2025-07-01T00:00:00Z"}, "until"),
        ({"start_at": "2025-05-01T10:00:00Z"}, "start_at"),
        ({"cron": "0 0 30 2 *", "timezone": "UTC"}, "start_at"),
        (
            {"cron": "0 10 * * *", "timezone": "UTC", "until": "2025-05-01T00:00:00Z"},
            "until",
        ),
    ],
)
def test_bad_schedules_are_refused(fields: dict[str, Any], path: str) -> None:
    with pytest.raises(RequestValidationError) as exc:
        build(**fields)

    assert path in paths(exc)


def test_a_one_off_may_start_within_its_grace_in_the_past_but_not_before() -> None:
    assert build(start_at=datetime.fromtimestamp(NOW - 30, UTC), misfire_grace_s=60)
    with pytest.raises(RequestValidationError):
        build(start_at=datetime.fromtimestamp(NOW - 90, UTC), misfire_grace_s=60)


def test_instants_need_an_offset() -> None:
    assert parse_instant("2025-06-02T10:00:00Z") == datetime(2025, 6, 2, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_instant("2025-06-02T10:00:00")
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_instant("next monday")


def test_parse_weekly_rejects_a_missing_time() -> None:
    with pytest.raises(ValueError, match="DAYS@HH:MM"):
        parse_weekly("mon")
