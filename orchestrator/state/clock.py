"""One clock for the whole deployment: Redis' ``TIME``, carried forward with a monotonic clock.

Every time the orchestrator compares with another process (a session's age against its max
duration, a scheduled start against its due time, a claim's lease, an alert's reminder, an
orphan's horizon) both times must come from the same clock. Machines' wall clocks drift apart by
seconds (VMs, containers without tight NTP), so the clock that decides is the Redis server's:

- :meth:`RedisClock.sync` reads ``TIME`` once and remembers the offset between it and this
  process's ``time.monotonic()`` (the midpoint of the round trip, so the error is at most half
  of it, well under a millisecond on a LAN);
- :meth:`RedisClock.__call__` is then ``monotonic() + offset``: no round trip per call, and
  immune to this host's wall clock being set or slewed;
- the offset is read again every ``resync_s`` seconds (monotonic clocks drift by parts per
  million), and whenever a read fails the last offset is kept.

A sync also measures this host's **skew**: its wall clock minus Redis' time. The clock itself
does not use the wall clock at all; the skew is reported (:mod:`orchestrator.skew`) because
libraries that do (Celery's ETAs, kombu's visibility timeout sweep) are affected by it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import cast

from redis import Redis

from orchestrator.errors import StateError
from orchestrator.state.backend import redis_errors

__all__ = ["DEFAULT_RESYNC_S", "Clock", "RedisClock", "redis_time"]

#: Seconds between two reads of Redis ``TIME`` by one clock.
DEFAULT_RESYNC_S = 60.0

#: Unix seconds: what every ``clock=`` parameter of the orchestrator takes.
Clock = Callable[[], float]

log = logging.getLogger("orchestrator.clock")


def redis_time(redis: Redis) -> float:
    """Redis' own time, unix seconds (one ``TIME`` round trip).

    Raises:
        StateUnavailableError: Redis is unreachable.
    """
    with redis_errors(redis):
        seconds, micros = cast("tuple[int, int]", redis.time())
    return int(seconds) + int(micros) / 1_000_000


class RedisClock:
    """Unix time as the Redis server tells it, for every process that shares that server.

    Args:
        redis: the client of the deployment's Redis.
        resync_s: seconds between two reads of ``TIME``.
        monotonic: the local interval clock (injectable for tests).
        wall: the local wall clock, used only to measure :attr:`skew_s`.
        on_sync: called with the skew (seconds) after each successful sync.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        resync_s: float = DEFAULT_RESYNC_S,
        monotonic: Clock = time.monotonic,
        wall: Clock = time.time,
        on_sync: Callable[[float], None] | None = None,
    ) -> None:
        if resync_s <= 0:
            raise ValueError(f"resync_s must be positive, got {resync_s}")
        self._redis = redis
        self.resync_s = resync_s
        self._monotonic = monotonic
        self._wall = wall
        self.on_sync = on_sync
        self._lock = threading.Lock()
        self._offset: float | None = None
        self._synced_at = 0.0
        #: This host's wall clock minus Redis' time at the last sync (seconds), if synced.
        self.skew_s: float | None = None

    def __call__(self) -> float:
        """Now, unix seconds, on Redis' clock.

        Raises:
            StateUnavailableError: Redis has never answered this clock (later failures keep
                the last offset).
        """
        offset = self._offset
        if offset is None or self._monotonic() - self._synced_at >= self.resync_s:
            offset = self._refresh()
        return self._monotonic() + offset

    def sync(self) -> float:
        """Read Redis ``TIME`` now; returns the skew of this host's wall clock (seconds).

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        before = self._monotonic()
        wall_before = self._wall()
        now = redis_time(self._redis)
        after = self._monotonic()
        wall_after = self._wall()
        midpoint = (before + after) / 2
        skew = (wall_before + wall_after) / 2 - now
        with self._lock:
            self._offset = now - midpoint
            self._synced_at = after
            self.skew_s = skew
        if self.on_sync is not None:
            self.on_sync(skew)
        return skew

    def _refresh(self) -> float:
        try:
            self.sync()
        except StateError:
            if self._offset is None:
                raise
            # Keep counting from the last offset; try again after a pause, not on every call.
            with self._lock:
                self._synced_at = self._monotonic() - self.resync_s + min(5.0, self.resync_s)
            log.warning("could not read Redis TIME; the clock keeps its last offset")
        assert self._offset is not None
        return self._offset
