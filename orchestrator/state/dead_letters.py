"""Dead letters: jobs that failed for good, kept until a person replays or purges them.

A dead letter holds what is needed to understand and replay a job (its action, session, the
task's non-secret arguments, the error and the attempts made), never a secret: task arguments
are session ids and update bodies, which carry no keys.

A (session, action) has at most one *live* letter: one not replayed and not removed. A stop that
keeps failing is re-queued by the reconciler every few minutes; each new failure updates the live
letter (``failures``, the last error, ``last_failed_at``, the latest task's arguments) instead of
adding another, so the operator sees one letter per problem and one alert
(:class:`Filing` says which happened). A replay ends a letter's life: a failure after it files a
new letter. Adding the same task's failure twice (a redelivered failure) changes nothing.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field
from redis import Redis
from redis.client import Pipeline

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys

__all__ = ["DEFAULT_TASK_IDS_KEPT", "DeadLetter", "DeadLetterStore", "Filing", "to_json"]

_T = TypeVar("_T")

#: Task ids of the failures merged into a letter that it remembers (to spot a redelivery).
DEFAULT_TASK_IDS_KEPT = 20


class Filing(StrEnum):
    """What :meth:`DeadLetterStore.add` did with a failure."""

    #: A new letter: (session, action) had no live one.
    NEW = "new"
    #: The live letter of (session, action) counts one more failure.
    UPDATED = "updated"
    #: This task's failure was filed already (a redelivery): nothing changed.
    DUPLICATE = "duplicate"


class DeadLetter(BaseModel):
    """One job that gave up.

    Attributes:
        id: the task id of the failed job (replays get new task ids).
        task: the task name (``krtc.start``, ``krtc.stop``, ...).
        action: the API action.
        session_id: the session the job worked on.
        args: the task's arguments (no secrets by construction).
        error: ``{kind, status, code, reason, at}`` of the last error.
        attempts: the calls made for this action (by the latest failure).
        failed_at: unix seconds of the first failure.
        app_id, cname, uid: the session's identity, for the operator.
        replays: task ids of the replays made so far.
        failures: how many failed jobs this letter stands for (1 + later failures merged in).
        last_failed_at: unix seconds of the latest failure (``None``: only the first).
        task_ids: task ids of the failures merged in, the most recent last (a few kept).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    task: str
    action: str
    session_id: str
    args: list[Any] = Field(default_factory=list)
    error: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 0
    failed_at: float
    app_id: str = ""
    cname: str = ""
    uid: str = ""
    replays: list[str] = Field(default_factory=list)
    failures: int = 1
    last_failed_at: float | None = None
    task_ids: list[str] = Field(default_factory=list)

    @property
    def latest_failure_at(self) -> float:
        """Unix seconds of the latest failure (the first one if there was no other)."""
        return self.failed_at if self.last_failed_at is None else self.last_failed_at

    def is_filed(self, task_id: str) -> bool:
        """Whether the failure of ``task_id`` is this letter or was merged into it."""
        return task_id == self.id or task_id in self.task_ids

    def failed_again(self, failure: DeadLetter) -> DeadLetter:
        """This letter with one more failure of its (session, action) merged in.

        The latest error, attempts, task and arguments win (a replay replays the latest job);
        the id, the first failure time and the replays stay.
        """
        return self.model_copy(
            update={
                "task": failure.task,
                "args": list(failure.args),
                "error": dict(failure.error),
                "attempts": failure.attempts,
                "failures": self.failures + 1,
                "last_failed_at": failure.failed_at,
                "task_ids": [*self.task_ids, failure.id][-DEFAULT_TASK_IDS_KEPT:],
                "app_id": failure.app_id or self.app_id,
                "cname": failure.cname or self.cname,
                "uid": failure.uid or self.uid,
            }
        )


class DeadLetterStore:
    """Dead letters in Redis, under the session store's key prefix."""

    def __init__(self, redis: Redis, *, keys: Keys, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self.keys = keys
        self._clock = clock

    def add(self, letter: DeadLetter) -> Filing:
        """File a failure: a new letter, or one more failure of the live letter of its pair.

        One optimistic transaction (WATCH on the letter, the live pointer and the live letter),
        so concurrent failures of one (session, action) leave one letter counting both, and a
        letter removed or replayed meanwhile is never written back.

        Returns:
            What happened (:class:`Filing`).
        """
        key = self.keys.dead_letter(letter.id)
        live_key = self.keys.dead_letter_live(letter.session_id, letter.action)
        index = self.keys.dead_letters()

        def file(pipe: Pipeline) -> Filing:
            if pipe.exists(key):
                # A redelivered failure. Indexing it again heals a letter stored by an older
                # version that died between its two writes.
                pipe.multi()
                pipe.zadd(index, {letter.id: letter.failed_at}, nx=True)
                return Filing.DUPLICATE
            live = self._live(pipe, live_key)
            if live is not None:
                if live.is_filed(letter.id):
                    return Filing.DUPLICATE
                updated = live.failed_again(letter)
                pipe.multi()
                pipe.set(self.keys.dead_letter(live.id), updated.model_dump_json(), xx=True)
                pipe.zadd(index, {live.id: updated.latest_failure_at})
                return Filing.UPDATED
            pipe.multi()
            pipe.set(key, letter.model_dump_json(), nx=True)
            pipe.zadd(index, {letter.id: letter.latest_failure_at}, nx=True)
            pipe.set(live_key, letter.id)
            return Filing.NEW

        with redis_errors(self._redis):
            return _transaction(self._redis, file, key, live_key)

    def _live(self, pipe: Pipeline, live_key: str) -> DeadLetter | None:
        """The live letter the pointer ``live_key`` names (watched), or ``None``."""
        live_id = cast("str | bytes | None", pipe.get(live_key))
        if live_id is None:
            return None
        letter_key = self.keys.dead_letter(text(live_id))
        pipe.watch(letter_key)  # type: ignore[no-untyped-call]
        raw = cast("str | bytes | None", pipe.get(letter_key))
        if raw is None:
            return None  # a stale pointer: a new letter replaces it
        live = DeadLetter.model_validate_json(text(raw))
        return None if live.replays else live

    def get(self, letter_id: str) -> DeadLetter | None:
        """The letter, or ``None``."""
        with redis_errors(self._redis):
            raw = cast("str | bytes | None", self._redis.get(self.keys.dead_letter(letter_id)))
        return None if raw is None else DeadLetter.model_validate_json(text(raw))

    def list(self, limit: int = 100) -> builtins.list[DeadLetter]:
        """The newest letters first."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        with redis_errors(self._redis):
            ids = cast(
                "builtins.list[str | bytes]",
                self._redis.zrevrange(self.keys.dead_letters(), 0, limit - 1),
            )
            if not ids:
                return []
            raws = cast(
                "builtins.list[str | bytes | None]",
                self._redis.mget([self.keys.dead_letter(text(i)) for i in ids]),
            )
        return [DeadLetter.model_validate_json(text(r)) for r in raws if r is not None]

    def size(self) -> int:
        """How many letters are kept."""
        with redis_errors(self._redis):
            return int(cast(int, self._redis.zcard(self.keys.dead_letters())))

    def mark_replayed(self, letter_id: str, task_id: str) -> None:
        """Record a replay of the letter (it stays until purged); nothing if there is none.

        A replayed letter is no longer live: the next failure of its (session, action) files a
        new letter (the replay's own outcome), not one more failure of this one.
        """
        key = self.keys.dead_letter(letter_id)

        # Read-modify-write under WATCH: concurrent replays each keep their task id, and a
        # letter removed meanwhile is not written back (outside the index, for ever).
        def append(pipe: Pipeline) -> None:
            raw = cast("str | bytes | None", pipe.get(key))
            if raw is None:
                return
            letter = DeadLetter.model_validate_json(text(raw))
            live_key = self._watch_live(pipe, letter)
            updated = letter.model_copy(update={"replays": [*letter.replays, task_id]})
            pipe.multi()
            pipe.set(key, updated.model_dump_json(), xx=True)
            if live_key is not None:
                pipe.delete(live_key)

        with redis_errors(self._redis):
            self._redis.transaction(append, key)

    def remove(self, letter_id: str) -> bool:
        """Delete one letter (and its live pointer); false if there was none."""
        key = self.keys.dead_letter(letter_id)

        def drop(pipe: Pipeline) -> bool:
            raw = cast("str | bytes | None", pipe.get(key))
            live_key = None
            if raw is not None:
                live_key = self._watch_live(pipe, DeadLetter.model_validate_json(text(raw)))
            pipe.multi()
            pipe.delete(key)
            pipe.zrem(self.keys.dead_letters(), letter_id)
            if live_key is not None:
                pipe.delete(live_key)
            return raw is not None

        with redis_errors(self._redis):
            return _transaction(self._redis, drop, key)

    def _watch_live(self, pipe: Pipeline, letter: DeadLetter) -> str | None:
        """The live pointer key of ``letter``'s pair (watched) if it names ``letter``."""
        live_key = self.keys.dead_letter_live(letter.session_id, letter.action)
        pipe.watch(live_key)  # type: ignore[no-untyped-call]
        live_id = cast("str | bytes | None", pipe.get(live_key))
        return live_key if live_id is not None and text(live_id) == letter.id else None

    def purge(self, older_than_s: float | None = None) -> int:
        """Delete every letter (or those whose latest failure is over ``older_than_s`` ago)."""
        top = "+inf" if older_than_s is None else self._clock() - older_than_s
        with redis_errors(self._redis):
            ids = cast(
                "builtins.list[str | bytes]",
                self._redis.zrangebyscore(self.keys.dead_letters(), "-inf", top),
            )
        return sum(self.remove(text(i)) for i in ids)


def _transaction(redis: Redis, func: Callable[[Pipeline], _T], *watches: str) -> _T:
    """``redis.transaction(func, *watches)`` returning ``func``'s value (of the run that won)."""
    value: list[_T] = []

    def run(pipe: Pipeline) -> None:
        value[:] = [func(pipe)]

    redis.transaction(run, *watches)
    return value[0]


def to_json(letter: DeadLetter) -> dict[str, Any]:
    """The letter as plain JSON data (for ``--json`` output)."""
    return cast(dict[str, Any], json.loads(letter.model_dump_json()))
