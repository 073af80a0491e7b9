"""The Lua script that raises an alert: dedupe, remember, list and count in one atomic step.

Redis runs a script atomically, so of any number of workers and reconcilers raising the same
(session, kind) at once exactly one gets the alert (and a reminder is raised once per interval,
not once per caller).
"""

from __future__ import annotations

__all__ = ["RAISE"]

#: Raise an alert unless (session, kind) has one (or a reminder is due).
RAISE = """
-- KEYS[1] marker hash    {p}:alert:{session}:{kind}  fields first_at, last_at, raised
-- KEYS[2] recent list    {p}:alerts                  newest first
-- KEYS[3] counts hash    {p}:alerts:count            field per kind
-- ARGV[1] now, unix seconds, as a JSON number (Python repr of a float)
-- ARGV[2] seconds between reminders; '' = never remind
-- ARGV[3] the alert as a JSON object without first_at and reminder (added here)
-- ARGV[4] the kind (the counter's field)
-- ARGV[5] how many recent alerts to keep
-- ARGV[6] time to live of the marker, seconds
-- Returns the stored alert (JSON), or nil when deduplicated.
local last = redis.call('HGET', KEYS[1], 'last_at')
local first = ARGV[1]
local reminder = 0
if last then
  local every = tonumber(ARGV[2])
  if (not every) or tonumber(ARGV[1]) - tonumber(last) < every then
    return false
  end
  first = redis.call('HGET', KEYS[1], 'first_at') or ARGV[1]
  reminder = redis.call('HINCRBY', KEYS[1], 'raised', 1) - 1
  redis.call('HSET', KEYS[1], 'last_at', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'first_at', ARGV[1], 'last_at', ARGV[1], 'raised', 1)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
-- Spliced rather than cjson-encoded: cjson would round the times to 14 significant digits.
local record = string.sub(ARGV[3], 1, -2) ..
  ',"first_at":' .. first .. ',"reminder":' .. reminder .. '}'
redis.call('LPUSH', KEYS[2], record)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
return record
"""
