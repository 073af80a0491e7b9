"""The Lua scripts of the schedule store: each change that must not race is one script.

Due work is a sorted set of members ``start|{occurrence id}`` and ``stop|{occurrence id}``
scored by due time. A tick *claims* due members by moving them to the claimed set, scored by the
end of a lease; the tick *finishes* a member by removing it from the claimed set in the same
script that records the outcome. A member whose lease ends unfinished (the tick's process died)
is claimed again by a later tick; the work it stands for is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.commands.core import Script

from orchestrator.state.events import EMIT

__all__ = ["ScheduleScripts"]

CLAIM = """
-- KEYS[1] due zset, KEYS[2] claimed zset
-- ARGV[1] now, ARGV[2] lease end, ARGV[3] most members to claim
-- Returns the claimed members: due ones first, then those whose lease ran out.
local limit = tonumber(ARGV[3])
local out = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit)
for _, member in ipairs(out) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], ARGV[2], member)
end
if #out < limit then
  local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit - #out)
  for _, member in ipairs(stale) do
    redis.call('ZADD', KEYS[2], ARGV[2], member)
    table.insert(out, member)
  end
end
return out
"""

PLAN = """
-- KEYS[1] occurrence hash, KEYS[2] due zset, KEYS[3] the schedule's occurrences zset,
-- KEYS[4] schedule hash
-- ARGV[1] occurrence id, ARGV[2] planned start, ARGV[3] index, ARGV[4] now,
-- ARGV[5..] occurrence hash field/value pairs
-- Returns 1 when planned, 0 when the occurrence exists already, -1 when the schedule is not
-- active (cancelled meanwhile, or gone).
if redis.call('HGET', KEYS[4], 'state') ~= 'active' then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], 'start|' .. ARGV[1])
if tonumber(redis.call('HGET', KEYS[4], 'planned') or '0') < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[4], 'planned', ARGV[3])
end
redis.call('HSET', KEYS[4], 'updated_at', ARGV[4])
return 1
"""

FINISH = (
    EMIT
    + """
-- KEYS[1] occurrence hash, KEYS[2] claimed zset, KEYS[3] due zset
-- ARGV[1] claimed member to release, ARGV[2] outcome expected now ('' = any),
-- ARGV[3] member to make due ('' = none), ARGV[4] its due time,
-- ARGV[5] the event the outcome emits, JSON (orchestrator.state.events; '' = none),
-- ARGV[6..] occurrence hash field/value pairs to set
-- Returns 1 when applied, 0 when the occurrence had another outcome (the claim is released).
local current = redis.call('HGET', KEYS[1], 'outcome')
if ARGV[2] ~= '' and current ~= ARGV[2] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if #ARGV >= 6 then redis.call('HSET', KEYS[1], unpack(ARGV, 6)) end
if ARGV[3] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3]) end
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[5] ~= '' then
  local ev = cjson.decode(ARGV[5])
  emit_event(ev, ev.type)
end
return 1
"""
)

CANCEL = """
-- KEYS[1] occurrence hash, KEYS[2] due zset, KEYS[3] claimed zset
-- ARGV[1] occurrence id, ARGV[2] now, ARGV[3] reason
-- Returns {what, outcome}: what is 'cancelled' (it had not started), 'stopping' (it had: its
-- stop is due now), 'busy' (its start is being dispatched), 'final' or 'missing'.
local outcome = redis.call('HGET', KEYS[1], 'outcome')
if not outcome then return {'missing', ''} end
local start = 'start|' .. ARGV[1]
local stop = 'stop|' .. ARGV[1]
if outcome == 'scheduled' then
  if redis.call('ZREM', KEYS[2], start) == 0 then return {'busy', outcome} end
  redis.call('HSET', KEYS[1], 'outcome', 'cancelled', 'reason', ARGV[3], 'updated_at', ARGV[2])
  return {'cancelled', 'cancelled'}
end
if outcome == 'started' then
  if redis.call('ZSCORE', KEYS[3], stop) then return {'stopping', outcome} end
  redis.call('ZADD', KEYS[2], ARGV[2], stop)
  redis.call('HSET', KEYS[1], 'end', ARGV[2], 'reason', ARGV[3], 'updated_at', ARGV[2])
  return {'stopping', outcome}
end
return {'final', outcome}
"""

MOVE = """
-- KEYS[1] occurrence hash, KEYS[2] due zset, KEYS[3] the schedule's occurrences zset
-- ARGV[1] occurrence id, ARGV[2] new start, ARGV[3] new end, ARGV[4] now
-- A scheduled occurrence gets a new start and end; a started one a new end (only while its
-- stop is still waiting in the due set).
-- Returns {what, outcome}: what is 'moved', 'ended' (new end only), 'busy', 'final' or
-- 'missing'.
local outcome = redis.call('HGET', KEYS[1], 'outcome')
if not outcome then return {'missing', ''} end
local start = 'start|' .. ARGV[1]
local stop = 'stop|' .. ARGV[1]
if outcome == 'scheduled' then
  if not redis.call('ZSCORE', KEYS[2], start) then return {'busy', outcome} end
  redis.call('ZADD', KEYS[2], ARGV[2], start)
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'start', ARGV[2], 'end', ARGV[3], 'updated_at', ARGV[4])
  return {'moved', outcome}
end
if outcome == 'started' then
  if not redis.call('ZSCORE', KEYS[2], stop) then return {'busy', outcome} end
  redis.call('ZADD', KEYS[2], ARGV[3], stop)
  redis.call('HSET', KEYS[1], 'end', ARGV[3], 'updated_at', ARGV[4])
  return {'ended', outcome}
end
return {'final', outcome}
"""


@dataclass(frozen=True)
class ScheduleScripts:
    """The scripts, registered on one client."""

    claim: Script
    plan: Script
    finish: Script
    cancel: Script
    move: Script

    @classmethod
    def register(cls, redis: Redis) -> ScheduleScripts:
        """Register every script on ``redis`` (loaded on first use, by SHA)."""
        return cls(
            claim=redis.register_script(CLAIM),
            plan=redis.register_script(PLAN),
            finish=redis.register_script(FINISH),
            cancel=redis.register_script(CANCEL),
            move=redis.register_script(MOVE),
        )
