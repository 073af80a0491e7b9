"""``krtc-rec schedule``: add, list, cancel and reschedule against the real Redis."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import main
from tests.integration.schedule_fixture import template


@pytest.fixture
def run(redis_url: str, key_prefix: str) -> Any:
    runner = CliRunner()
    env = {"REDIS_URL": redis_url, "KRTC_REDIS_PREFIX": key_prefix}

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, ["schedule", *args], input=stdin, env=env)

    return invoke


BODY = json.dumps(template("cli-room"))


def test_add_from_stdin_prints_the_schedule_and_its_first_occurrence_in_local_time(
    run: Any,
) -> None:
    result = run(
        "add", "--file", "-", "--start-at", "2030-06-03T09:00:00+08:00", "--duration", "3600",
        "--weekly", "mon,thu@10:00", "--timezone", "Asia/Shanghai", "--json", stdin=BODY,
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    assert added["rule"] == {"kind": "weekly", "days": [0, 3], "at": "10:00"}
    [first] = added["occurrences"]
    assert first["start_local"] == "2030-06-03T10:00:00+08:00"
    assert first["end_local"] == "2030-06-03T11:00:00+08:00"
    assert first["outcome"] == "scheduled"
    listed = json.loads(run("list", "--json").stdout)
    assert [s["id"] for s in listed] == [added["id"]]


def test_add_with_bad_input_names_every_field_exits_2_and_stores_nothing(run: Any) -> None:
    bad = json.dumps(template(""))

    result = run(
        "add", "--file", "-", "--start-at", "2030-06-03T09:00:00", "--end-at",
        "2030-06-03T10:00:00+08:00", "--cron", "0 10 * * 1", stdin=bad,
    )  # fmt: skip

    assert result.exit_code == 2
    for field in ("template.cname", "start_at", "timezone"):
        assert field in result.stderr
    assert json.loads(run("list", "--all", "--json").stdout) == []


def test_add_needs_a_start_time_and_a_json_template(run: Any) -> None:
    assert run("add", "--file", "-", "--duration", "60", stdin=BODY).exit_code == 2
    result = run(
        "add", "--file", "-", "--start-at", "2030-06-03T09:00:00Z", "--duration", "60",
        stdin="not json",
    )  # fmt: skip
    assert result.exit_code == 2 and "template: is not JSON" in result.stderr


def test_cancel_then_list_all_shows_the_outcome_and_unknown_ids_exit_4(run: Any) -> None:
    added = json.loads(
        run(
            "add", "--file", "-", "--start-at", "2030-06-03T09:00:00Z", "--duration", "60",
            "--json", stdin=BODY,
        ).stdout
    )  # fmt: skip
    occurrence_id = added["occurrences"][0]["id"]

    result = run("cancel", occurrence_id)

    assert result.exit_code == 0 and f"{occurrence_id}  cancelled" in result.stdout
    assert run("list").stdout == ""
    [listing] = json.loads(run("list", "--all", "--json").stdout)
    assert [o["outcome"] for o in listing["occurrences"]] == ["cancelled"]
    assert run("cancel", occurrence_id).exit_code == 5, "already cancelled"
    assert run("cancel", "no-such-id").exit_code == 4


def test_reschedule_an_occurrence_and_a_series(run: Any) -> None:
    added = json.loads(
        run(
            "add", "--file", "-", "--start-at", "2030-06-03T09:00:00Z", "--duration", "600",
            "--cron", "0 9 * * *", "--timezone", "Europe/Paris", "--json", stdin=BODY,
        ).stdout
    )  # fmt: skip
    occurrence_id = added["occurrences"][0]["id"]

    moved = run("reschedule", occurrence_id, "--start-at", "2030-06-03T12:00:00Z", "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["start_local"] == "2030-06-03T14:00:00+02:00"
    assert run("reschedule", occurrence_id, "--cron", "0 8 * * *").exit_code == 2

    series = run("reschedule", added["id"], "--cron", "30 8 * * *", "--json")
    assert series.exit_code == 0, series.output
    [upcoming] = json.loads(series.stdout)["occurrences"]
    assert upcoming["start_local"] == "2030-06-04T08:30:00+02:00"
