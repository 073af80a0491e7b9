"""The Lua scripts of alerting: raise (dedupe, remember, list, count, queue in the outbox) and the
outbox's lease, acknowledge, retry and give-up steps, each one atomic step.

Redis runs a script atomically, so of any number of workers and reconcilers raising the same
(session, kind) at once exactly one gets the alert (and a reminder is raised once per interval,
not once per caller), and that one alert is queued once per sink in the same step: an alert is
never stored without its deliveries, nor queued twice.

Times of the outbox are Redis's (``TIME`` read inside the script, in milliseconds): leases and
retries are decided by one clock, never by comparing the clocks of two hosts.
"""

from __future__ import annotations

from orchestrator.state.lua import NOW_MS

__all__ = ["RAISE", "LEASE", "ACK", "RETRY", "GIVE_UP"]

#: Milliseconds now, from Redis's clock (shared with the event outbox's scripts).
_NOW_MS = NOW_MS

#: Raise an alert unless (session, kind) has one (or a reminder is due); queue its deliveries.
RAISE = (
    _NOW_MS
    + """
-- KEYS[1] marker hash    {p}:alert:{session}:{kind}  fields first_at, last_at, raised
-- KEYS[2] recent list    {p}:alerts                  newest first
-- KEYS[3] counts hash    {p}:alerts:count            field per kind
-- KEYS[4] undelivered list, KEYS[5] undelivered counts hash (field per sink)
-- KEYS[6..] two per background sink: its outbox zset, then its entries hash
-- ARGV[1] now, unix seconds, as a JSON number (Python repr of a float)
-- ARGV[2] seconds between reminders; '' = never remind
-- ARGV[3] the alert as a JSON object without first_at and reminder (added here)
-- ARGV[4] the kind (the counter's field)
-- ARGV[5] how many recent alerts to keep
-- ARGV[6] time to live of the marker, seconds (renewed by every raise, deduplicated or not)
-- ARGV[7] most entries in one sink's outbox (beyond it the one due longest ago is dropped)
-- ARGV[8] how many undelivered records to keep
-- ARGV[9..] the sinks' names, in the order of their keys
-- Returns nil when deduplicated, else {the stored alert (JSON), dropped...}: each dropped entry
-- as 'sink|alert id'.
local last = redis.call('HGET', KEYS[1], 'last_at')
local first = ARGV[1]
local reminder = 0
if last then
  local every = tonumber(ARGV[2])
  if (not every) or tonumber(ARGV[1]) - tonumber(last) < every then
    -- Still raised: the marker lives on while its condition is seen (retention).
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
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
local out = {record}
local now = now_ms()
local id = cjson.decode(ARGV[3])['id']
local entry = '{"attempts":0,"error":null,"queued_ms":' .. now .. ',"alert":' .. record .. '}'
local limit = tonumber(ARGV[7])
for i = 9, #ARGV do
  local outbox, entries, sink = KEYS[2 * i - 12], KEYS[2 * i - 11], ARGV[i]
  while redis.call('ZCARD', outbox) >= limit do
    local oldest = redis.call('ZRANGE', outbox, 0, 0)[1]
    local dropped = redis.call('HGET', entries, oldest) or 'null'
    redis.call('ZREM', outbox, oldest)
    redis.call('HDEL', entries, oldest)
    redis.call('LPUSH', KEYS[4], '{"sink":' .. cjson.encode(sink) ..
      ',"error":"dropped: the outbox was full","at_ms":' .. now .. ',"entry":' .. dropped .. '}')
    redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[8]) - 1)
    redis.call('HINCRBY', KEYS[5], sink, 1)
    table.insert(out, sink .. '|' .. oldest)
  end
  redis.call('ZADD', outbox, now, id)
  redis.call('HSET', entries, id, entry)
end
return out
"""
)

#: Take the entry of one sink due longest ago, leased until Redis's now plus the lease.
LEASE = (
    _NOW_MS
    + """
-- KEYS[1] the sink's outbox zset (alert id -> ms when it may be taken), KEYS[2] its entries
-- ARGV[1] lease length, ms
-- Returns {alert id, lease (the new score, the lease's token), entry JSON} when one was due,
-- else {'', ms until the next one is due ('' when the outbox is empty)}.
local now = now_ms()
while true do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)[1]
  if not due then break end
  local entry = redis.call('HGET', KEYS[2], due)
  if entry then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), due)
    return {due, redis.call('ZSCORE', KEYS[1], due), entry}
  end
  redis.call('ZREM', KEYS[1], due)  -- an entry without data: nothing to deliver
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next[2] then return {'', tostring(math.max(tonumber(next[2]) - now, 0))} end
return {'', ''}
"""
)

#: A sink accepted the alert: forget the entry (whoever holds its lease now).
ACK = """
-- KEYS[1] the sink's outbox zset, KEYS[2] its entries hash
-- ARGV[1] alert id
-- Returns 1 if the entry was there.
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

#: An attempt failed: the entry is due again after a delay, if the lease is still the caller's.
RETRY = (
    _NOW_MS
    + """
-- KEYS[1] the sink's outbox zset, KEYS[2] its entries hash
-- ARGV[1] alert id, ARGV[2] the lease (score) the caller took, ARGV[3] delay, ms,
-- ARGV[4] the entry with its attempts and error updated (JSON)
-- Returns 1 when rescheduled, 0 when the lease was lost (expired and taken, or acknowledged).
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return 1
"""
)

#: The delivery failed for good: move the entry to the undelivered list, if the lease is ours.
GIVE_UP = (
    _NOW_MS
    + """
-- KEYS[1] the sink's outbox zset, KEYS[2] its entries hash
-- KEYS[3] undelivered list (newest first), KEYS[4] undelivered counts hash (field per sink)
-- ARGV[1] alert id, ARGV[2] the lease (score) the caller took, ARGV[3] the sink's name
-- ARGV[4] the record as a JSON object without at_ms (added here), ARGV[5] records to keep
-- Returns 1 when moved, 0 when the lease was lost.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not score) or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], string.sub(ARGV[4], 1, -2) .. ',"at_ms":' .. now_ms() .. '}')
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
return 1
"""
)
