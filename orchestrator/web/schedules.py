"""``/v1/schedules``: add, list, read and cancel scheduled recordings (``krtc-rec schedule``).

The body of a new schedule names the options of ``krtc-rec schedule add`` in the API's
camelCase: the start request is ``template``. The :class:`~orchestrator.schedule.Scheduler` is
synchronous (redis-py); its calls run in a thread, so the event loop never waits on Redis.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from orchestrator.krtc.validation import FieldError, RequestValidationError
from orchestrator.schedule import Scheduler
from orchestrator.schedule.model import Occurrence, Schedule
from orchestrator.web.body import json_object
from orchestrator.web.errors import ApiError

__all__ = ["router", "SCHEDULE_FIELDS"]

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

#: Body member -> ``Scheduler.add`` argument, and the JSON types each takes.
SCHEDULE_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "startAt": ("start_at", (str,)),
    "durationS": ("duration_s", (int, float)),
    "endAt": ("end_at", (str,)),
    "cron": ("cron", (str,)),
    "weekly": ("weekly", (str,)),
    "timezone": ("timezone", (str,)),
    "until": ("until", (str,)),
    "count": ("count", (int,)),
    "misfireGraceS": ("misfire_grace_s", (int, float)),
}
_BODY_NAMES = {argument: member for member, (argument, _) in SCHEDULE_FIELDS.items()}


def _scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


def _schedule(schedule: Schedule, occurrences: list[Occurrence]) -> dict[str, Any]:
    data: dict[str, Any] = schedule.model_dump(mode="json")
    data["occurrences"] = [o.model_dump(mode="json") for o in occurrences]
    return data


def _add_arguments(body: dict[str, Any]) -> dict[str, Any]:
    """``Scheduler.add``'s arguments from the body; field errors for the wrong types."""
    problems: list[FieldError] = []
    template = body.pop("template", None)
    if not isinstance(template, dict):
        problems.append(FieldError("template", "the start request, an object, is required"))
    if "startAt" not in body:
        problems.append(FieldError("startAt", "is required (ISO 8601 with an offset)"))
    arguments: dict[str, Any] = {"template": template}
    for member, value in body.items():
        if member not in SCHEDULE_FIELDS:
            problems.append(FieldError(member, "is not a field of a schedule"))
            continue
        argument, types = SCHEDULE_FIELDS[member]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            kind = "a string" if types == (str,) else "a number"
            problems.append(FieldError(member, f"must be {kind}"))
        else:
            arguments[argument] = value
    if problems:
        raise ApiError(422, "invalid_request", "invalid schedule", fields=problems)
    return arguments


def _body_path(path: str) -> str:
    """A field error's path as the body names it."""
    head, dot, rest = path.partition(".")
    return _BODY_NAMES.get(head, head) + dot + rest


@router.post("", status_code=201, summary="Add a schedule")
async def add(request: Request) -> dict[str, Any]:
    """The body: `template` (the start request, storage by profile), `startAt`, and
    `durationS` or `endAt`; for a recurring schedule `cron` or `weekly` (`mon,thu@10:00`) with
    `timezone`, optionally `until` and `count`; `misfireGraceS`. 201: the schedule with its
    first occurrence; nothing is queued until it is due."""
    arguments = _add_arguments(await json_object(request))
    scheduler = _scheduler(request)

    def add_schedule() -> dict[str, Any]:
        added = scheduler.add(**arguments)
        return _schedule(added, scheduler.store.occurrences(added.id))

    try:
        return await run_in_threadpool(add_schedule)
    except RequestValidationError as exc:
        fields = [FieldError(_body_path(e.path), e.message) for e in exc.errors]
        raise ApiError(422, "invalid_request", "invalid schedule", fields=fields) from None


@router.get("", summary="List schedules")
async def list_schedules(request: Request, all: bool = False) -> dict[str, Any]:
    """`{"schedules": [...]}`, each with its upcoming occurrences; `all=true` also lists past
    occurrences (with their outcome) and schedules that have none upcoming."""
    listings = await run_in_threadpool(_scheduler(request).list, include_past=all)
    return {"schedules": [_schedule(x.schedule, x.occurrences) for x in listings]}


@router.get("/{schedule_id}", summary="Read a schedule")
async def get(request: Request, schedule_id: str) -> dict[str, Any]:
    """The schedule with all its occurrences. 404 when there is none."""
    scheduler = _scheduler(request)

    def read() -> dict[str, Any]:
        schedule = scheduler.get(schedule_id)
        return _schedule(schedule, scheduler.store.occurrences(schedule_id))

    return await run_in_threadpool(read)


@router.delete("/{schedule_id}", summary="Cancel a schedule or an occurrence")
async def cancel(request: Request, schedule_id: str) -> dict[str, Any]:
    """Cancel a schedule (its upcoming occurrence too; a recording under way ends at its planned
    time), or one occurrence by its id (one that is recording stops now). 409 when the
    occurrence is over or being dispatched."""
    result = await run_in_threadpool(_scheduler(request).cancel, schedule_id)
    return {
        "id": schedule_id,
        "cancelled": result.cancelled,
        "stopping": result.stopping,
        "state": result.schedule.state.value if result.schedule is not None else None,
    }
