"""A per-appId request rate limit shared by every worker through Redis.

The limit is a GCRA (generic cell rate algorithm), the arithmetic of a token bucket kept as one
number per appId: the *theoretical arrival time* (TAT) of its next call. With ``rate`` calls per
second the calls are ``1/rate`` apart on average, and up to ``burst`` may go at once after a
quiet spell. Over any window of ``D`` seconds at most ``rate × D + burst`` calls go.

A call to :meth:`RateLimiter.acquire` *reserves* a slot: it returns how long the caller must wait
before its call may go (0: now), and the next caller is placed after it. Callers that wait that
long and then call never overshoot the limit, however many workers share it. A caller that would
rather not wait long (a job that prefers a retry to holding a worker thread) passes
``max_wait_s``: a wait longer than that reserves nothing, so no slot is wasted.

The check and the update are one Lua script, atomic in Redis, and the time is Redis' own
(``TIME``), so workers on machines whose clocks disagree still share one schedule. The key
expires once the appId has been idle long enough to have its full burst back.
"""

from __future__ import annotations

import math
from typing import cast

from redis import Redis
from redis.commands.core import Script

from orchestrator.settings import DEFAULT_RATE_LIMIT_BURST, Settings
from orchestrator.state import Keys
from orchestrator.state.backend import redis_errors

__all__ = ["ACQUIRE", "RateLimiter"]

_US = 1_000_000

#: Reserve the next call of an appId, unless its wait would be longer than allowed.
ACQUIRE = """
-- KEYS[1] the appId's limit   {p}:ratelimit:{appId}   string: TAT, unix microseconds
-- ARGV[1] emission interval (1 / rate), microseconds
-- ARGV[2] burst: calls that may go at once
-- ARGV[3] longest wait to reserve, microseconds; negative: reserve whatever the wait
-- Returns the wait before the call may go, microseconds (0: now). A wait above ARGV[3] (when
-- ARGV[3] >= 0) reserved nothing: the caller should come back after it.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
local wait = next_tat - burst * interval - now
if wait < 0 then wait = 0 end
if max_wait >= 0 and wait > max_wait then return wait end
-- Once the TAT is in the past the appId has its full burst back: the key can go.
local ttl_ms = math.ceil((next_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return wait
"""


class RateLimiter:
    """A rate limit per appId, shared through Redis by every process that uses the same keys.

    Args:
        redis: the Redis client.
        keys: the key names (the deployment's prefix).
        rate_per_s: calls per second allowed per appId; 0 turns the limit off (``acquire``
            always returns 0 and never touches Redis).
        burst: calls per appId that may go at once after a quiet spell (at least 1).

    Raises:
        ValueError: a negative rate or a burst below 1.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys,
        rate_per_s: float,
        burst: int = DEFAULT_RATE_LIMIT_BURST,
    ) -> None:
        if rate_per_s < 0 or not math.isfinite(rate_per_s):
            raise ValueError(f"rate must be a finite number >= 0, not {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self._redis = redis
        self._keys = keys
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._script: Script = redis.register_script(ACQUIRE)

    @classmethod
    def from_settings(cls, settings: Settings, redis: Redis) -> RateLimiter:
        """The limiter of ``settings`` (``rate_limit_per_app``, ``rate_limit_burst``)."""
        return cls(
            redis,
            keys=Keys(settings.redis_prefix),
            rate_per_s=settings.rate_limit_per_app,
            burst=settings.rate_limit_burst,
        )

    @property
    def is_enabled(self) -> bool:
        """Whether calls are limited at all (a rate above 0)."""
        return self.rate_per_s > 0

    def acquire(self, app_id: str, *, max_wait_s: float | None = None) -> float:
        """Reserve the next call of ``app_id``.

        Args:
            app_id: the appId the call is for.
            max_wait_s: reserve only if the wait is at most this long; ``None``: always.

        Returns:
            seconds to wait before the call may go (0: now). With ``max_wait_s``, a longer wait
            means nothing was reserved: ask again after it.

        Raises:
            StateUnavailableError: Redis cannot be reached.
            StateBackendError: Redis refused the script.
        """
        if not self.is_enabled:
            return 0.0
        interval_us = max(1, round(_US / self.rate_per_s))
        max_wait_us = -1 if max_wait_s is None else max(0, math.floor(max_wait_s * _US))
        with redis_errors(self._redis):
            wait_us = self._script(
                keys=[self._keys.rate_limit(app_id)],
                args=[interval_us, self.burst, max_wait_us],
            )
        return int(cast(int, wait_us)) / _US
