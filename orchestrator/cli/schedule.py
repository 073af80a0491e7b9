"""``krtc-rec schedule``: add, list, cancel and reschedule scheduled recordings."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import IO, Any, NoReturn

import click

from orchestrator.cli.output import EXIT_NOT_FOUND, echo_json, fail
from orchestrator.errors import OrchestratorError
from orchestrator.krtc.validation import FieldError, RequestValidationError

__all__ = ["schedule"]

_EXIT_HELP = (
    "Exit codes: 0 success; 2 invalid input or configuration (nothing stored); 4 no such "
    "schedule or occurrence; 5 the occurrence cannot change now (over, or being dispatched); "
    "6 Redis unreachable."
)


def _scheduler() -> Any:
    from orchestrator.schedule import Scheduler
    from orchestrator.settings import load_settings

    return Scheduler(load_settings())


def _fail(error: OrchestratorError) -> NoReturn:
    from orchestrator.schedule import ScheduleNotFoundError

    if isinstance(error, ScheduleNotFoundError):
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_NOT_FOUND)
    fail(error)


def _read_template(source: IO[str]) -> dict[str, Any]:
    raw = source.read()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        hint = "give the start request JSON with --file PATH or on stdin"
        problem = "is empty" if not raw.strip() else f"is not JSON ({exc})"
        raise RequestValidationError(
            "schedule", [FieldError("template", f"{problem}: {hint}")]
        ) from None
    if not isinstance(data, dict):
        raise RequestValidationError("schedule", [FieldError("template", "must be an object")])
    return data


def _when(ts: float | None, tz: str) -> str:
    if ts is None:
        return "-"
    from orchestrator.schedule.recurrence import zone

    return datetime.fromtimestamp(ts, UTC).astimezone(zone(tz)).isoformat(timespec="seconds")


def _occurrence_json(occurrence: Any, tz: str) -> dict[str, Any]:
    data: dict[str, Any] = occurrence.model_dump(mode="json")
    data["start_local"] = _when(occurrence.start, tz)
    data["end_local"] = _when(occurrence.end, tz)
    return data


def _schedule_json(schedule: Any, occurrences: list[Any]) -> dict[str, Any]:
    data: dict[str, Any] = schedule.model_dump(mode="json")
    data["occurrences"] = [_occurrence_json(o, schedule.timezone) for o in occurrences]
    return data


def _rule_text(schedule: Any) -> str:
    rule = schedule.rule
    if rule is None:
        return "once"
    if rule.kind == "cron":
        return f"cron {rule.expr!r} {schedule.timezone}"
    from orchestrator.schedule.model import WEEKDAYS

    days = ",".join(WEEKDAYS[d] for d in rule.days)
    return f"weekly {days}@{rule.at} {schedule.timezone}"


def _print_schedule(schedule: Any, occurrences: list[Any]) -> None:
    channel = f"{schedule.template.get('appId')}/{schedule.template.get('cname')}"
    click.echo(
        f"schedule {schedule.id}  {schedule.state.value}  {_rule_text(schedule)}  "
        f"{schedule.duration_s}s  {channel}"
    )
    for o in occurrences:
        click.echo(
            f"  {o.id}  {_when(o.start, schedule.timezone)} -> {_when(o.end, schedule.timezone)}"
            f"  {o.outcome.value}  {o.session_id or '-'}" + (f"  ({o.reason})" if o.reason else "")
        )


_time_options = [
    click.option("--start-at", help="ISO 8601 with an offset, e.g. 2025-06-02T10:00:00+08:00."),
    click.option("--duration", "duration_s", type=click.IntRange(min=1), help="Seconds."),
    click.option("--end-at", help="ISO 8601 with an offset (instead of --duration)."),
    click.option("--cron", help="Five-field cron expression, in --timezone."),
    click.option("--weekly", help="DAYS@HH:MM, e.g. mon,thu@10:00, in --timezone."),
    click.option("--timezone", help="IANA name (Asia/Shanghai); required with --cron/--weekly."),
    click.option("--until", help="ISO 8601: no occurrence starts after it."),
    click.option("--count", type=click.IntRange(min=1), help="At most this many occurrences."),
    click.option(
        "--misfire-grace",
        "misfire_grace_s",
        type=click.FloatRange(min=0),
        help="Seconds late a start may still be sent; later it is missed [default: 300].",
    ),
]


def _with_time_options(command: Any) -> Any:
    for option in reversed(_time_options):
        command = option(command)
    return command


@click.group(epilog=_EXIT_HELP)
def schedule() -> None:
    """Scheduled recordings: one-off or recurring, started and stopped on time.

    Schedules live in Redis; `krtc-rec beat` dispatches them (a tick every
    KRTC_SCHEDULE_TICK_INTERVAL seconds) and the workers run the starts and stops.
    """


@schedule.command(epilog=_EXIT_HELP)
@click.option(
    "--file",
    "source",
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="Start request JSON (storage named by profile); - reads stdin.",
)
@_with_time_options
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
def add(source: IO[str], as_json: bool, **options: Any) -> None:
    """Add a schedule: --start-at and --duration or --end-at, optionally recurring."""
    options = {k: v for k, v in options.items() if v is not None}
    if "start_at" not in options:
        raise click.UsageError("--start-at is required")
    try:
        scheduler = _scheduler()
        added = scheduler.add(_read_template(source), **options)
        occurrences = scheduler.store.occurrences(added.id)
    except OrchestratorError as exc:
        _fail(exc)
    if as_json:
        echo_json(_schedule_json(added, occurrences))
        return
    _print_schedule(added, occurrences)


@schedule.command(name="list", epilog=_EXIT_HELP)
@click.option("--all", "include_past", is_flag=True, help="Also past occurrences and outcomes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_schedules(include_past: bool, as_json: bool) -> None:
    """Upcoming occurrences of every schedule (with --all, past ones with their outcome)."""
    try:
        listings = _scheduler().list(include_past=include_past)
    except OrchestratorError as exc:
        _fail(exc)
    if as_json:
        echo_json([_schedule_json(x.schedule, x.occurrences) for x in listings])
        return
    if not listings:
        click.echo("no schedules" if include_past else "nothing scheduled", err=True)
    for listing in listings:
        _print_schedule(listing.schedule, listing.occurrences)


@schedule.command(epilog=_EXIT_HELP)
@click.argument("id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cancel(id: str, as_json: bool) -> None:
    """Cancel a schedule (ID of a schedule) or one occurrence (ID of an occurrence).

    A cancelled occurrence that is recording is stopped now; a cancelled schedule plans no more
    occurrences and lets a recording under way end at its planned time.
    """
    try:
        result = _scheduler().cancel(id)
    except OrchestratorError as exc:
        _fail(exc)
    if as_json:
        echo_json({"id": id, "cancelled": result.cancelled, "stopping": result.stopping})
        return
    for occurrence_id in result.cancelled:
        click.echo(f"{occurrence_id}  cancelled")
    for occurrence_id in result.stopping:
        click.echo(f"{occurrence_id}  stopping now")
    if result.schedule is not None:
        click.echo(f"schedule {id}  {result.schedule.state.value}")


@schedule.command(epilog=_EXIT_HELP)
@click.argument("id")
@_with_time_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def reschedule(id: str, as_json: bool, **options: Any) -> None:
    """Move one occurrence (ID of an occurrence) or change a series (ID of a schedule).

    An occurrence gets a new --start-at (and --duration/--end-at); one that is recording, a new
    end. A series takes any of the options (the others are kept) and its upcoming occurrence is
    planned anew.
    """
    options = {k: v for k, v in options.items() if v is not None}
    try:
        scheduler = _scheduler()
        changed = scheduler.reschedule(id, **options)
        from orchestrator.schedule import Occurrence

        if isinstance(changed, Occurrence):
            owner = scheduler.get(changed.schedule_id)
            if as_json:
                echo_json(_occurrence_json(changed, owner.timezone))
            else:
                _print_schedule(owner, [changed])
            return
        occurrences = scheduler.store.occurrences(changed.id, live_only=True)
    except OrchestratorError as exc:
        _fail(exc)
    if as_json:
        echo_json(_schedule_json(changed, occurrences))
        return
    _print_schedule(changed, occurrences)
