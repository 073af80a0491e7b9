"""The budget of one run of a job: its own attempts and waits, not the session's.

A run is one start, one stop request or one update: one task message, retried under the same
task id (a Celery retry republishes it with that id; a redelivery after a crash keeps it). Its
attempts are counted here, under the run's id, so that the fifth layout update of a session
gets the full retry budget however many calls the earlier ones made, and each stop request
gets the stop's large budget (spec D13). The session keeps its cumulative ``attempts:<action>``
counters for people (``krtc-rec show``); they decide nothing.

A run also remembers when it first waited for something (``wait:<what>``: the sid of a start
still under way, the end of a stopped recording), on the caller's clock (Redis' time), so that a
wait is bounded by time, not by the number of looks.

One hash per run, ``{p}:run:{run id}``, expiring :data:`DEFAULT_RUN_TTL_S` after its last
change; the job's end deletes it (:meth:`RunBudgets.forget`).
"""

from __future__ import annotations

from typing import cast

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys

__all__ = ["DEFAULT_RUN_TTL_S", "RunBudgets"]

#: Seconds a run's counters are kept after their last change (longer than any job's budget:
#: a stop's 200 attempts at the largest backoff take about 3 hours).
DEFAULT_RUN_TTL_S = 86400

_ATTEMPTS = "attempts"
_WAIT_PREFIX = "wait:"


class RunBudgets:
    """Per-run attempt counters and wait start times in Redis.

    Single-key changes in ``MULTI`` transactions; like every write of the state package they
    are not retried after a connection error (a retried ``HINCRBY`` could count twice).

    Args:
        redis: the client.
        keys: the key names (the session store's).
        ttl_s: seconds a run's hash is kept after its last change.
    """

    def __init__(self, redis: Redis, *, keys: Keys, ttl_s: int = DEFAULT_RUN_TTL_S) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be at least 1, got {ttl_s}")
        self._redis = redis
        self.keys = keys
        self.ttl_s = ttl_s

    def count_attempt(self, run_id: str) -> int:
        """Count one attempt (one API call) of the run; returns its attempts so far, from 1.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        key = self.keys.run(run_id)
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hincrby(key, _ATTEMPTS, 1)
            pipe.expire(key, self.ttl_s)
            count, _ = pipe.execute()
        return int(count)

    def attempts(self, run_id: str) -> int:
        """The attempts the run has made so far (0: none, or forgotten)."""
        with redis_errors(self._redis):
            raw = cast("str | bytes | None", self._redis.hget(self.keys.run(run_id), _ATTEMPTS))
        return 0 if raw is None else int(text(raw))

    def waiting_since(self, run_id: str, what: str, now: float) -> float:
        """When the run first waited for ``what``: ``now`` the first time it is asked.

        Args:
            run_id: the run.
            what: what it waits for (``sid``, ``confirm``).
            now: the time now, unix seconds on the deployment's clock (Redis').

        Returns:
            The first time recorded for ``what`` (unix seconds).

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        key = self.keys.run(run_id)
        field = _WAIT_PREFIX + what
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hsetnx(key, field, repr(now))
            pipe.hget(key, field)
            pipe.expire(key, self.ttl_s)
            _, since, _ = pipe.execute()
        return float(text(since))

    def forget(self, run_id: str) -> None:
        """Delete the run's counters (the run has ended)."""
        with redis_errors(self._redis):
            self._redis.delete(self.keys.run(run_id))
