"""The start lane: where queued starts wait, in Redis structures the workers take them from.

A start is an *entry*, ``"{run id} {session id}"``: the run id names the run's budget
(:mod:`orchestrator.state.runs`) and survives its retries, as a Celery task id does. Four
structures under ``{p}:lane:start:``, every time on Redis' clock (``TIME`` inside the scripts):

* ``ready`` (list): entries to run. Producers ``LPUSH`` (the session-create script does it in
  the same step that creates the session); workers take from the right end, so requeued entries
  (``RPUSH``) go first.
* ``inflight`` (sorted set): what a worker took, as ``"{take}:{n}|{entry}"`` (one member per
  delivery, so two deliveries of one entry never acknowledge each other), scored by the time it
  may be given to another worker: the longest a run lasts, plus a margin.
* ``delayed`` (sorted set): entries waiting for their retry, scored by when they are due.
* ``deaths`` (hash): entry -> how many of its deliveries outlived their visibility (their
  worker died or hung); the worker fails the entry to the dead letters past a limit.

Taking is one script that also acknowledges what the worker finished since its last take, so a
busy worker makes one round trip per batch of starts, not three per start as a Celery message
over kombu does (``BRPOP``, the unacked index, the ack). A sweep (any worker, every second)
moves due retries and expired deliveries back to ``ready``. Delivery is at least once: every
start job is idempotent and runs under the session's start lease (:mod:`orchestrator.jobs.start`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.keys import Keys

__all__ = ["LaneEntry", "StartLane", "lane_entry"]

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: Acknowledge finished deliveries, then take up to ARGV[1] entries.
_CYCLE = (
    _NOW_MS
    + """
-- KEYS: ready, inflight, deaths
-- ARGV[1] how many to take, ARGV[2] visibility ms, ARGV[3] this take's id,
-- ARGV[4..] deliveries to acknowledge ("{take}:{n}|{entry}")
for i = 4, #ARGV do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
    local bar = string.find(ARGV[i], '|', 1, true)
    redis.call('HDEL', KEYS[3], string.sub(ARGV[i], bar + 1))
  end
end
local count = tonumber(ARGV[1])
if count < 1 then return {} end
local items = redis.call('RPOP', KEYS[1], count)
if not items then return {} end
local out = {}
for n, entry in ipairs(items) do
  local member = ARGV[3] .. ':' .. n .. '|' .. entry
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), member)
  out[#out + 1] = member
  out[#out + 1] = redis.call('HGET', KEYS[3], entry) or '0'
end
return out
"""
)

#: A delivery that will be tried again later: out of ``inflight``, into ``delayed``.
_RETRY = (
    _NOW_MS
    + """
-- KEYS: inflight, delayed, deaths; ARGV[1] the delivery, ARGV[2] delay ms
local bar = string.find(ARGV[1], '|', 1, true)
local entry = string.sub(ARGV[1], bar + 1)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), entry)
redis.call('HDEL', KEYS[3], entry)
return 1
"""
)

#: Due retries and expired deliveries back to ``ready``; the expired ones count a death.
_SWEEP = (
    _NOW_MS
    + """
-- KEYS: ready, inflight, delayed, deaths; ARGV[1] most entries of each kind, ARGV[2] deaths ttl
local limit = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
for _, entry in ipairs(due) do
  redis.call('ZREM', KEYS[3], entry)
  redis.call('RPUSH', KEYS[1], entry)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
for _, member in ipairs(expired) do
  local bar = string.find(member, '|', 1, true)
  local entry = string.sub(member, bar + 1)
  redis.call('ZREM', KEYS[2], member)
  redis.call('HINCRBY', KEYS[4], entry, 1)
  redis.call('RPUSH', KEYS[1], entry)
end
if #expired > 0 then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[2])) end
return {#due, #expired}
"""
)

#: Deliveries a stopping worker did not run: back to ``ready`` at once, first in line.
_RELEASE = """
-- KEYS: ready, inflight; ARGV: deliveries
local n = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
    local bar = string.find(ARGV[i], '|', 1, true)
    redis.call('RPUSH', KEYS[1], string.sub(ARGV[i], bar + 1))
    n = n + 1
  end
end
return n
"""

#: A delivery that outlived its visibility this many times is given up (dead letter).
DEATHS_TTL_S = 86400


def lane_entry(session_id: str, run_id: str | None = None) -> str:
    """The lane entry of a start of ``session_id`` (a new run id unless given)."""
    return f"{run_id or uuid.uuid4().hex} {session_id}"


@dataclass(frozen=True)
class LaneEntry:
    """One delivery of a start taken from the lane.

    Attributes:
        delivery: the ``inflight`` member (what acknowledges or retries this delivery).
        run_id: the run's id (its budget's key; the same across retries).
        session_id: the session to start.
        deaths: deliveries of this entry that outlived their visibility before this one.
    """

    delivery: str
    run_id: str
    session_id: str
    deaths: int

    @classmethod
    def parse(cls, delivery: str, deaths: int) -> LaneEntry:
        entry = delivery.split("|", 1)[1]
        run_id, _, session_id = entry.partition(" ")
        return cls(delivery, run_id, session_id, deaths)


@dataclass(frozen=True)
class LaneDepth:
    """How many starts wait in each part of the lane."""

    ready: int
    inflight: int
    delayed: int


class StartLane:
    """The start lane's structures under one prefix.

    Args:
        redis: the store's client (``decode_responses=True``).
        keys: the key names.
    """

    def __init__(self, redis: Redis, *, keys: Keys) -> None:
        self._redis = redis
        self.keys = keys
        self.ready_key = keys.start_lane("ready")
        self.inflight_key = keys.start_lane("inflight")
        self.delayed_key = keys.start_lane("delayed")
        self.deaths_key = keys.start_lane("deaths")
        self._cycle = redis.register_script(_CYCLE)
        self._retry = redis.register_script(_RETRY)
        self._sweep = redis.register_script(_SWEEP)
        self._release = redis.register_script(_RELEASE)

    def push(self, session_id: str, run_id: str | None = None) -> str:
        """Queue a start of ``session_id``; returns its run id.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        entry = lane_entry(session_id, run_id)
        with redis_errors(self._redis):
            self._redis.lpush(self.ready_key, entry)
        return entry.partition(" ")[0]

    def cycle(self, take: int, *, visibility_s: float, acks: list[str]) -> list[LaneEntry]:
        """Acknowledge ``acks`` (finished deliveries), then take up to ``take`` entries.

        Raises:
            StateUnavailableError: Redis cannot be reached (nothing was acknowledged or taken,
                or all of it was: a script runs whole or not at all).
        """
        with redis_errors(self._redis):
            flat = self._cycle(
                keys=[self.ready_key, self.inflight_key, self.deaths_key],
                args=[take, max(1, int(visibility_s * 1000)), uuid.uuid4().hex, *acks],
            )
        return [LaneEntry.parse(str(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def wait(self, timeout_s: float) -> bool:
        """Block until ``ready`` holds an entry (or ``timeout_s``); takes nothing.

        ``BLMOVE`` of a list onto its own right end: the entry stays where it was.
        """
        with redis_errors(self._redis):
            # A fractional timeout is valid since Redis 6; redis-py's hint says int.
            moved = self._redis.blmove(
                self.ready_key,
                self.ready_key,
                timeout_s,  # type: ignore[arg-type]
                src="RIGHT",
                dest="RIGHT",
            )
        return moved is not None

    def retry(self, delivery: str, delay_s: float) -> None:
        """Run ``delivery``'s entry again in ``delay_s`` seconds (Redis time).

        Raises:
            StateUnavailableError: Redis cannot be reached (the delivery stays in flight and
                comes back when its visibility ends).
        """
        with redis_errors(self._redis):
            self._retry(
                keys=[self.inflight_key, self.delayed_key, self.deaths_key],
                args=[delivery, max(0, int(delay_s * 1000))],
            )

    def sweep(self, limit: int = 500) -> tuple[int, int]:
        """Due retries and expired deliveries back to ``ready``; returns how many of each."""
        with redis_errors(self._redis):
            due, expired = self._sweep(
                keys=[self.ready_key, self.inflight_key, self.delayed_key, self.deaths_key],
                args=[limit, DEATHS_TTL_S],
            )
        return int(due), int(expired)

    def release(self, deliveries: list[str]) -> int:
        """Put deliveries not run back in ``ready``, first in line; returns how many."""
        if not deliveries:
            return 0
        with redis_errors(self._redis):
            return int(
                self._release(keys=[self.ready_key, self.inflight_key], args=list(deliveries))
            )

    def depth(self) -> LaneDepth:
        """How many starts are ready, in flight and waiting for a retry."""
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=False)
            pipe.llen(self.ready_key)
            pipe.zcard(self.inflight_key)
            pipe.zcard(self.delayed_key)
            ready, inflight, delayed = pipe.execute()
        return LaneDepth(int(ready), int(inflight), int(delayed))
