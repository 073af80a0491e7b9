"""Writes a caller relies on wait until the replicas have them (``WAIT``), or are marked unsure.

Redis replicates asynchronously: a primary killed right after it answered may take its last
writes with it, and Sentinel promotes a replica that never saw them. For the writes a caller
acts on (a stop request and its message, a sid learned from the API, a created session with its
queued start), :meth:`ReplicaAcks.confirm` waits after them until ``min_replicas`` replicas
acknowledge, up to ``timeout_ms``.

``WAIT`` covers the writes of the connection it is sent on, and the replication stream is one
ordered stream: so a small write (:meth:`Keys.ha_barrier`) followed by ``WAIT`` in one pipeline
(one connection, one round trip) covers every write the process made before it, on any pooled
connection, the broker's messages included when the broker is the same Redis.

When too few replicas acknowledge in time the call still succeeds: the write is logged,
counted (``krtc_redis_unreplicated_writes_total``) and its session put in
:meth:`Keys.ha_unsure`, which the reconciler checks (a missing start or stop is queued again).
With ``min_replicas`` unset, one acknowledgement is wanted when the primary has replicas and
none otherwise (then nothing is sent at all); the number of replicas is read with ``INFO
replication`` at most every :data:`REPLICAS_REFRESH_S` seconds, and again after a short wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from redis import Redis
from redis.exceptions import RedisError

from orchestrator.settings import DEFAULT_REDIS_ACK_TIMEOUT_MS, Settings
from orchestrator.state.keys import Keys

__all__ = ["REPLICAS_REFRESH_S", "UNREPLICATED_KINDS", "ReplicaAcks"]

log = logging.getLogger("orchestrator.state")

#: Seconds the number of connected replicas is trusted before it is read again.
REPLICAS_REFRESH_S = 5.0
#: The ``kind`` label of ``krtc_redis_unreplicated_writes_total``: which write it was.
UNREPLICATED_KINDS = ("create", "stop", "sid")


class ReplicaAcks:
    """Waits for the replicas' acknowledgement of the writes made so far (``WAIT``).

    Args:
        redis: the client the writes were made with (or any client of the same primary).
        keys: the key names.
        min_replicas: acknowledgements wanted; ``None``: 1 when the primary has replicas, else 0.
        timeout_ms: longest wait for them.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        min_replicas: int | None = None,
        timeout_ms: int = DEFAULT_REDIS_ACK_TIMEOUT_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_replicas is not None and min_replicas < 0:
            raise ValueError(f"min_replicas must not be negative, got {min_replicas}")
        if timeout_ms < 1:
            raise ValueError(f"timeout_ms must be positive, got {timeout_ms}")
        self._redis = redis
        self.keys = keys
        self.min_replicas = min_replicas
        self.timeout_ms = timeout_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._replicas: int | None = None
        self._read_at = 0.0

    @classmethod
    def from_settings(cls, redis: Redis, keys: Keys, settings: Settings) -> ReplicaAcks:
        """Acknowledgements as ``KRTC_REDIS_MIN_REPLICAS_ACK`` and ``KRTC_REDIS_ACK_TIMEOUT_MS``
        say."""
        return cls(
            redis,
            keys,
            min_replicas=settings.redis_min_replicas_ack,
            timeout_ms=settings.redis_ack_timeout_ms,
        )

    def needed(self) -> int:
        """The acknowledgements wanted now (reads the replicas' number when it is stale)."""
        if self.min_replicas is not None:
            return self.min_replicas
        with self._lock:
            age_s = self._clock() - self._read_at
            if self._replicas is not None and age_s < REPLICAS_REFRESH_S:
                return min(1, self._replicas)
        replicas = self._connected_replicas()
        with self._lock:
            self._replicas, self._read_at = replicas, self._clock()
        return min(1, replicas)

    def confirm(self, kind: str, session_ids: list[str]) -> bool:
        """Wait until the writes made so far are on enough replicas.

        Never raises: a Redis error here means the write itself went through; it is then
        treated as unacknowledged (logged, counted, and the sessions marked unsure when
        Redis takes that).

        Args:
            kind: which write it was (one of :data:`UNREPLICATED_KINDS`), for the log and the
                metric.
            session_ids: the sessions it changed.

        Returns:
            Whether enough replicas acknowledged (true when none is wanted).
        """
        try:
            needed = self.needed()
            if needed == 0:
                return True
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(self.keys.ha_barrier())
            pipe.execute_command("WAIT", needed, self.timeout_ms)  # type: ignore[no-untyped-call]
            _, acked = pipe.execute()
        except RedisError as exc:
            log.warning(
                "%s of session(s) %s: could not wait for the replicas (%s)",
                kind,
                ", ".join(session_ids),
                type(exc).__name__,
            )
            self._forget_replicas()
            return False
        if int(acked) >= needed:
            return True
        self._forget_replicas()
        log.warning(
            "%s of session(s) %s: %d of %d replica(s) acknowledged within %d ms; the write is "
            "unsure until the reconciler has checked it",
            kind,
            ", ".join(session_ids),
            int(acked),
            needed,
            self.timeout_ms,
        )
        self._mark_unsure(kind, session_ids)
        return False

    def _mark_unsure(self, kind: str, session_ids: list[str]) -> None:
        try:
            now = cast("tuple[int, int]", self._redis.time())
            pipe = self._redis.pipeline(transaction=False)
            if session_ids:
                pipe.zadd(self.keys.ha_unsure(), dict.fromkeys(session_ids, float(now[0])))
            pipe.hincrby(self.keys.metrics_redis_ha(), f"unreplicated|{kind}", 1)
            pipe.execute()
        except RedisError as exc:
            log.warning("could not mark the unsure write (%s)", type(exc).__name__)

    def _forget_replicas(self) -> None:
        with self._lock:
            self._replicas = None

    def _connected_replicas(self) -> int:
        info = cast("dict[str, Any]", self._redis.info("replication"))
        if info.get("role") != "master":
            return 0
        return int(info.get("connected_slaves", 0))
