"""Schedules and their occurrences in Redis, and the due set a tick claims work from.

A schedule is a hash: its definition as JSON (``doc``) plus the fields scripts change
(``state``, ``planned``, ``updated_at``). An occurrence is a hash of its fields (absent = None).
Planning an occurrence, claiming due work, finishing it, cancelling and moving an occurrence are
each one Lua script (:mod:`orchestrator.schedule.scripts`), so two ticks, or a tick and a
producer, never see half a change.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from typing import Any, cast

from redis import Redis

from orchestrator.schedule.errors import ScheduleNotFoundError
from orchestrator.schedule.model import Occurrence, Outcome, Schedule, ScheduleState
from orchestrator.schedule.scripts import ScheduleScripts
from orchestrator.state.backend import redis_errors
from orchestrator.state.clock import RedisClock
from orchestrator.state.codec import text
from orchestrator.state.events import OCCURRENCE_FIELDS, EventLog, EventType, schedule_subject
from orchestrator.state.keys import DEFAULT_PREFIX, Keys

__all__ = ["START", "STOP", "due_member", "parse_member", "ScheduleStore"]

START = "start"
STOP = "stop"
_LIVE = {Outcome.SCHEDULED.value, Outcome.STARTED.value}


def due_member(action: str, occurrence_id: str) -> str:
    """The member of the due set for ``action`` (start or stop) of an occurrence."""
    return f"{action}|{occurrence_id}"


def parse_member(member: str) -> tuple[str, str]:
    """``(action, occurrence id)`` of a due-set member."""
    action, _, occurrence_id = member.partition("|")
    return action, occurrence_id


def _pairs(fields: Mapping[str, Any]) -> list[str]:
    flat: list[str] = []
    for name, value in fields.items():
        if value is None:
            continue
        flat += [name, value.value if hasattr(value, "value") else str(value)]
    return flat


def _occurrence_fields(occurrence: Occurrence) -> dict[str, Any]:
    return {k: repr(v) if isinstance(v, float) else v for k, v in occurrence.model_dump().items()}


def _mapping(occurrence: Occurrence) -> dict[str, str]:
    flat = _pairs(_occurrence_fields(occurrence))
    return dict(zip(flat[::2], flat[1::2], strict=True))


class ScheduleStore:
    """Recording schedules in Redis.

    Args:
        redis: the client (``decode_responses=True`` or not).
        prefix: the key prefix (setting ``redis_prefix``).
        clock: unix time (injectable for tests); by default Redis' own clock
            (:class:`~orchestrator.state.RedisClock`): due times and leases are compared by
            every beat and worker, so no host's wall clock may decide.
        events: records ``schedule.missed`` with the outcome (``None``: events are off).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        events: EventLog | None = None,
    ) -> None:
        self.keys = Keys(prefix)
        self.events = events
        self._redis = redis
        self._clock: Callable[[], float] = clock if clock is not None else RedisClock(redis)
        self._scripts = ScheduleScripts.register(redis)

    @property
    def clock(self) -> Callable[[], float]:
        """The store's clock."""
        return self._clock

    def record_tick(self) -> None:
        """Note that a tick ran now (``krtc-rec status`` and the beat health check read it)."""
        with redis_errors(self._redis):
            self._redis.set(self.keys.schedule_last_tick(), repr(self._clock()))

    def last_tick(self) -> float | None:
        """When the last tick ran (unix seconds on Redis' clock), if one ever did."""
        with redis_errors(self._redis):
            raw = cast("str | bytes | None", self._redis.get(self.keys.schedule_last_tick()))
        return None if raw is None else float(text(raw))

    @property
    def redis(self) -> Redis:
        """The Redis client."""
        return self._redis

    # -- schedules -----------------------------------------------------------------------------

    def add(self, schedule: Schedule, first: Occurrence | None) -> None:
        """Store a new schedule and its first occurrence, in one transaction."""
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(
                self.keys.schedule(schedule.id),
                mapping={
                    "doc": schedule.model_dump_json(),
                    "state": schedule.state.value,
                    "planned": str(schedule.planned),
                    "updated_at": repr(schedule.updated_at),
                },
            )
            pipe.zadd(self.keys.schedules(), {schedule.id: schedule.created_at})
            if first is not None:
                pipe.hset(
                    self.keys.occurrence(first.id),
                    mapping=_mapping(first),
                )
                pipe.zadd(self.keys.schedule_occurrences(schedule.id), {first.id: first.start})
                pipe.zadd(self.keys.schedule_due(), {due_member(START, first.id): first.start})
            pipe.execute()

    def get(self, schedule_id: str) -> Schedule | None:
        """The schedule, or ``None``."""
        with redis_errors(self._redis):
            raw = cast("dict[Any, Any]", self._redis.hgetall(self.keys.schedule(schedule_id)))
        if not raw:
            return None
        fields = {text(k): text(v) for k, v in raw.items()}
        doc = json.loads(fields["doc"])
        doc.update(
            state=fields.get("state", doc["state"]),
            planned=int(fields.get("planned", doc["planned"])),
            updated_at=float(fields.get("updated_at", doc["updated_at"])),
        )
        return Schedule.model_validate(doc)

    def get_or_raise(self, schedule_id: str) -> Schedule:
        """Like :meth:`get`; a missing schedule is an error.

        Raises:
            ScheduleNotFoundError: there is no such schedule.
        """
        schedule = self.get(schedule_id)
        if schedule is None:
            raise ScheduleNotFoundError("schedule", schedule_id)
        return schedule

    def replace(self, schedule: Schedule) -> None:
        """Store a changed definition (a rescheduled series); keeps ``planned``."""
        with redis_errors(self._redis):
            self._redis.hset(
                self.keys.schedule(schedule.id),
                mapping={
                    "doc": schedule.model_dump_json(),
                    "state": schedule.state.value,
                    "updated_at": repr(self._clock()),
                },
            )

    def set_state(self, schedule_id: str, state: ScheduleState) -> None:
        """Mark a schedule cancelled or finished (no more occurrences are planned)."""
        with redis_errors(self._redis):
            self._redis.hset(
                self.keys.schedule(schedule_id),
                mapping={"state": state.value, "updated_at": repr(self._clock())},
            )

    def ids(self) -> builtins.list[str]:
        """Every schedule id, oldest first."""
        with redis_errors(self._redis):
            raw = cast("builtins.list[Any]", self._redis.zrange(self.keys.schedules(), 0, -1))
        return [text(r) for r in raw]

    def list(self) -> builtins.list[Schedule]:
        """Every schedule, oldest first."""
        found = [self.get(i) for i in self.ids()]
        return [s for s in found if s is not None]

    # -- occurrences ---------------------------------------------------------------------------

    def plan(self, occurrence: Occurrence) -> int:
        """Add an occurrence and make its start due, unless it exists already.

        Returns:
            1 planned, 0 it existed (planned before), -1 the schedule is not active.
        """
        keys = [
            self.keys.occurrence(occurrence.id),
            self.keys.schedule_due(),
            self.keys.schedule_occurrences(occurrence.schedule_id),
            self.keys.schedule(occurrence.schedule_id),
        ]
        args: builtins.list[str | int] = [
            occurrence.id,
            repr(occurrence.start),
            occurrence.index,
            repr(self._clock()),
            *_pairs(_occurrence_fields(occurrence)),
        ]
        with redis_errors(self._redis):
            return int(self._scripts.plan(keys=keys, args=args))

    def occurrence(self, occurrence_id: str) -> Occurrence | None:
        """The occurrence, or ``None``."""
        with redis_errors(self._redis):
            raw = cast("dict[Any, Any]", self._redis.hgetall(self.keys.occurrence(occurrence_id)))
        if not raw:
            return None
        return Occurrence.model_validate({text(k): text(v) for k, v in raw.items()})

    def occurrence_or_raise(self, occurrence_id: str) -> Occurrence:
        """Like :meth:`occurrence`; a missing one is an error.

        Raises:
            ScheduleNotFoundError: there is no such occurrence.
        """
        found = self.occurrence(occurrence_id)
        if found is None:
            raise ScheduleNotFoundError("occurrence", occurrence_id)
        return found

    def occurrences(
        self, schedule_id: str, *, live_only: bool = False
    ) -> builtins.list[Occurrence]:
        """A schedule's occurrences by planned start; ``live_only``: scheduled or started."""
        with redis_errors(self._redis):
            raw = cast(
                "builtins.list[Any]",
                self._redis.zrange(self.keys.schedule_occurrences(schedule_id), 0, -1),
            )
            pipe = self._redis.pipeline(transaction=False)
            for occurrence_id in raw:
                pipe.hgetall(self.keys.occurrence(text(occurrence_id)))
            replies = pipe.execute()
        found = [
            Occurrence.model_validate({text(k): text(v) for k, v in r.items()})
            for r in replies
            if r
        ]
        if live_only:
            found = [o for o in found if o.outcome.value in _LIVE]
        return found

    # -- due work ------------------------------------------------------------------------------

    def claim(self, *, lease_s: float, limit: int) -> builtins.list[tuple[str, str]]:
        """Claim up to ``limit`` due members (and members whose lease ran out).

        Returns:
            ``(action, occurrence id)`` pairs, now leased to the caller for ``lease_s``.
        """
        now = self._clock()
        with redis_errors(self._redis):
            raw = self._scripts.claim(
                keys=[self.keys.schedule_due(), self.keys.schedule_claimed()],
                args=[repr(now), repr(now + lease_s), limit],
            )
        return [parse_member(text(m)) for m in raw]

    def finish(
        self,
        action: str,
        occurrence_id: str,
        *,
        expect: Outcome | None,
        fields: Mapping[str, Any],
        then_due: tuple[str, float] | None = None,
        emit: EventType | None = None,
    ) -> bool:
        """Record the outcome of claimed work and release the claim, in one script.

        Args:
            action, occurrence_id: the claimed member.
            expect: apply only if the occurrence has this outcome (``None``: any); the claim is
                released either way.
            fields: occurrence fields to set.
            then_due: ``(action, due time)`` of the occurrence to make due next (its stop).
            emit: the event the outcome emits, recorded in the same script if it applies and
                events are on (``schedule.missed``).

        Returns:
            Whether the fields were applied.
        """
        fields = {**fields, "updated_at": repr(self._clock())}
        event = ""
        if emit is not None and self.events is not None:
            occurrence = cast(
                "str | bytes | None",
                self._redis.hget(self.keys.occurrence(occurrence_id), "schedule_id"),
            )
            subject = schedule_subject(text(occurrence) if occurrence else occurrence_id)
            event = json.dumps(
                self.events.spec(
                    subject,
                    fields=OCCURRENCE_FIELDS,
                    type=emit.value,
                    ref={"occurrence_id": occurrence_id},
                )
            )
        args: builtins.list[str] = [
            due_member(action, occurrence_id),
            expect.value if expect is not None else "",
            due_member(then_due[0], occurrence_id) if then_due else "",
            repr(then_due[1]) if then_due else "0",
            event,
            *_pairs({k: repr(v) if isinstance(v, float) else v for k, v in fields.items()}),
        ]
        keys = [
            self.keys.occurrence(occurrence_id),
            self.keys.schedule_claimed(),
            self.keys.schedule_due(),
        ]
        with redis_errors(self._redis):
            return bool(int(self._scripts.finish(keys=keys, args=args)))

    def cancel(self, occurrence_id: str, *, reason: str) -> tuple[str, Outcome | None]:
        """Cancel an occurrence not started yet, or end a started one now.

        Returns:
            ``(what, outcome before)``: what is ``cancelled``, ``stopping``, ``busy`` (its
            start is being dispatched right now), ``final`` or ``missing``.
        """
        keys = [
            self.keys.occurrence(occurrence_id),
            self.keys.schedule_due(),
            self.keys.schedule_claimed(),
        ]
        with redis_errors(self._redis):
            what, outcome = self._scripts.cancel(
                keys=keys, args=[occurrence_id, repr(self._clock()), reason]
            )
        found = text(outcome)
        return text(what), Outcome(found) if found else None

    def move(
        self, occurrence: Occurrence, *, start: float, end: float
    ) -> tuple[str, Outcome | None]:
        """Give a scheduled occurrence a new start and end, or a started one a new end.

        Returns:
            ``(what, outcome)``: ``moved``, ``ended`` (new end only), ``busy``, ``final`` or
            ``missing``.
        """
        keys = [
            self.keys.occurrence(occurrence.id),
            self.keys.schedule_due(),
            self.keys.schedule_occurrences(occurrence.schedule_id),
        ]
        with redis_errors(self._redis):
            what, outcome = self._scripts.move(
                keys=keys, args=[occurrence.id, repr(start), repr(end), repr(self._clock())]
            )
        found = text(outcome)
        return text(what), Outcome(found) if found else None

    def due_count(self) -> int:
        """Members waiting in the due set (starts and stops)."""
        with redis_errors(self._redis):
            return int(cast(int, self._redis.zcard(self.keys.schedule_due())))

    def claimed_count(self) -> int:
        """Members claimed and not finished."""
        with redis_errors(self._redis):
            return int(cast(int, self._redis.zcard(self.keys.schedule_claimed())))
