"""The Lua scripts of the event outbox: take, acknowledge, retry, give up, replay.

The outbox is a sorted set of *subjects* (a session, a schedule) scored by when the head of the
subject's queue may be taken (Redis ms): due, the end of a lease, or the next retry. Only the
head of a queue is ever in flight, so a subject's events arrive in order; an acknowledged or
given-up head makes the next one due at once. A lease's score is its token, as in the alert
outbox (:mod:`orchestrator.alerts.scripts`): a lane whose lease ran out and was taken by another
can no longer retry or give up the event. Times are Redis's (``TIME``), never a host's.
"""

from __future__ import annotations

from orchestrator.state.lua import NOW_MS

__all__ = ["PEEK", "TAKE", "ACK", "RETRY", "GIVE_UP", "REPLAY"]

#: The subject due longest ago, if any (not taken yet: see TAKE).
PEEK = (
    NOW_MS
    + """
-- KEYS[1] the outbox zset (subject -> ms when its head may be taken)
-- Returns {subject, score} of the subject due longest ago, else {'', ms until the next one is
-- due ('' when the outbox is empty)}.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1)
if due[1] then return {due[1], due[2]} end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next[2] then return {'', tostring(math.max(tonumber(next[2]) - now, 0))} end
return {'', ''}
"""
)

#: Lease the head of a subject seen by PEEK, unless someone took it meanwhile.
TAKE = (
    NOW_MS
    + """
-- KEYS[1] the outbox zset, KEYS[2] the subject's queue list
-- ARGV[1] subject, ARGV[2] the score PEEK saw, ARGV[3] lease ms
-- Returns {event id, lease token} when taken; {'', ''} when someone else took it or the queue
-- is empty (then the subject leaves the outbox).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) ~= tonumber(ARGV[2]) then return {'', ''} end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {'', ''}
end
local token = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], token, ARGV[1])
return {head, tostring(token)}
"""
)

# After the head left the queue: the next one is due now, or the subject leaves the outbox.
_NEXT = """
local function next_head(now)
  if redis.call('LLEN', KEYS[2]) > 0 then
    redis.call('ZADD', KEYS[1], now, ARGV[1])
  else
    redis.call('ZREM', KEYS[1], ARGV[1])
  end
end
"""

#: The receiver accepted the head: forget it, make the next one due.
ACK = (
    NOW_MS
    + _NEXT
    + """
-- KEYS[1] the outbox zset, KEYS[2] the subject's queue, KEYS[3] the event's delivery hash
-- ARGV[1] subject, ARGV[2] event id
-- Returns 1 if the event was the head (whoever holds the lease now), else 0.
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[2] then return 0 end
local now = now_ms()
redis.call('LPOP', KEYS[2])
redis.call('HSET', KEYS[3], 'state', 'delivered', 'updated_ms', now)
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('HDEL', KEYS[3], 'error')
next_head(now)
return 1
"""
)

#: An attempt failed: the head is due again after a delay, if the lease is still the caller's.
RETRY = (
    NOW_MS
    + """
-- KEYS[1] the outbox zset, KEYS[2] the event's delivery hash
-- ARGV[1] subject, ARGV[2] the lease token, ARGV[3] delay ms, ARGV[4] the error
-- Returns 1 when rescheduled, 0 when the lease was lost.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
local now = now_ms()
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
redis.call('HSET', KEYS[2], 'error', ARGV[4], 'updated_ms', now)
return 1
"""
)

#: Retries are spent: the head becomes a dead letter, the next one is due.
GIVE_UP = (
    NOW_MS
    + _NEXT
    + """
-- KEYS[1] the outbox zset, KEYS[2] the subject's queue, KEYS[3] the event's delivery hash,
-- KEYS[4] the dead letters zset
-- ARGV[1] subject, ARGV[2] event id, ARGV[3] the lease token, ARGV[4] the error
-- Returns 1 when given up, 0 when the lease was lost.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) ~= tonumber(ARGV[3]) then return 0 end
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[2] then return 0 end
local now = now_ms()
redis.call('LPOP', KEYS[2])
redis.call('HSET', KEYS[3], 'state', 'dead', 'error', ARGV[4], 'updated_ms', now)
redis.call('HINCRBY', KEYS[3], 'attempts', 1)
redis.call('ZADD', KEYS[4], now, ARGV[2])
next_head(now)
return 1
"""
)

#: Queue an event again (same id), at the end of its subject's queue.
REPLAY = (
    NOW_MS
    + """
-- KEYS[1] the outbox zset, KEYS[2] the subject's queue, KEYS[3] the event's delivery hash,
-- KEYS[4] the dead letters zset, KEYS[5] the event record
-- ARGV[1] subject, ARGV[2] event id
-- Returns 'missing' (no such event), 'queued' (it still is: nothing changed) or 'replayed'.
if redis.call('EXISTS', KEYS[5]) == 0 then return 'missing' end
if redis.call('LPOS', KEYS[2], ARGV[2]) then return 'queued' end
local now = now_ms()
redis.call('HSET', KEYS[3], 'state', 'pending', 'attempts', 0, 'queued_ms', now,
  'updated_ms', now)
redis.call('HDEL', KEYS[3], 'error')
redis.call('EXPIRE', KEYS[3], math.max(redis.call('TTL', KEYS[5]), 1))
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1])
return 'replayed'
"""
)
