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

from orchestrator.state.evalsha import HotScript
from orchestrator.state.events import EMIT
from orchestrator.state.pinned import ThreadConnections

__all__ = [
    "CREATE",
    "TRANSITION",
    "REQUEST_STOP",
    "ADOPT_SID",
    "LEASE",
    "RECORD_ATTEMPT",
    "NEXT_SEQUENCE",
    "RECORD_APPLIED",
    "COMPARE_AND_DELETE",
    "RELEASE_RAW",
    "Scripts",
]

# Shared by TRANSITION and REQUEST_STOP, which use the same first four KEYS; with the event
# recorder (orchestrator.state.events), which snapshots KEYS[1].
_HELPERS = (
    EMIT
    + """
local function member(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

local function push_history(entry, limit)
  if redis.call('RPUSH', KEYS[2], cjson.encode(entry)) > limit then
    redis.call('LTRIM', KEYS[2], -limit, -1)
  end
end

-- The session has just reached a final phase: it no longer counts as active, its identity is
-- released if (and only if) it still names this session, and it expires after the retention.
-- Retention: the finished index is always the last key (KEYS[4], or KEYS[5] after the
-- identity): the session is indexed by the time it finished, where the collector finds it.
local function finish(id, retention, at)
  redis.call('SREM', KEYS[3], id)
  if #KEYS >= 5 and redis.call('GET', KEYS[4]) == id then
    redis.call('DEL', KEYS[4])
  end
  redis.call('EXPIRE', KEYS[1], retention)
  redis.call('EXPIRE', KEYS[2], retention)
  if #KEYS >= 4 then redis.call('ZADD', KEYS[#KEYS], at, id) end
end

-- A history list written after the session finished keeps the session's expiry.
local function keep_history_expiry()
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
"""
)

#: Create a session unless its idempotency key or its identity is taken (spec D11); optionally
#: as the restart of a failed session (spec D14), linked to it in the same step.
CREATE = (
    EMIT
    + """
-- KEYS[1] session hash        {p}:session:{id}
-- KEYS[2] history list        {p}:session:{id}:history
-- KEYS[3] identity            {p}:identity:{appId}:{cname}:{uid}
-- KEYS[4] active set          {p}:active
-- KEYS[5] sessions zset       {p}:sessions
-- KEYS[o.idem]    idempotency key   {p}:idem:{key}          (o.idem > 0 only)
-- KEYS[o.outbox]  a queue's list: the message is pushed when, and only if, created
-- KEYS[o.failed]  the failed session's hash, KEYS[o.failed + 1] its history (restarts only)
-- ARGV[1] one JSON object o (one argument rather than one per hash field: cheaper to send) =
--   {id: the new session id, now: creation time, unix seconds (text: the zset score),
--    ttl: time to live of the idempotency key, seconds (text),
--    entry: the first history entry (JSON text, pushed as is),
--    hash: [field, value, field, value, ...] of the session hash (all text),
--    idem, outbox, failed: KEYS indexes (0: none), message: the outbox message,
--    and for a restart only: link: the history entry for the failed session, limit: history
--    entries kept, failed_phase, recording: the values a restartable session has,
--    events: the recording.restarted event (absent: none)}
-- Returns {id, outcome}: outcome 'idempotent' (the idempotency key names a session: its id),
-- 'active' (KEYS[3] names an unfinished session: its id) or 'created' (o.id); for a restart
-- also 'restarted' (the failed session was restarted already: the successor's id),
-- 'stop_requested' or 'not_failed' (no restart: id '').
local o = cjson.decode(ARGV[1])
local id = o.id
local idem = nil
if o.idem > 0 then idem = KEYS[o.idem] end
if idem then
  local existing = redis.call('GET', idem)
  if existing then return {existing, 'idempotent'} end
end
if o.failed > 0 then
  local state = redis.call('HMGET', KEYS[o.failed], 'phase', 'desired', 'restarted_to')
  if state[3] and state[3] ~= '' then return {state[3], 'restarted'} end
  if state[1] ~= o.failed_phase then return {'', 'not_failed'} end
  if state[2] ~= o.recording then return {'', 'stop_requested'} end
end
local existing = redis.call('GET', KEYS[3])
if existing then return {existing, 'active'} end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.error_reply('session id ' .. id .. ' already exists')
end
redis.call('HSET', KEYS[1], unpack(o.hash))
redis.call('RPUSH', KEYS[2], o.entry)
redis.call('SET', KEYS[3], id)
redis.call('SADD', KEYS[4], id)
redis.call('ZADD', KEYS[5], o.now, id)
if idem then
  redis.call('SET', idem, id, 'EX', o.ttl)
end
if o.failed > 0 then
  local failed, history = KEYS[o.failed], KEYS[o.failed + 1]
  redis.call('HSET', failed, 'restarted_to', id, 'updated_at', o.now)
  redis.call('RPUSH', history, cjson.encode(o.link))
  redis.call('LTRIM', history, -o.limit, -1)
  local ttl = redis.call('PTTL', failed)
  if ttl > 0 then redis.call('PEXPIRE', history, ttl) end
  if o.events then emit_event(o.events, o.events.type) end
end
if o.outbox > 0 then
  redis.call('LPUSH', KEYS[o.outbox], o.message)
end
return {id, 'created'}
"""
)

#: Compare-and-set on the phase, with field updates and a history entry.
TRANSITION = (
    _HELPERS
    + """
-- KEYS[1] session hash        KEYS[2] history list        KEYS[3] active set
-- KEYS[4] identity            (needed only when the new phase is final)
-- KEYS[#KEYS] finished index  (the last of 4 or 5 keys; needed only when the phase is final)
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
--   finished: the final phases,
--   events: the event of a change to phase events.to from a phase in events.from (absent:
--           none; see orchestrator.state.events) }
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
  finish(ARGV[1], p.retention, p.set.updated_at)
elseif was_finished and p.entry then
  keep_history_expiry()
end
local ev = p.events
if to and ev and to == ev.to and ((not ev.from) or member(ev.from, found)) then
  emit_event(ev, ev.type)
end
return {1, found, redis.call('HGETALL', KEYS[1])}
"""
)

#: Record that the recording should stop; cancel it outright if the start was never sent.
REQUEST_STOP = (
    _HELPERS
    + """
-- KEYS[1] session hash        KEYS[2] history list        KEYS[3] active set
-- KEYS[4] identity            KEYS[#KEYS] finished index (the last of 4 or 5 keys)
-- ARGV[1] session id
-- ARGV[2] JSON {
--   now: updated_at value, at: history time, why, source,
--   pending: the phase in which the start was not sent yet, stopped: the phase to cancel to,
--   desired: the desired value meaning "stopped",
--   limit, retention, finished: as for TRANSITION,
--   events: the event of a cancellation (absent: none) }
-- Returns {outcome, phase found, HGETALL after}; outcome is 'missing' (no session), 'finished'
-- (already in a final phase: only desired is recorded, so that no restart follows),
-- 'cancelled' (was pending: now stopped), 'already_requested' (desired was already stopped:
-- nothing changed) or 'requested'.
local p = cjson.decode(ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', '', {}} end
local state = redis.call('HMGET', KEYS[1], 'phase', 'desired')
local found, desired = state[1], state[2]
local entry = {at = p.at, why = p.why, source = p.source}
local desired_change = 'desired ' .. tostring(desired) .. ' -> ' .. p.desired
if member(p.finished, found) then
  -- Recorded all the same: a restart of this session (spec D14) reads it and is refused.
  if desired ~= p.desired then
    redis.call('HSET', KEYS[1], 'desired', p.desired, 'updated_at', p.now)
    entry.what = desired_change .. ' (after the end: no restart)'
    push_history(entry, p.limit)
    keep_history_expiry()
  end
  return {'finished', found, redis.call('HGETALL', KEYS[1])}
end
if found == p.pending then
  redis.call('HSET', KEYS[1], 'phase', p.stopped, 'desired', p.desired, 'updated_at', p.now,
    'phase_since', p.now)
  entry.what = 'phase ' .. found .. ' -> ' .. p.stopped .. '; ' .. desired_change
    .. ' (cancelled before the start was sent)'
  push_history(entry, p.limit)
  finish(ARGV[1], p.retention, p.now)
  if p.events then emit_event(p.events, p.events.type) end
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

#: Store the sid a start answer gave, whatever the session did meanwhile (never lose a sid).
ADOPT_SID = (
    _HELPERS
    + """
-- KEYS[1] session hash        KEYS[2] history list        KEYS[3] active set
-- KEYS[4] identity            (unused: kept for the helpers' layout)
-- ARGV[1] session id
-- ARGV[2] JSON {
--   sid: the sid of the answer, now: updated_at value, at, why, source,
--   recording: the phase to move an unfinished session to, stopped: the desired value that
--   means "stop it", limit, retention, finished: as for TRANSITION,
--   events: the event of a session that now records (absent: none) }
-- Returns {outcome, phase found, HGETALL after}; outcome is
--   'missing'   no session (the caller stops the recording the sid names);
--   'same'      the session already has this sid: nothing changed;
--   'other'     it has another sid: nothing changed (the caller stops this one, a duplicate);
--   'finished'  it is finished: the sid is stored if it had none (the caller stops it);
--   'recording' it had no sid: it is now recording with this one (from pending, starting or
--               orphaned), and its desired state is recording;
--   'must_stop' as 'recording', but a stop was requested meanwhile (the caller queues it).
local p = cjson.decode(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'phase', 'desired', 'sid', 'last_error')
if not state[1] and redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', '', {}} end
local found, desired, current = state[1], state[2], state[3]
if current == p.sid then return {'same', found, redis.call('HGETALL', KEYS[1])} end
local entry = {at = p.at, why = p.why, source = p.source}
if member(p.finished, found) then
  if not current or current == '' then
    redis.call('HSET', KEYS[1], 'sid', p.sid, 'updated_at', p.now)
    entry.what = 'set sid ' .. p.sid .. ' (the session had finished: stopping that recording)'
  else
    entry.what = 'start answer named sid ' .. p.sid .. ' after the end: stopping it'
  end
  push_history(entry, p.limit)
  keep_history_expiry()
  return {'finished', found, redis.call('HGETALL', KEYS[1])}
end
if current and current ~= '' then
  entry.what = 'start answer named another sid ' .. p.sid .. ': stopping it (a duplicate)'
  push_history(entry, p.limit)
  return {'other', found, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'sid', p.sid, 'phase', p.recording, 'phase_since', p.now,
  'started_at', p.now, 'updated_at', p.now)
if state[4] then redis.call('HDEL', KEYS[1], 'last_error') end
local change = 'set sid'
if found ~= p.recording then change = 'phase ' .. found .. ' -> ' .. p.recording .. '; set sid' end
entry.what = change
push_history(entry, p.limit)
if p.events then emit_event(p.events, p.events.type) end
if desired == p.stopped then return {'must_stop', found, redis.call('HGETALL', KEYS[1])} end
return {'recording', found, redis.call('HGETALL', KEYS[1])}
"""
)

#: Take or release a single-flight lease of (session, action) (a token with a PX expiry).
LEASE = """
-- KEYS[1] the lease key       {p}:session:{id}:{action}-lease
-- ARGV[1] 'take' or 'release', ARGV[2] the token, ARGV[3] lease ms (take)
-- Returns 1 when taken (or already ours) / released, 0 when someone else holds it.
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'take' then
  if holder and holder ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if holder == ARGV[2] then redis.call('DEL', KEYS[1]); return 1 end
return 0
"""

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

#: Number the next update of an action of a session, unless the session refuses updates.
NEXT_SEQUENCE = """
-- KEYS[1] session hash        {p}:session:{id}
-- ARGV[1] the counter field (seq:<action>)
-- ARGV[2] JSON list of the phases in which a session takes no update (finished, stopping)
-- Returns {sequence, phase found}: the new number (from 1); 0 when the phase refuses (nothing
-- is counted); -1 (phase '') when there is no session.
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local phase = redis.call('HGET', KEYS[1], 'phase') or ''
for _, refused in ipairs(cjson.decode(ARGV[2])) do
  if refused == phase then return {0, phase} end
end
return {redis.call('HINCRBY', KEYS[1], ARGV[1], 1), phase}
"""

#: Record the sequence number of an applied update: compare-and-set, never lowered.
RECORD_APPLIED = """
-- KEYS[1] session hash        {p}:session:{id}
-- ARGV[1] the applied field (applied:<action>)
-- ARGV[2] the sequence number just applied
-- Returns 1 when the field was raised to ARGV[2], 0 when it already held as much or more (a
-- newer update was applied first), -1 when there is no session (no stray hash is created).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local applied = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') or 0
if tonumber(ARGV[2]) <= applied then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
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
-- KEYS[#KEYS] finished index  {p}:finished  (the last of 4 or 5 keys)
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
if #KEYS >= 5 and redis.call('GET', KEYS[4]) == ARGV[1] then
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
-- Kept as finished when it was already (its finish time stays).
redis.call('ZADD', KEYS[#KEYS], 'NX', p.now, ARGV[1])
return {1, found, removed, released}
"""


@dataclass(frozen=True)
class Scripts:
    """The scripts, registered on one client (``EVALSHA``, loaded again after a flush)."""

    create: HotScript
    transition: Script
    request_stop: Script
    adopt_sid: Script
    record_attempt: Script
    compare_and_delete: Script

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        """Register every script on ``client``."""
        return cls(
            # The producer's one round trip per start: on the calling thread's own connection.
            create=HotScript(ThreadConnections(client), CREATE),
            transition=client.register_script(TRANSITION),
            request_stop=client.register_script(REQUEST_STOP),
            adopt_sid=client.register_script(ADOPT_SID),
            record_attempt=client.register_script(RECORD_ATTEMPT),
            compare_and_delete=client.register_script(COMPARE_AND_DELETE),
        )
