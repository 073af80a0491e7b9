"""Workers' heartbeats: each running worker notes, every few seconds, that it is alive.

Readiness checks (``GET /readyz`` of the HTTP API, health checks) ask "was a worker seen in the
last minute?" without a round of Celery pings. A heartbeat is the worker's name and Redis' time
(``TIME`` inside the script), so the age is measured on the deployment's one clock. Entries of
workers gone for good are pruned by :meth:`WorkerHeartbeats.seen`.
"""

from __future__ import annotations

from typing import cast

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys

__all__ = ["HEARTBEAT_EVERY_S", "FORGET_AFTER_S", "WorkerHeartbeats"]

#: Seconds between two heartbeats of a worker.
HEARTBEAT_EVERY_S = 15.0
#: Seconds after which a silent worker's entry is deleted.
FORGET_AFTER_S = 3600.0

_BEAT = """
-- KEYS[1] heartbeat hash; ARGV[1] worker name
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
return 1
"""

_SEEN = """
-- KEYS[1] heartbeat hash; ARGV[1] seconds within which a heartbeat counts, ARGV[2] seconds
-- after which an entry is deleted
-- Returns {redis now, names seen within ARGV[1]...}
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local seen = {tostring(now)}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local age = now - tonumber(all[i + 1])
  if age <= tonumber(ARGV[1]) then table.insert(seen, all[i]) end
  if age > tonumber(ARGV[2]) then redis.call('HDEL', KEYS[1], all[i]) end
end
return seen
"""


class WorkerHeartbeats:
    """The heartbeats of a deployment's workers, in Redis."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self.keys = keys
        self._beat = redis.register_script(_BEAT)
        self._seen = redis.register_script(_SEEN)

    def beat(self, worker: str) -> None:
        """Note that ``worker`` is alive now."""
        with redis_errors(self._redis):
            self._beat(keys=[self.keys.worker_heartbeats()], args=[worker])

    def seen(self, within_s: float = 60.0) -> list[str]:
        """The workers that beat within ``within_s`` seconds (Redis' clock)."""
        with redis_errors(self._redis):
            reply = cast(
                "list[str | bytes]",
                self._seen(keys=[self.keys.worker_heartbeats()], args=[within_s, FORGET_AFTER_S]),
            )
        return sorted(text(name) for name in reply[1:])
