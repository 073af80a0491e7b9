"""The Lua scripts of the collector: each deletes one record, after checking again, inside the
script, that it may (still finished, old enough), so that two collectors never both delete a
record, never delete one that came back to life, and never fail on one the other deleted.

Every script takes a ``dry`` flag: it then checks the same things and answers the same, but
deletes nothing (``krtc-rec gc --dry-run``). Ages are cut-offs computed by the caller from Redis'
clock (the store's), the clock the records' times were written with.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.commands.core import Script

__all__ = [
    "DELETE_SESSION",
    "DELETE_LETTER",
    "TRIM_LIST",
    "DELETE_OCCURRENCE",
    "DELETE_SCHEDULE",
    "RetentionScripts",
]

#: Delete a finished session that finished before the cut-off, and everything naming it.
DELETE_SESSION = """
-- KEYS[1] session hash    KEYS[2] history list    KEYS[3] sessions zset
-- KEYS[4] finished zset   KEYS[5] active set
-- KEYS[6 .. 5+c] keys deleted only if they still hold the session id (identity, idempotency)
-- KEYS[6+c ..]   keys deleted with it (its alert markers)
-- ARGV[1] session id, ARGV[2] cut-off (unix s), ARGV[3] JSON list of the final phases,
-- ARGV[4] c, ARGV[5] '1' = dry run
-- Returns 'deleted', 'missing' (not in the finished index: deleted already), 'young' (finished
-- after the cut-off) or 'active' (its phase is not final: never deleted; left out of the index).
local id = ARGV[1]
local score = redis.call('ZSCORE', KEYS[4], id)
if not score then return 'missing' end
if tonumber(score) > tonumber(ARGV[2]) then return 'young' end
local dry = ARGV[5] == '1'
local phase = redis.call('HGET', KEYS[1], 'phase')
if phase then
  local final = false
  for _, v in ipairs(cjson.decode(ARGV[3])) do
    if v == phase then final = true end
  end
  if not final then
    if not dry then redis.call('ZREM', KEYS[4], id) end
    return 'active'
  end
end
if dry then return 'deleted' end
local c = tonumber(ARGV[4])
for i = 6, 5 + c do
  if redis.call('GET', KEYS[i]) == id then redis.call('DEL', KEYS[i]) end
end
for i = 6 + c, #KEYS do
  redis.call('DEL', KEYS[i])
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
redis.call('SREM', KEYS[5], id)
return 'deleted'
"""

#: Delete a dead letter whose latest failure is before the cut-off (and its live pointer).
DELETE_LETTER = """
-- KEYS[1] dead-letter zset   KEYS[2] the letter   KEYS[3] its live pointer (absent: unknown)
-- ARGV[1] letter id, ARGV[2] cut-off (unix s), ARGV[3] '1' = dry run
-- Returns 'deleted', 'missing' or 'young' (it failed again since: its score moved on).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 'missing' end
if tonumber(score) > tonumber(ARGV[2]) then return 'young' end
if ARGV[3] == '1' then return 'deleted' end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
if KEYS[3] and redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 'deleted'
"""

#: Drop the oldest entries of a newest-first list of JSON records, while they are old enough.
TRIM_LIST = """
-- KEYS[1] the list (newest first)
-- ARGV[1] cut-off (unix s), ARGV[2] most entries to drop, ARGV[3] the time field,
-- ARGV[4] its units per second (1: seconds, 1000: milliseconds), ARGV[5] '1' = dry run
-- An entry that does not decode, or has no time, counts as old (it would block the rest).
-- Returns how many entries were dropped (or would be).
local dry = ARGV[5] == '1'
local cutoff = tonumber(ARGV[1]) * tonumber(ARGV[4])
local dropped = 0
while dropped < tonumber(ARGV[2]) do
  local index = -1
  if dry then index = -1 - dropped end
  local last = redis.call('LINDEX', KEYS[1], index)
  if not last then break end
  local ok, record = pcall(cjson.decode, last)
  local at = nil
  if ok and type(record) == 'table' then at = tonumber(record[ARGV[3]]) end
  if at and at > cutoff then break end
  if not dry then redis.call('RPOP', KEYS[1]) end
  dropped = dropped + 1
end
return dropped
"""

#: Delete a past occurrence: final, and ended (and last changed) before the cut-off.
DELETE_OCCURRENCE = """
-- KEYS[1] occurrence hash   KEYS[2] its schedule's occurrences zset
-- ARGV[1] occurrence id, ARGV[2] cut-off (unix s), ARGV[3] JSON list of the final outcomes,
-- ARGV[4] '1' = dry run
-- Returns 'deleted', 'missing' (its hash is gone: only the index entry is removed), 'live' or
-- 'young'.
local state = redis.call('HMGET', KEYS[1], 'outcome', 'end', 'updated_at')
if not state[1] then
  if ARGV[4] ~= '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
  return 'missing'
end
local final = false
for _, v in ipairs(cjson.decode(ARGV[3])) do
  if v == state[1] then final = true end
end
if not final then return 'live' end
local cutoff = tonumber(ARGV[2])
if tonumber(state[2] or '0') > cutoff or tonumber(state[3] or '0') > cutoff then
  return 'young'
end
if ARGV[4] == '1' then return 'deleted' end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'deleted'
"""

#: Delete a schedule that ended or was cancelled before the cut-off, with its occurrences.
DELETE_SCHEDULE = """
-- KEYS[1] schedule hash   KEYS[2] its occurrences zset   KEYS[3] schedules zset
-- KEYS[4..] the hashes of the occurrences it has (each must be final, and past the cut-off)
-- ARGV[1] schedule id, ARGV[2] cut-off (unix s), ARGV[3] JSON list of the states that end a
-- schedule, ARGV[4] JSON list of the final outcomes, ARGV[5] '1' = dry run
-- Returns 'deleted', 'missing', 'active' (still planning), 'young' or 'live' (an occurrence
-- is not final, or one was planned since the caller read them).
local state = redis.call('HMGET', KEYS[1], 'state', 'updated_at')
if not state[1] then
  if ARGV[5] ~= '1' then redis.call('ZREM', KEYS[3], ARGV[1]) end
  return 'missing'
end
local ended = false
for _, v in ipairs(cjson.decode(ARGV[3])) do
  if v == state[1] then ended = true end
end
if not ended then return 'active' end
if tonumber(state[2] or '0') > tonumber(ARGV[2]) then return 'young' end
if redis.call('ZCARD', KEYS[2]) ~= #KEYS - 3 then return 'live' end
local finals = cjson.decode(ARGV[4])
for i = 4, #KEYS do
  local occurrence = redis.call('HMGET', KEYS[i], 'outcome', 'end', 'updated_at')
  local final = occurrence[1] == false
  for _, v in ipairs(finals) do
    if v == occurrence[1] then final = true end
  end
  if not final then return 'live' end
  if tonumber(occurrence[2] or '0') > tonumber(ARGV[2])
    or tonumber(occurrence[3] or '0') > tonumber(ARGV[2]) then
    return 'young'
  end
end
if ARGV[5] == '1' then return 'deleted' end
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return 'deleted'
"""


@dataclass(frozen=True)
class RetentionScripts:
    """The scripts, registered on one client."""

    delete_session: Script
    delete_letter: Script
    trim_list: Script
    delete_occurrence: Script
    delete_schedule: Script

    @classmethod
    def register(cls, redis: Redis) -> RetentionScripts:
        """Register every script on ``redis`` (loaded on first use, by SHA)."""
        return cls(
            delete_session=redis.register_script(DELETE_SESSION),
            delete_letter=redis.register_script(DELETE_LETTER),
            trim_list=redis.register_script(TRIM_LIST),
            delete_occurrence=redis.register_script(DELETE_OCCURRENCE),
            delete_schedule=redis.register_script(DELETE_SCHEDULE),
        )
