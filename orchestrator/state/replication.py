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

:class:`ReplicaAcks` does it on a ``redis.Redis`` client (the sync store, workers, the sync
producer), :class:`AsyncReplicaAcks` on a ``redis.asyncio`` one (``AsyncRecorder``): the steps,
the log lines and the metric are one piece of code (:meth:`_Acks._confirm`, a generator of
round trips), which each runs with its own kind of client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Self, TypeVar, cast

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from orchestrator.settings import DEFAULT_REDIS_ACK_TIMEOUT_MS, Settings
from orchestrator.state.keys import Keys

__all__ = ["REPLICAS_REFRESH_S", "UNREPLICATED_KINDS", "AsyncReplicaAcks", "ReplicaAcks"]

log = logging.getLogger("orchestrator.state")

#: Seconds the number of connected replicas is trusted before it is read again.
REPLICAS_REFRESH_S = 5.0
#: The ``kind`` label of ``krtc_redis_unreplicated_writes_total``: which write it was.
UNREPLICATED_KINDS = ("create", "stop", "sid")


_Client = TypeVar("_Client", Redis, AsyncRedis)
_R = TypeVar("_R")

#: One round trip of a confirmation: called with the client, it returns the reply (a
#: ``redis.Redis``) or an awaitable of it (a ``redis.asyncio`` client).
_Call = Callable[[Any], Any]
#: Steps with their I/O left out: yields round trips, is sent their replies (or thrown their
#: errors), returns the outcome.
_Steps = Generator[_Call, Any, _R]


class _Acks(Generic[_Client]):
    """What :class:`ReplicaAcks` and :class:`AsyncReplicaAcks` share: the settings, the
    replicas' number (cached) and the steps of a confirmation, without their I/O (arguments as
    :class:`ReplicaAcks`)."""

    def __init__(
        self,
        redis: _Client,
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
        self._redis: _Client = redis
        self.keys = keys
        self.min_replicas = min_replicas
        self.timeout_ms = timeout_ms
        self._clock = clock
        self._lock = threading.Lock()
        self._replicas: int | None = None
        self._read_at = 0.0

    @classmethod
    def from_settings(cls, redis: _Client, keys: Keys, settings: Settings) -> Self:
        """Acknowledgements as ``KRTC_REDIS_MIN_REPLICAS_ACK`` and ``KRTC_REDIS_ACK_TIMEOUT_MS``
        say."""
        return cls(
            redis,
            keys,
            min_replicas=settings.redis_min_replicas_ack,
            timeout_ms=settings.redis_ack_timeout_ms,
        )

    def _known(self) -> int | None:
        """The acknowledgements wanted now, if known without a read (``None``: the replicas'
        number is stale or was never read)."""
        if self.min_replicas is not None:
            return self.min_replicas
        with self._lock:
            age_s = self._clock() - self._read_at
            if self._replicas is not None and age_s < REPLICAS_REFRESH_S:
                return min(1, self._replicas)
        return None

    def _needed(self) -> _Steps[int]:
        """The acknowledgements wanted now (reads the replicas' number when it is stale)."""
        known = self._known()
        if known is not None:
            return known
        info = cast("dict[str, Any]", (yield _replication_info))
        replicas = int(info.get("connected_slaves", 0)) if info.get("role") == "master" else 0
        with self._lock:
            self._replicas, self._read_at = replicas, self._clock()
        return min(1, replicas)

    def _confirm(self, kind: str, session_ids: list[str]) -> _Steps[bool]:
        """The steps of ``confirm`` (see :meth:`ReplicaAcks.confirm`)."""
        try:
            needed = yield from self._needed()
            if needed == 0:
                return True
            _, acked = yield partial(self._barrier, needed)
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
        try:
            now = cast("tuple[int, int]", (yield _server_time))
            yield partial(self._mark_unsure, kind, session_ids, float(now[0]))
        except RedisError as exc:
            log.warning("could not mark the unsure write (%s)", type(exc).__name__)
        return False

    def _barrier(self, needed: int, redis: _Client) -> Any:
        # One connection, one round trip: WAIT covers every write of the process before it.
        pipe = redis.pipeline(transaction=False)
        pipe.incr(self.keys.ha_barrier())
        pipe.execute_command("WAIT", needed, self.timeout_ms)  # type: ignore[no-untyped-call]
        return pipe.execute()

    def _mark_unsure(self, kind: str, session_ids: list[str], now: float, redis: _Client) -> Any:
        pipe = redis.pipeline(transaction=False)
        if session_ids:
            pipe.zadd(self.keys.ha_unsure(), dict.fromkeys(session_ids, now))
        pipe.hincrby(self.keys.metrics_redis_ha(), f"unreplicated|{kind}", 1)
        return pipe.execute()

    def _forget_replicas(self) -> None:
        with self._lock:
            self._replicas = None


def _replication_info(redis: Redis | AsyncRedis) -> Any:
    return redis.info("replication")


def _server_time(redis: Redis | AsyncRedis) -> Any:
    return redis.time()


class ReplicaAcks(_Acks[Redis]):
    """Waits for the replicas' acknowledgement of the writes made so far (``WAIT``).

    Args:
        redis: the client the writes were made with (or any client of the same primary).
        keys: the key names.
        min_replicas: acknowledgements wanted; ``None``: 1 when the primary has replicas, else 0.
        timeout_ms: longest wait for them.
        clock: monotonic seconds (injectable for tests).
    """

    def needed(self) -> int:
        """The acknowledgements wanted now (reads the replicas' number when it is stale).

        Raises:
            redis.exceptions.RedisError: the number could not be read.
        """
        return self._run(self._needed())

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
        if self._known() == 0:
            # No replica to wait for (the usual case): no steps to run.
            return True
        return self._run(self._confirm(kind, session_ids))

    def _run(self, steps: _Steps[_R]) -> _R:
        step = _advance(steps, None, None)
        while not isinstance(step, _Done):
            step = _advance(steps, *_attempt(step, self._redis))
        return step.value


class AsyncReplicaAcks(_Acks[AsyncRedis]):
    """:class:`ReplicaAcks` on a ``redis.asyncio`` client: the same ``WAIT``, settings, log
    lines, metric and unsure marks, awaited (``AsyncRecorder``'s creates and stops)."""

    async def needed(self) -> int:
        """:meth:`ReplicaAcks.needed`, awaited."""
        return await self._run(self._needed())

    async def confirm(self, kind: str, session_ids: list[str]) -> bool:
        """:meth:`ReplicaAcks.confirm`, awaited (never raises either)."""
        if self._known() == 0:
            return True
        return await self._run(self._confirm(kind, session_ids))

    async def _run(self, steps: _Steps[_R]) -> _R:
        step = _advance(steps, None, None)
        while not isinstance(step, _Done):
            step = _advance(steps, *(await _attempt_async(step, self._redis)))
        return step.value


@dataclass(frozen=True)
class _Done(Generic[_R]):
    """What the steps returned."""

    value: _R


def _advance(steps: _Steps[_R], reply: Any, error: RedisError | None) -> _Call | _Done[_R]:
    """The steps' next round trip, once they have the last one's reply (or error)."""
    try:
        return steps.send(reply) if error is None else steps.throw(error)
    except StopIteration as done:
        return _Done(cast(_R, done.value))


def _attempt(call: _Call, redis: Redis) -> tuple[Any, RedisError | None]:
    try:
        return call(redis), None
    except RedisError as exc:
        return None, exc


async def _attempt_async(call: _Call, redis: AsyncRedis) -> tuple[Any, RedisError | None]:
    try:
        return await call(redis), None
    except RedisError as exc:
        return None, exc
