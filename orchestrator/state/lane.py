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

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from orchestrator.state.backend import redis_errors, state_error
from orchestrator.state.evalsha import HotCall, HotScript, run_together
from orchestrator.state.flights import (
    BEGIN_FUNCTION,
    BEGIN_WHY,
    FINISH_START,
    FinishCall,
    StartFlights,
)
from orchestrator.state.keys import Keys

__all__ = ["LaneEntry", "StartLane", "created_entry", "lane_entry"]

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: Acknowledge finished deliveries, then take up to ARGV[1] entries, and begin their starts.
_CYCLE = (
    _NOW_MS
    + BEGIN_FUNCTION
    + """
-- KEYS: ready, inflight, deaths
-- ARGV[1] how many to take, ARGV[2] visibility ms, ARGV[3] this take's id,
-- ARGV[4] '' (take only), or the begin parameters (JSON): begin_start's, and keys = the key
--   names of a session hash, its history, its start lease and a run's counters as
--   [before, after] around the id, and max_deaths,
-- ARGV[5..] deliveries to acknowledge ("{take}:{n}|{entry}")
-- Returns per entry taken: the delivery, its deaths, and when its start was begun here the
-- lease token (the delivery's "{take}:{n}"), the run's attempt and the session's HGETALL
-- after (else '', 0, {}).
local any_deaths = redis.call('EXISTS', KEYS[3]) == 1
if #ARGV >= 5 and not any_deaths then
  redis.call('ZREM', KEYS[2], unpack(ARGV, 5))
else
  for i = 5, #ARGV do
    if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then
      local bar = string.find(ARGV[i], '|', 1, true)
      redis.call('HDEL', KEYS[3], string.sub(ARGV[i], bar + 1))
    end
  end
  any_deaths = redis.call('EXISTS', KEYS[3]) == 1
end
local count = tonumber(ARGV[1])
if count < 1 then return {} end
local items = redis.call('RPOP', KEYS[1], count)
if not items then return {} end
local b = nil
local now_s = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
if ARGV[4] ~= '' then b = cjson.decode(ARGV[4]) end
local function key(parts, id) return parts[1] .. id .. parts[2] end
local out = {}
for n, entry in ipairs(items) do
  local token = ARGV[3] .. ':' .. n
  local member = token .. '|' .. entry
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), member)
  local deaths = '0'
  if any_deaths then deaths = redis.call('HGET', KEYS[3], entry) or '0' end
  out[#out + 1] = member
  out[#out + 1] = deaths
  local run, id = string.match(entry, '^([%w_.~-]+) ([%w_.~-]+)$')
  local code, attempt = 0, 0
  if b and run and tonumber(deaths) < b.max_deaths then
    local ok, c, _, a = pcall(begin_start, key(b.keys.session, id), key(b.keys.history, id),
      key(b.keys.lease, id), key(b.keys.run, run), b, token, now_s, 'pending', true)
    if ok then code, attempt = c, a end
  end
  if code == 1 then
    out[#out + 1] = token
    out[#out + 1] = attempt
    out[#out + 1] = redis.call('HGETALL', key(b.keys.session, id))
  else
    out[#out + 1] = ''
    out[#out + 1] = 0
    out[#out + 1] = {}
  end
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
#: Stands for an id in a key name, to cut the name around it (it is its own key part).
_ID = "ID0lane0ID"


def _around(key: Callable[[str], str], marker: str) -> list[str]:
    """A key name as ``[before, after]`` the id it is built from."""
    before, found, after = key(marker).partition(marker)
    assert found and marker not in after, "the marker must appear once in the key"
    return [before, after]


def lane_entry(session_id: str, run_id: str | None = None) -> str:
    """The lane entry of a start of ``session_id`` (a new run id unless given: 32 random hex
    digits, as a UUID's would be, without building one)."""
    return f"{run_id or secrets.token_hex(16)} {session_id}"


def created_entry(session_id: str) -> str:
    """The lane entry a session's create pushes (the outbox message of the CREATE script).

    Its run, the session's first, takes the session's id as its run id: unique like a random
    one (the script creates a session only under an id that does not exist, and pushes this
    entry only then), and it spares the producer a second draw from the system's random source
    per start (a ``getrandom`` call: about 2 % of a start's time here). Later runs of the same
    session (a re-queued start) draw theirs (:func:`lane_entry`).
    """
    return lane_entry(session_id, session_id)


@dataclass(frozen=True)
class LaneEntry:
    """One delivery of a start taken from the lane.

    Attributes:
        delivery: the ``inflight`` member (what acknowledges or retries this delivery).
        run_id: the run's id (its budget's key; the same across retries).
        session_id: the session to start.
        deaths: deliveries of this entry that outlived their visibility before this one.
        token: when the take began the start (``begin=`` of :meth:`StartLane.cycle`): the run's
            start lease token; ``""`` when it did not (the job begins it, or decides not to).
        attempt: the run's attempt the take counted (0 when it did not begin the start).
        fields: the session's hash after the begin (bytes as stored: the job decodes them).
    """

    delivery: str
    run_id: str
    session_id: str
    deaths: int
    token: str = ""
    attempt: int = 0
    fields: dict[bytes, bytes] = field(default_factory=dict)

    @classmethod
    def parse(cls, delivery: str, deaths: int) -> LaneEntry:
        entry = delivery.split("|", 1)[1]
        run_id, _, session_id = entry.partition(" ")
        return cls(delivery, run_id, session_id, deaths)

    @property
    def begun(self) -> bool:
        """Whether the take began this start (lease ours, session ``starting``, attempt counted)."""
        return bool(self.token)


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
        self._cycle = HotScript(redis, _CYCLE)
        self._finish = HotScript(redis, FINISH_START)
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

    def cycle(
        self, take: int, *, visibility_s: float, acks: list[str], begin: str = ""
    ) -> list[LaneEntry]:
        """Acknowledge ``acks`` (finished deliveries), then take up to ``take`` entries.

        Args:
            take: entries to take at most.
            visibility_s: how long a taken entry stays in flight before it may be redelivered.
            acks: deliveries to acknowledge.
            begin: also begin the taken starts (:meth:`begin_params`); ``""``: take only.

        Raises:
            StateUnavailableError: Redis cannot be reached (nothing was acknowledged or taken,
                or all of it was: a script runs whole or not at all).
        """
        return self.cycle_finishing((), take, visibility_s=visibility_s, acks=acks, begin=begin)[1]

    def cycle_finishing(
        self,
        finishes: Sequence[FinishCall],
        take: int,
        *,
        visibility_s: float,
        acks: list[str],
        begin: str = "",
    ) -> tuple[list[Any], list[LaneEntry]]:
        """:meth:`cycle`, after the finish steps of starts (``FINISH_START``), in one round
        trip: the lane's workers send the sids their starts got with their next take.

        Returns:
            each finish's reply (for :meth:`FinishCall.result`), or the error Redis answered
            it with (:class:`~orchestrator.state.StateBackendError`); and the entries taken.

        Raises:
            StateUnavailableError: as :meth:`cycle` (any finish may have been applied, or
                none: each is idempotent, as a lost answer of its own call would be).
            StateBackendError: Redis refused the take.
        """
        args = [take, max(1, int(visibility_s * 1000)), secrets.token_hex(16), begin, *acks]
        calls = [HotCall(self._finish, call.keys, call.args, raw=True) for call in finishes]
        # Bytes, not text: a session's value that is not UTF-8 must fail its own start
        # (the job decodes the fields), not the whole take.
        calls.append(
            HotCall(self._cycle, [self.ready_key, self.inflight_key, self.deaths_key], args, True)
        )
        with redis_errors(self._redis):
            if finishes:
                replies = run_together(self._redis, calls)
            else:  # one script: no pipeline to build
                replies = [self._cycle(keys=calls[0].keys, args=args, raw=True)]
            flat = replies.pop()
            if isinstance(flat, Exception):
                raise flat
        done = [state_error(r, self._redis) if isinstance(r, RedisError) else r for r in replies]
        entries = []
        for i in range(0, len(flat), 5):
            entry = LaneEntry.parse(flat[i].decode(), int(flat[i + 1]))
            token = flat[i + 2].decode()
            if token:
                pairs = flat[i + 4]
                fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
                entry = replace(entry, token=token, attempt=int(flat[i + 3]), fields=fields)
            entries.append(entry)
        return done, entries

    def begin_params(self, flights: StartFlights, *, lease_s: float, max_deaths: int) -> str:
        """What :meth:`cycle` needs to begin the starts it takes (``begin=``).

        Args:
            flights: the start's begin step (its parameters: the session store's history limit,
                the run counters' lifetime).
            lease_s: how long a begun start holds its lease.
            max_deaths: an entry with this many deaths is not begun (it is failed instead).
        """
        params = json.loads(flights.begin_params(lease_s=lease_s, why=BEGIN_WHY))
        params["max_deaths"] = max_deaths
        params["keys"] = {
            "session": _around(self.keys.session, _ID),
            "history": _around(self.keys.history, _ID),
            "lease": _around(lambda x: self.keys.lease(x, "start"), _ID),
            "run": _around(self.keys.run, _ID),
        }
        return json.dumps(params)

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
