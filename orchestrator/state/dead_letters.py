"""Dead letters: jobs that failed for good, kept until a person replays or purges them.

A dead letter holds what is needed to understand and replay a job (its action, session, the
task's non-secret arguments, the error and the attempts made), never a secret: task arguments
are session ids and update bodies, which carry no keys. Adding the same letter twice (a
redelivered failure) keeps the first one.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field
from redis import Redis
from redis.client import Pipeline

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys

__all__ = ["DeadLetter", "DeadLetterStore", "to_json"]


class DeadLetter(BaseModel):
    """One job that gave up.

    Attributes:
        id: the task id of the failed job (replays get new task ids).
        task: the task name (``krtc.start``, ``krtc.stop``, ...).
        action: the API action.
        session_id: the session the job worked on.
        args: the task's arguments (no secrets by construction).
        error: ``{kind, status, code, reason, at}`` of the last error.
        attempts: the calls made for this action.
        failed_at: unix seconds.
        app_id, cname, uid: the session's identity, for the operator.
        replays: task ids of the replays made so far.
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


class DeadLetterStore:
    """Dead letters in Redis, under the session store's key prefix."""

    def __init__(self, redis: Redis, *, keys: Keys, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self.keys = keys
        self._clock = clock

    def add(self, letter: DeadLetter) -> bool:
        """Keep ``letter``; false if a letter with its id exists already (nothing changes)."""
        # One transaction, and the index entry added unless present: a failure between the two
        # writes would otherwise leave a letter that no later add() indexes (list and purge
        # could never see it).
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self.keys.dead_letter(letter.id), letter.model_dump_json(), nx=True)
            pipe.zadd(self.keys.dead_letters(), {letter.id: letter.failed_at}, nx=True)
            created, _ = pipe.execute()
        return bool(created)

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
        """Record a replay of the letter (it stays until purged); nothing if there is none."""
        key = self.keys.dead_letter(letter_id)

        # Read-modify-write under WATCH: concurrent replays each keep their task id, and a
        # letter removed meanwhile is not written back (outside the index, for ever).
        def append(pipe: Pipeline) -> None:
            raw = cast("str | bytes | None", pipe.get(key))
            if raw is None:
                return
            letter = DeadLetter.model_validate_json(text(raw))
            updated = letter.model_copy(update={"replays": [*letter.replays, task_id]})
            pipe.multi()
            pipe.set(key, updated.model_dump_json(), xx=True)

        with redis_errors(self._redis):
            self._redis.transaction(append, key)

    def remove(self, letter_id: str) -> bool:
        """Delete one letter; false if there was none."""
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self.keys.dead_letter(letter_id))
            pipe.zrem(self.keys.dead_letters(), letter_id)
            deleted, _ = pipe.execute()
        return bool(deleted)

    def purge(self, older_than_s: float | None = None) -> int:
        """Delete every letter (or those that failed more than ``older_than_s`` ago)."""
        top = "+inf" if older_than_s is None else self._clock() - older_than_s
        with redis_errors(self._redis):
            ids = cast(
                "builtins.list[str | bytes]",
                self._redis.zrangebyscore(self.keys.dead_letters(), "-inf", top),
            )
        return sum(self.remove(text(i)) for i in ids)


def to_json(letter: DeadLetter) -> dict[str, Any]:
    """The letter as plain JSON data (for ``--json`` output)."""
    return cast(dict[str, Any], json.loads(letter.model_dump_json()))
