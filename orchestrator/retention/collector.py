"""The collector: deletes what outlived its retention, so that Redis (``noeviction``) stays bounded.

Each kind has its own retention (``KRTC_*_RETENTION_S``) and its own way to find what is old
without ``KEYS`` or a full ``SCAN``:

==============  =================================================  ===========================
kind            found through                                      deleted with it
==============  =================================================  ===========================
sessions        ``{p}:finished``, scored by finish time            history, index entries,
                                                                   idempotency key, identity
                                                                   (if it still names it),
                                                                   alert markers
dead_letters    ``{p}:dlq``, scored by the latest failure          the live pointer
alerts          the recent and undelivered lists' tails (oldest)
occurrences     each old schedule's occurrences, by planned start
schedules       ``{p}:schedules`` created before the cut-off       its occurrences
dangling        ``{p}:sessions`` created before the cut-off:       (ids whose session is gone)
                ids whose hash is gone (expired by the safety net,
                or written before the finished index existed)
==============  =================================================  ===========================

A run works in batches of :attr:`RetentionPolicy.batch` and stops after
:attr:`RetentionPolicy.max_per_run` records per kind (the next run goes on), so no command holds
Redis for long. Each record is deleted by one Lua script that checks again that it may be
(:mod:`orchestrator.retention.scripts`): two collectors at once delete each record once and never
fail, and an active session is never deleted. The rolling sweeps (schedules, dangling ids) keep
their place in ``{p}:gc:cursor``. Beat runs :meth:`Collector.run_gated` every
``KRTC_GC_INTERVAL_S``; a gate key in Redis lets one beat's run through per interval.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from redis import Redis

from orchestrator.alerts.model import AlertKind
from orchestrator.retention.scripts import RetentionScripts
from orchestrator.schedule.model import Outcome, ScheduleState
from orchestrator.settings import (
    DEFAULT_ALERT_RETENTION_S,
    DEFAULT_DEAD_LETTER_RETENTION_S,
    DEFAULT_GC_INTERVAL_S,
    DEFAULT_SCHEDULE_RETENTION_S,
    DEFAULT_SESSION_RETENTION_S,
    Settings,
)
from orchestrator.state.backend import redis_errors
from orchestrator.state.clock import RedisClock
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys
from orchestrator.state.session import Phase

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_MAX_PER_RUN",
    "KINDS",
    "Collector",
    "GcReport",
    "RetentionPolicy",
]

#: Records read and deleted per round trip.
DEFAULT_BATCH = 200
#: Records of one kind a run deletes at most (the next run goes on).
DEFAULT_MAX_PER_RUN = 20_000
#: What a run reports, in this order.
KINDS = ("sessions", "dead_letters", "alerts", "occurrences", "schedules", "dangling")
#: A gated run lets no other begin for this share of the interval (beat's jitter tolerated).
SPACING = 0.8

_FINAL_PHASES = json.dumps(sorted(p.value for p in Phase.finished()))
_FINAL_OUTCOMES = json.dumps(sorted(o.value for o in Outcome if o.is_final))
_ENDED_STATES = json.dumps([ScheduleState.CANCELLED.value, ScheduleState.FINISHED.value])
_MARKER_KINDS = tuple(kind.value for kind in AlertKind)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind is kept (seconds), and how much a run does."""

    session_s: int = DEFAULT_SESSION_RETENTION_S
    dead_letter_s: int = DEFAULT_DEAD_LETTER_RETENTION_S
    alert_s: int = DEFAULT_ALERT_RETENTION_S
    schedule_s: int = DEFAULT_SCHEDULE_RETENTION_S
    interval_s: int = DEFAULT_GC_INTERVAL_S
    batch: int = DEFAULT_BATCH
    max_per_run: int = DEFAULT_MAX_PER_RUN

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RetentionPolicy:
        """The policy of ``settings`` (``KRTC_*_RETENTION_S``, ``KRTC_GC_INTERVAL_S``)."""
        values: dict[str, Any] = {
            "session_s": settings.session_retention_s,
            "dead_letter_s": settings.dead_letter_retention_s,
            "alert_s": settings.alert_retention_s,
            "schedule_s": settings.schedule_retention_s,
            "interval_s": settings.gc_interval_s,
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class GcReport:
    """What one run deleted (or, dry, would delete), per kind."""

    dry_run: bool = False
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    @property
    def total(self) -> int:
        """Records deleted in all."""
        return sum(self.deleted.values())

    def to_json(self) -> dict[str, Any]:
        """``{"dry_run": ..., "deleted": {kind: n}, "total": n}``."""
        return {"dry_run": self.dry_run, "deleted": dict(self.deleted), "total": self.total}


class Collector:
    """Deletes records past their retention (see the module's description).

    Args:
        redis: the client of the deployment's Redis.
        keys: its key names (share the session store's).
        policy: the retention of each kind.
        clock: unix seconds on Redis' clock (the one records are timed with); by default a
            :class:`RedisClock` on ``redis``.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        policy: RetentionPolicy | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = redis
        self.keys = keys
        self.policy = policy or RetentionPolicy()
        self._clock: Callable[[], float] = clock if clock is not None else RedisClock(redis)
        self._scripts = RetentionScripts.register(redis)

    # -- running -------------------------------------------------------------------------------

    def run_gated(self) -> GcReport | None:
        """:meth:`run`, unless another run began less than most of an interval ago (a second
        beat); ``None`` then. The gate expires on Redis' clock."""
        spacing_ms = max(1, int(self.policy.interval_s * SPACING * 1000))
        with redis_errors(self._redis):
            began = self._redis.set(
                self.keys.gc_spacing(), uuid.uuid4().hex, nx=True, px=spacing_ms
            )
        return self.run() if began else None

    def run(self, *, dry_run: bool = False) -> GcReport:
        """Delete (``dry_run``: count) every record past its retention, up to the run's bounds.

        Raises:
            StateUnavailableError: Redis is unreachable (what was deleted stays deleted).
        """
        report = GcReport(dry_run=dry_run)
        now = self._clock()
        policy = self.policy
        passes: list[tuple[str, Callable[[float, bool], int]]] = [
            ("sessions", self._sessions),
            ("dead_letters", self._dead_letters),
            ("alerts", self._alerts),
            ("occurrences", self._occurrences),
            ("schedules", self._schedules),
            ("dangling", self._dangling),
        ]
        cutoffs = {
            "sessions": now - policy.session_s,
            "dead_letters": now - policy.dead_letter_s,
            "alerts": now - policy.alert_s,
            "occurrences": now - policy.schedule_s,
            "schedules": now - policy.schedule_s,
            "dangling": now - policy.session_s,
        }
        for kind, collect in passes:
            count = collect(cutoffs[kind], dry_run)
            report.deleted[kind] = count
            if count and not dry_run:
                with redis_errors(self._redis):
                    self._redis.hincrby(self.keys.gc_deleted(), kind, count)
        return report

    def deleted_counts(self) -> dict[str, int]:
        """Records deleted so far per kind, by every collector (every kind listed)."""
        with redis_errors(self._redis):
            raw = cast("dict[Any, Any]", self._redis.hgetall(self.keys.gc_deleted()))
        counts = dict.fromkeys(KINDS, 0)
        counts.update({text(k): int(text(v)) for k, v in raw.items()})
        return counts

    # -- sessions ------------------------------------------------------------------------------

    def _sessions(self, cutoff: float, dry: bool) -> int:
        deleted = 0
        for ids in self._pages(self.keys.finished(), cutoff, dry):
            with redis_errors(self._redis):
                pipe = self._redis.pipeline(transaction=False)
                for session_id in ids:
                    pipe.hmget(
                        self.keys.session(session_id), ["idempotency_key", "app_id", "cname", "uid"]
                    )
                fields = cast("list[list[Any]]", pipe.execute())
                pipe = self._redis.pipeline(transaction=False)
                for session_id, (idem, app_id, cname, uid) in zip(ids, fields, strict=True):
                    named = []
                    if idem:
                        named.append(self.keys.idempotency(text(idem)))
                    if app_id and cname and uid:
                        named.append(self.keys.identity(text(app_id), text(cname), text(uid)))
                    markers = [self.keys.alert(session_id, kind) for kind in _MARKER_KINDS]
                    keys = [
                        self.keys.session(session_id),
                        self.keys.history(session_id),
                        self.keys.sessions(),
                        self.keys.finished(),
                        self.keys.active(),
                        *named,
                        *markers,
                    ]
                    args: list[str | int] = [
                        session_id,
                        repr(cutoff),
                        _FINAL_PHASES,
                        len(named),
                        _flag(dry),
                    ]
                    self._scripts.delete_session(keys=keys, args=args, client=pipe)
                outcomes = pipe.execute()
            deleted += _count(outcomes)
            if deleted >= self.policy.max_per_run:
                break
        return deleted

    def _dangling(self, cutoff: float, dry: bool) -> int:
        """Ids in the sessions index, created before the cut-off, whose session is gone."""
        removed = 0
        shifted: list[int] = []
        for ids in self._sweep("sessions", self.keys.sessions(), cutoff, shifted):
            with redis_errors(self._redis):
                pipe = self._redis.pipeline(transaction=False)
                for session_id in ids:
                    pipe.exists(self.keys.session(session_id))
                exists = cast("list[int]", pipe.execute())
                gone = [i for i, there in zip(ids, exists, strict=True) if not there]
                if gone and not dry:
                    pipe = self._redis.pipeline(transaction=False)
                    pipe.zrem(self.keys.sessions(), *gone)
                    pipe.zrem(self.keys.finished(), *gone)
                    pipe.execute()
                    shifted.append(len(gone))
            removed += len(gone)
            if removed >= self.policy.max_per_run:
                break
        return removed

    # -- dead letters --------------------------------------------------------------------------

    def _dead_letters(self, cutoff: float, dry: bool) -> int:
        deleted = 0
        for ids in self._pages(self.keys.dead_letters(), cutoff, dry):
            with redis_errors(self._redis):
                raws = cast("list[Any]", self._redis.mget([self.keys.dead_letter(i) for i in ids]))
                pipe = self._redis.pipeline(transaction=False)
                for letter_id, raw in zip(ids, raws, strict=True):
                    keys = [self.keys.dead_letters(), self.keys.dead_letter(letter_id)]
                    live = _live_key(self.keys, raw)
                    if live is not None:
                        keys.append(live)
                    self._scripts.delete_letter(
                        keys=keys, args=[letter_id, repr(cutoff), _flag(dry)], client=pipe
                    )
                outcomes = pipe.execute()
            deleted += _count(outcomes)
            if deleted >= self.policy.max_per_run:
                break
        return deleted

    # -- alerts --------------------------------------------------------------------------------

    def _alerts(self, cutoff: float, dry: bool) -> int:
        dropped = 0
        for key, name, scale in (
            (self.keys.alerts(), "at", 1),
            (self.keys.alerts_undelivered(), "at_ms", 1000),
        ):
            while dropped < self.policy.max_per_run:
                with redis_errors(self._redis):
                    n = int(
                        self._scripts.trim_list(
                            keys=[key],
                            args=[repr(cutoff), self.policy.batch, name, scale, _flag(dry)],
                        )
                    )
                dropped += n
                if n < self.policy.batch or dry:
                    break
        return dropped

    # -- schedules -----------------------------------------------------------------------------

    def _old_schedules(
        self, sweep: str, cutoff: float, shifted: list[int] | None = None
    ) -> Iterator[list[str]]:
        """Pages of the schedules created before ``cutoff`` (none younger can have ended by
        then), a rolling sweep of its own per pass."""
        return self._sweep(sweep, self.keys.schedules(), cutoff, shifted)

    def _occurrences(self, cutoff: float, dry: bool) -> int:
        deleted = 0
        for schedule_ids in self._old_schedules("occurrences", cutoff):
            for schedule_id in schedule_ids:
                index = self.keys.schedule_occurrences(schedule_id)
                with redis_errors(self._redis):
                    raw = cast(
                        "list[Any]",
                        self._redis.zrangebyscore(
                            index, "-inf", repr(cutoff), start=0, num=self.policy.batch
                        ),
                    )
                    if not raw:
                        continue
                    pipe = self._redis.pipeline(transaction=False)
                    for occurrence_id in (text(r) for r in raw):
                        self._scripts.delete_occurrence(
                            keys=[self.keys.occurrence(occurrence_id), index],
                            args=[occurrence_id, repr(cutoff), _FINAL_OUTCOMES, _flag(dry)],
                            client=pipe,
                        )
                    deleted += _count(pipe.execute())
            if deleted >= self.policy.max_per_run:
                break
        return deleted

    def _schedules(self, cutoff: float, dry: bool) -> int:
        deleted = 0
        shifted: list[int] = []
        for schedule_ids in self._old_schedules("schedules", cutoff, shifted):
            with redis_errors(self._redis):
                pipe = self._redis.pipeline(transaction=False)
                for schedule_id in schedule_ids:
                    pipe.zrange(self.keys.schedule_occurrences(schedule_id), 0, -1)
                occurrences = cast("list[list[Any]]", pipe.execute())
                pipe = self._redis.pipeline(transaction=False)
                for schedule_id, members in zip(schedule_ids, occurrences, strict=True):
                    keys = [
                        self.keys.schedule(schedule_id),
                        self.keys.schedule_occurrences(schedule_id),
                        self.keys.schedules(),
                        *(self.keys.occurrence(text(m)) for m in members),
                    ]
                    args = [schedule_id, repr(cutoff), _ENDED_STATES, _FINAL_OUTCOMES, _flag(dry)]
                    self._scripts.delete_schedule(keys=keys, args=args, client=pipe)
                page = _count(pipe.execute())
            deleted += page
            if not dry:
                shifted.append(page)
            if deleted >= self.policy.max_per_run:
                break
        return deleted

    # -- paging --------------------------------------------------------------------------------

    def _pages(self, index: str, cutoff: float, dry: bool) -> Iterator[list[str]]:
        """Pages of the members of ``index`` scored at or before ``cutoff``, oldest first.

        In a real run every member of a page leaves that range (deleted, deleted by another
        collector, moved on: failed again, or out of the index: not finished), so each page
        is the head again; a dry run deletes nothing and pages on. At most ``max_per_run``.
        """
        offset = 0
        seen = 0
        while seen < self.policy.max_per_run:
            with redis_errors(self._redis):
                raw = cast(
                    "list[Any]",
                    self._redis.zrangebyscore(
                        index, "-inf", repr(cutoff), start=offset, num=self.policy.batch
                    ),
                )
            if not raw:
                return
            ids = [text(r) for r in raw]
            yield ids
            seen += len(ids)
            if dry:
                offset += len(ids)
            if len(ids) < self.policy.batch:
                return

    def _sweep(
        self, name: str, index: str, cutoff: float, shifted: list[int] | None = None
    ) -> Iterator[list[str]]:
        """A rolling sweep of the members of ``index`` scored before ``cutoff``: resumes where
        the last run stopped (field ``name`` of ``{p}:gc:cursor``), a page at a time, and wraps
        around at the end. The caller appends to ``shifted`` how many members of the page it
        removed, so the next page starts right after the ones kept (a concurrent collector can
        still shift ranks: a lap may then skip a few, which the next lap sees).
        """
        with redis_errors(self._redis):
            cursor = cast("str | bytes | None", self._redis.hget(self.keys.gc_cursor(), name))
        start = int(text(cursor or "0"))
        examined = 0
        while examined < self.policy.max_per_run:
            with redis_errors(self._redis):
                raw = cast(
                    "list[Any]",
                    self._redis.zrangebyscore(
                        index, "-inf", repr(cutoff), start=start, num=self.policy.batch
                    ),
                )
            ids = [text(r) for r in raw]
            if ids:
                yield ids
            examined += len(ids)
            start += len(ids) - (shifted.pop() if shifted else 0)
            if len(ids) < self.policy.batch:
                start = 0
                break
        with redis_errors(self._redis):
            self._redis.hset(self.keys.gc_cursor(), name, str(start))


def _flag(dry: bool) -> str:
    return "1" if dry else "0"


def _count(outcomes: Iterable[Any]) -> int:
    return sum(1 for o in outcomes if text(o) == "deleted")


def _live_key(keys: Keys, raw: Any) -> str | None:
    """The live-pointer key of a stored letter, or ``None`` if it does not decode."""
    if raw is None:
        return None
    try:
        letter = json.loads(text(raw))
        return keys.dead_letter_live(str(letter["session_id"]), str(letter["action"]))
    except (ValueError, KeyError, TypeError):
        return None
