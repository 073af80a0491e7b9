"""The Lua scripts of the session store: every change that touches more than one key.

Redis runs a script atomically, so concurrent producers, workers and the reconciler never see
(or make) a half-done change. Each script lists its KEYS and ARGV below. Phase names and field
names come from Python in the arguments where they matter, so the enums stay the one source of
truth. Parameters that are not keys are passed as one JSON object (``cjson`` in Redis).

History entries written by the scripts are JSON objects ``{at, what, why, source}``; Redis'
``cjson`` prints numbers with 14 significant digits, so ``at`` keeps 0.1 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.commands.core import Script

__all__ = [
    "CREATE",
    "TRANSITION",
    "REQUEST_STOP",
    "RECORD_ATTEMPT",
    "COMPARE_AND_DELETE",
    "RELEASE_RAW",
    "Scripts",
]

# Shared by TRANSITION and REQUEST_STOP, which use the same first four KEYS.
_HELPERS = """
local function member(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

local function push_history(entry, limit)
  redis.call('RPUSH', KEYS[2], cjson.encode(entry))
  redis.call('LTRIM', KEYS[2], -limit, -1)
end

-- The session has just reached a final phase: it no longer counts as active, its identity is
-- released if (and only if) it still names this session, and it expires after the retention.
local function finish(id, retention)
  redis.call('SREM', KEYS[3], id)
  if KEYS[4] and redis.call('GET', KEYS[4]) == id then
    redis.call('DEL', KEYS[4])
  end
  redis.call('EXPIRE', KEYS[1], retention)
  redis.call('EXPIRE', KEYS[2], retention)
end

-- A history list written after the session finished keeps the session's expiry.
local function keep_history_expiry()
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
"""

#: Create a session unless its idempotency key or its identity is taken (spec D11).
CREATE = """
-- KEYS[1] session hash        {p}:session:{id}
-- KEYS[2] history list        {p}:session:{id}:history
-- KEYS[3] identity            {p}:identity:{appId}:{cname}:{uid}
-- KEYS[4] active set          {p}:active
-- KEYS[5] sessions zset       {p}:sessions
-- KEYS[6] idempotency key     {p}:idem:{key}            (only when the caller gave a key)
-- KEYS[last] a queue's list   (only with an outbox message: pushed when, and only if, created)
-- ARGV[1] the new session id
-- ARGV[2] creation time, unix seconds (the zset score)
-- ARGV[3] time to live of the idempotency key, seconds
-- ARGV[4] the first history entry (JSON)
-- ARGV[5] '1' when KEYS[6] is an idempotency key, else '0'
-- ARGV[6] the outbox message to push ('' for none)
-- ARGV[7..] field, value, field, value, ... of the session hash
-- Returns {id, outcome}: outcome 'idempotent' (the idempotency key names a session: its id),
-- 'active' (KEYS[3] names an unfinished session: its id) or 'created' (ARGV[1]).
local idem = nil
if ARGV[5] == '1' then idem = KEYS[6] end
local outbox = nil
if ARGV[6] ~= '' then outbox = KEYS[#KEYS] end
if idem then
  local existing = redis.call('GET', idem)
  if existing then return {existing, 'idempotent'} end
end
local existing = redis.call('GET', KEYS[3])
if existing then return {existing, 'active'} end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('session id ' .. ARGV[1] .. ' already exists')
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('SET', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[2], ARGV[1])
if idem then
  redis.call('SET', idem, ARGV[1], 'EX', ARGV[3])
end
if outbox then
  redis.call('LPUSH', outbox, ARGV[6])
end
return {ARGV[1], 'created'}
"""

#: Compare-and-set on the phase, with field updates and a history entry.
TRANSITION = (
    _HELPERS
    + """
-- KEYS[1] session hash        KEYS[2] history list        KEYS[3] active set
-- KEYS[4] identity            (needed only when the new phase is final)
-- ARGV[1] session id
-- ARGV[2] JSON {
--   to: new phase (absent: keep the phase),
--   allowed: phases the session may be in ([]: any),
--   set: {field: value} to write (always holds updated_at),
--   del: [field] to remove (fields set to None),
--   incr: an attempts counter field to bump by one (absent: none),
--   entry: {at, what, why, source} to append to the history (absent: none); when the phase
--          changes, 'phase <old> -> <new>' is put in front of what,
--   limit: history entries to keep, retention: seconds a finished session is kept,
--   finished: the final phases }
-- A session in a final phase never leaves it: a change of phase is refused, field updates are
-- not. Returns {applied 1/0, phase found, HGETALL after}; {-1, '', {}} if there is no session.
local p = cjson.decode(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, '', {}} end
local found = redis.call('HGET', KEYS[1], 'phase')
local was_finished = member(p.finished, found)
local to = p.to
if to == found then to = nil end
if (#p.allowed > 0 and not member(p.allowed, found)) or (to and was_finished) then
  return {0, found, redis.call('HGETALL', KEYS[1])}
end
local fields = {}
for name, value in pairs(p.set) do
  fields[#fields + 1] = name
  fields[#fields + 1] = value
end
if to then
  fields[#fields + 1] = 'phase'
  fields[#fields + 1] = to
  fields[#fields + 1] = 'phase_since'
  fields[#fields + 1] = p.set.updated_at
end
redis.call('HSET', KEYS[1], unpack(fields))
if #p.del > 0 then redis.call('HDEL', KEYS[1], unpack(p.del)) end
if p.incr then redis.call('HINCRBY', KEYS[1], p.incr, 1) end
if p.entry then
  local entry = p.entry
  if to then
    local change = 'phase ' .. found .. ' -> ' .. to
    if entry.what ~= '' then change = change .. '; ' .. entry.what end
    entry.what = change
  elseif entry.what == '' then
    entry.what = 'note'
  end
  push_history(entry, p.limit)
end
if to and member(p.finished, to) then
  finish(ARGV[1], p.retention)
elseif was_finished and p.entry then
  keep_history_expiry()
end
return {1, found, redis.call('HGETALL', KEYS[1])}
"""
)

#: Record that the recording should stop; cancel it outright if the start was never sent.
REQUEST_STOP = (
    _HELPERS
    + """
-- KEYS[1] session hash        KEYS[2] history list        KEYS[3] active set
-- KEYS[4] identity
-- ARGV[1] session id
-- ARGV[2] JSON {
--   now: updated_at value, at: history time, why, source,
--   pending: the phase in which the start was not sent yet, stopped: the phase to cancel to,
--   desired: the desired value meaning "stopped",
--   limit, retention, finished: as for TRANSITION }
-- Returns {outcome, phase found, HGETALL after}; outcome is 'missing' (no session), 'finished'
-- (already in a final phase: nothing changed), 'cancelled' (was pending: now stopped),
-- 'already_requested' (desired was already stopped: nothing changed) or 'requested'.
local p = cjson.decode(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', '', {}} end
local state = redis.call('HMGET', KEYS[1], 'phase', 'desired')
local found, desired = state[1], state[2]
if member(p.finished, found) then
  return {'finished', found, redis.call('HGETALL', KEYS[1])}
end
local entry = {at = p.at, why = p.why, source = p.source}
local desired_change = 'desired ' .. tostring(desired) .. ' -> ' .. p.desired
if found == p.pending then
  redis.call('HSET', KEYS[1], 'phase', p.stopped, 'desired', p.desired, 'updated_at', p.now,
    'phase_since', p.now)
  entry.what = 'phase ' .. found .. ' -> ' .. p.stopped .. '; ' .. desired_change
    .. ' (cancelled before the start was sent)'
  push_history(entry, p.limit)
  finish(ARGV[1], p.retention)
  return {'cancelled', found, redis.call('HGETALL', KEYS[1])}
end
if desired == p.desired then
  return {'already_requested', found, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'desired', p.desired, 'updated_at', p.now)
entry.what = desired_change
push_history(entry, p.limit)
return {'requested', found, redis.call('HGETALL', KEYS[1])}
"""
)

#: Count one attempt of an action, without creating a stray hash for a missing session.
RECORD_ATTEMPT = """
-- KEYS[1] session hash
-- ARGV[1] the counter field (attempts:<action>)
-- ARGV[2] updated_at value
-- Returns the new count, or -1 if there is no session.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2])
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
"""

#: Delete keys that still hold an expected value (never someone else's).
COMPARE_AND_DELETE = """
-- KEYS[1..n] string keys
-- ARGV[1] the value each key must still hold to be deleted
-- Returns the number of keys deleted.
local deleted = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    deleted = deleted + redis.call('DEL', key)
  end
end
return deleted
"""

#: Mark a session failed and free its identity without decoding it (``krtc-rec repair``).
RELEASE_RAW = """
-- KEYS[1] session hash        {p}:session:{id}
-- KEYS[2] history list        {p}:session:{id}:history
-- KEYS[3] active set          {p}:active
-- KEYS[4] identity            {p}:identity:{appId}:{cname}:{uid}   (absent when not known)
-- ARGV[1] session id
-- ARGV[2] JSON {
--   now: the updated_at / phase_since value, failed: the phase to set,
--   phases: every phase this code knows, finished: the final phases (kept as they are),
--   last_error: the last_error value (JSON text), entry: {at, what, why, source} to append,
--   limit: history entries to keep, retention: seconds the record is kept from now }
-- Writes only the named fields, so it works on a record that does not decode (it never reads
-- the others). The identity is deleted only if it still names this session.
-- Returns {found 1/0, phase found ('' if absent), removed from active 1/0, identity deleted 1/0}.
local p = cjson.decode(ARGV[2])
local removed = redis.call('SREM', KEYS[3], ARGV[1])
local released = 0
if KEYS[4] and redis.call('GET', KEYS[4]) == ARGV[1] then
  released = redis.call('DEL', KEYS[4])
end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', removed, released} end
local found = redis.call('HGET', KEYS[1], 'phase') or ''
local shown = 'unreadable'
for _, v in ipairs(p.phases) do
  if v == found then shown = found end
end
local entry = p.entry
local finished = false
for _, v in ipairs(p.finished) do
  if v == found then finished = true end
end
if finished then
  redis.call('HSET', KEYS[1], 'updated_at', p.now, 'last_error', p.last_error)
else
  redis.call('HSET', KEYS[1], 'phase', p.failed, 'phase_since', p.now, 'updated_at', p.now,
    'last_error', p.last_error)
  entry.what = 'phase ' .. shown .. ' -> ' .. p.failed .. '; ' .. entry.what
end
redis.call('RPUSH', KEYS[2], cjson.encode(entry))
redis.call('LTRIM', KEYS[2], -p.limit, -1)
redis.call('EXPIRE', KEYS[1], p.retention)
redis.call('EXPIRE', KEYS[2], p.retention)
return {1, found, removed, released}
"""


@dataclass(frozen=True)
class Scripts:
    """The scripts, registered on one client (``EVALSHA``, loaded again after a flush)."""

    create: Script
    transition: Script
    request_stop: Script
    record_attempt: Script
    compare_and_delete: Script

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        """Register every script on ``client``."""
        return cls(
            create=client.register_script(CREATE),
            transition=client.register_script(TRANSITION),
            request_stop=client.register_script(REQUEST_STOP),
            record_attempt=client.register_script(RECORD_ATTEMPT),
            compare_and_delete=client.register_script(COMPARE_AND_DELETE),
        )
