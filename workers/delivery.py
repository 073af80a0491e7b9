"""A delivery counter that ends kill loops (pitfall: ``task_reject_on_worker_lost``).

A task whose run kills its worker process is redelivered; one that always does would loop for
ever. Each *redelivered* run of a task message (the broker marks them) counts itself in Redis
before it starts and clears the count when it ends (however it ends); once a message's runs have
died :data:`MAX_DELIVERIES` times (the first delivery and the redeliveries), it is failed to the
dead letters instead of being run again. A first delivery costs no Redis round trip.
"""

from __future__ import annotations

from redis import Redis

from orchestrator.jobs import JobFailedError

__all__ = ["MAX_DELIVERIES", "DeliveryCounter", "worker_lost"]

#: Runs of one task message that may die before it is given up.
MAX_DELIVERIES = 3
_TTL_S = 86400


def worker_lost(action: str, session_id: str, died: int, at: float) -> JobFailedError:
    """The failure of a job whose runs killed their workers ``died`` times: not run again."""
    return JobFailedError(
        action,
        session_id,
        {
            "kind": "worker_lost",
            "reason": f"the {action}'s worker died {died} times running it; not run again",
            "at": at,
        },
    )


class DeliveryCounter:
    """Counts runs per (task id, retry number) under ``{prefix}:delivery:``."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, task_id: str, retries: int) -> str:
        return f"{self._prefix}:delivery:{task_id}:{retries}"

    def begin(self, task_id: str, retries: int) -> int:
        """Count a run starting; returns how many runs of this message have started."""
        key = self._key(task_id, retries)
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, _TTL_S)
        count, _ = pipe.execute()
        return int(count)

    def end(self, task_id: str, retries: int) -> None:
        """The run ended (success, retry scheduled or failure): forget the count."""
        self._redis.delete(self._key(task_id, retries))
