"""A start's single flight in two steps: begin (lease, phase, attempts) and finish.

The start job used to make seven round trips around its call: read the session, take the lease,
move to ``starting`` and count the session's attempt, count the run's attempt, and afterwards
adopt the sid, release the lease, forget the run. Each pair below is one Lua script instead, so
each step is as atomic as before, or more (the lease is taken only if the phase allows a start):

* begin (:data:`BEGIN_FUNCTION`, run by :meth:`StartFlights.begin` and by the start lane's take,
  :mod:`orchestrator.state.lane`): take the session's start lease, unless another run holds it;
  move the session to ``starting`` and count its attempt (what a ``TRANSITION`` to ``starting``
  writes); count the run's attempt (``{p}:run:{id}``, as
  :class:`~orchestrator.state.runs.RunBudgets` does). The lease is taken only when the session
  may start; nothing changes when it is held elsewhere.
* :meth:`StartFlights.finish`: store the sid (``ADOPT_SID``, unchanged), then release the lease
  if this run still holds it and delete the run's counters (the run has ended).

The lease, the phase and the run's counters mean exactly what they meant with separate calls
(:mod:`orchestrator.state.leases`, :mod:`orchestrator.state.runs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.changes import adopt_args, hash_pairs
from orchestrator.state.codec import attempts_field, session_from_hash, text
from orchestrator.state.errors import SessionNotFoundError
from orchestrator.state.evalsha import HotScript
from orchestrator.state.events import EventLog
from orchestrator.state.keys import Keys
from orchestrator.state.results import AdoptOutcome, AdoptResult
from orchestrator.state.runs import DEFAULT_RUN_TTL_S
from orchestrator.state.schema import SCHEMA_VERSION
from orchestrator.state.scripts import _HELPERS, ADOPT_SID
from orchestrator.state.session import Desired, Phase, Session, Source

__all__ = [
    "BEGIN_FUNCTION",
    "BEGIN_START",
    "BEGIN_WHY",
    "FINISH_START",
    "Begun",
    "FinishCall",
    "Finisher",
    "StartFlights",
]

_ACTION = "start"
#: The history's why of a start's begin (the job's own, and the lane's take).
BEGIN_WHY = "sending start"


_SESSION_HASH = "redis.call('HGETALL', KEYS[1])"


def _as_function(script: str, name: str, *, with_hash: bool = True) -> str:
    """The body of a script (after the helpers) as a local Lua function.

    Without ``with_hash`` the function returns ``{}`` where the script returns the session's
    ``HGETALL`` (for a caller that does not read it: no reply to build and decode).
    """
    body = script[len(_HELPERS) :]
    if not with_hash:
        assert _SESSION_HASH in body
        body = body.replace(_SESSION_HASH, "{}")
    return f"local function {name}()\n{body}\nend\n"


#: The begin of a start as a Lua function, shared by :data:`BEGIN_START` and the start lane's
#: take (:mod:`orchestrator.state.lane`, which begins the starts it takes in the same script).
#: It writes what a ``TRANSITION`` to ``starting`` with the session's attempt counted writes
#: (``updated_at``; ``phase`` and ``phase_since`` when the session was pending; the history
#: entry), without the generic script's parameters to decode.
BEGIN_FUNCTION = """
-- s, h, l, r: the session hash, its history, the start lease, the run's counters
-- b: the parameters {pending, starting, stopped (the desired value that means "stop it"),
--   attempts (the session's counter field), schema (the version this code writes), why,
--   source, limit (history entries kept), lease_ms, run_ttl}
-- token: the run's lease token; now: the time (text, unix seconds)
-- record: 'always', 'never', or 'pending' (an entry only when the session was pending)
-- strict: the caller has not decoded the session (the lane's take): also change nothing when
--   a stop was requested, the schema is not this code's or the attempts counter is not an
--   integer; the job decides then, from the session it decodes
-- Returns code, phase found, run attempt: code -1 no session, 0 refused (nothing changed, no
-- lease taken), -2 the session may start but another run holds the lease (nothing changed),
-- 1 applied (the lease is ours, the attempts counted, the session starting).
local function begin_start(s, h, l, r, b, token, now, record, strict)
  local st = redis.call('HMGET', s, 'phase', 'desired', 'schema', b.attempts)
  local found = st[1]
  if not found then
    if redis.call('EXISTS', s) == 0 then return -1, '', 0 end
    return 0, '', 0
  end
  if found ~= b.pending and found ~= b.starting then return 0, found, 0 end
  if strict and (st[2] == b.stopped or (st[3] and st[3] ~= '' and st[3] ~= b.schema)
      or (st[4] and not string.match(st[4], '^%d+$'))) then
    return 0, found, 0
  end
  -- The lease: taken unless another run holds it (then nothing is written).
  if not redis.call('SET', l, token, 'PX', b.lease_ms, 'NX') then
    if redis.call('GET', l) ~= token then return -2, '', 0 end
    redis.call('SET', l, token, 'PX', b.lease_ms)
  end
  -- The session's attempts counter is an integer (decoded, or checked when strict).
  local attempts = tostring((tonumber(st[4]) or 0) + 1)
  if found == b.pending then
    redis.call('HSET', s, 'updated_at', now, b.attempts, attempts, 'phase', b.starting,
      'phase_since', now)
  else
    redis.call('HSET', s, 'updated_at', now, b.attempts, attempts)
  end
  if record == 'always' or (record == 'pending' and found == b.pending) then
    local what = 'note'
    if found ~= b.starting then what = 'phase ' .. found .. ' -> ' .. b.starting end
    local entry = {at = tonumber(now), what = what, why = b.why, source = b.source}
    if redis.call('RPUSH', h, cjson.encode(entry)) > b.limit then
      redis.call('LTRIM', h, -b.limit, -1)
    end
  end
  local attempt = redis.call('HINCRBY', r, 'attempts', 1)
  redis.call('EXPIRE', r, b.run_ttl)
  return 1, found, attempt
end
"""

#: Take the start lease, move the session to ``starting`` and count the attempts: one step.
BEGIN_START = (
    BEGIN_FUNCTION
    + """
-- KEYS[1] the session hash, KEYS[2] its history, KEYS[3], KEYS[4] unused (the layout of
-- FINISH_START), KEYS[5] the start lease, KEYS[6] the run's counters {p}:run:{run id}
-- ARGV[1] the parameters of begin_start (JSON), ARGV[2] the run's lease token, ARGV[3] the
-- time (unix seconds, text), ARGV[4] record ('always' or 'never')
-- Returns {code, phase found, {}, run attempt} (begin_start's code).
local b = cjson.decode(ARGV[1])
local code, found, attempt = begin_start(KEYS[1], KEYS[2], KEYS[5], KEYS[6], b, ARGV[2],
  ARGV[3], ARGV[4], false)
return {code, found, {}, attempt}
"""
)

#: Store the sid, release the lease if still ours, forget the run: one step.
FINISH_START = (
    _HELPERS
    + _as_function(ADOPT_SID, "adopt", with_hash=False)
    + """
-- KEYS[1..4] as ADOPT_SID: session hash, history list, active set, identity (unused)
-- KEYS[5] the start lease, KEYS[6] the run's counters
-- ARGV[1], ARGV[2] as ADOPT_SID; ARGV[3] the run's lease token
-- Returns what ADOPT_SID returns, the session's HGETALL only for a stray sid ('other',
-- 'finished': the one case the start job reads it), {} otherwise.
local r = adopt()
if r[1] == 'other' or r[1] == 'finished' then r[3] = redis.call('HGETALL', KEYS[1]) end
if redis.call('GET', KEYS[5]) == ARGV[3] then redis.call('DEL', KEYS[5]) end
redis.call('DEL', KEYS[6])
return r
"""
)


@dataclass(frozen=True)
class Begun:
    """What :meth:`StartFlights.begin` did.

    Attributes:
        busy: another run holds the lease (nothing changed).
        applied: the session moved to (or stayed in) ``starting``; the lease is ours.
        found: the phase the session was in (``None`` when busy).
        attempt: the run's attempt number, from 1 (0 unless applied).
    """

    busy: bool
    applied: bool
    found: Phase | None
    attempt: int

    @classmethod
    def of(cls, code: int, found: str, attempt: int, session_id: str) -> Begun:
        """What ``begin_start``'s code, phase found and attempt say (:data:`BEGIN_FUNCTION`).

        Raises:
            SessionNotFoundError: code -1, the session is gone.
        """
        if code == -2:
            return cls(True, False, None, 0)
        if code == -1:
            raise SessionNotFoundError(session_id)
        return cls(False, code == 1, Phase(found) if found else None, attempt)


class StartFlights:
    """The start job's combined lease, phase and budget steps.

    Args:
        redis: the client.
        keys: the key names (the session store's).
        history_limit, retention_s: as the session store's.
        run_ttl_s: seconds a run's counters live after their last change.
        events: records ``recording.started`` with the sid (``None``: events are off).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys,
        history_limit: int,
        retention_s: int,
        run_ttl_s: int = DEFAULT_RUN_TTL_S,
        events: EventLog | None = None,
    ) -> None:
        self._redis = redis
        self.keys = keys
        self.history_limit = history_limit
        self.retention_s = retention_s
        self.run_ttl_s = run_ttl_s
        self.events = events
        self._params: dict[tuple[int, str], str] = {}
        self._begin = HotScript(redis, BEGIN_START)
        self._finish = HotScript(redis, FINISH_START)

    def _keys(self, session: Session, run_id: str) -> list[str]:
        return [
            self.keys.session(session.id),
            self.keys.history(session.id),
            self.keys.active(),
            self.keys.identity(*session.identity),
            self.keys.lease(session.id, _ACTION),
            self.keys.run(run_id),
        ]

    def begin_params(self, *, lease_s: float, why: str) -> str:
        """The parameters of the begin step (JSON), for :data:`BEGIN_START` and the lane."""
        key = (max(1, int(lease_s * 1000)), why)
        params = self._params.get(key)
        if params is None:
            params = json.dumps(
                {
                    "pending": Phase.PENDING.value,
                    "starting": Phase.STARTING.value,
                    "stopped": Desired.STOPPED.value,
                    "attempts": attempts_field(_ACTION),
                    "schema": str(SCHEMA_VERSION),
                    "why": why,
                    "source": Source.TASK.value,
                    "limit": self.history_limit,
                    "lease_ms": key[0],
                    "run_ttl": self.run_ttl_s,
                }
            )
            self._params[key] = params
        return params

    def begin(
        self,
        session: Session,
        *,
        run_id: str,
        token: str,
        lease_s: float,
        now: float,
        why: str,
        record: bool,
    ) -> Begun:
        """Take the start lease, move to ``starting`` from pending or starting, count attempts.

        Raises:
            SessionNotFoundError: the session is gone.
            StateUnavailableError: Redis cannot be reached.
        """
        args = [
            self.begin_params(lease_s=lease_s, why=why),
            token,
            repr(now),
            "always" if record else "never",
        ]
        with redis_errors(self._redis):
            code, found, _, attempt = self._begin(keys=self._keys(session, run_id), args=args)
        return Begun.of(int(code), text(found), int(attempt), session.id)

    def finish_call(
        self, session: Session, sid: str, *, run_id: str, token: str, now: float, why: str
    ) -> FinishCall:
        """The :data:`FINISH_START` call of :meth:`finish`, to send here or batched elsewhere
        (the start lane sends its workers' finishes with its take, :mod:`workers.lane`)."""
        args = adopt_args(
            sid=sid,
            now=now,
            source=Source.TASK,
            why=why,
            history_limit=self.history_limit,
            retention_s=self.retention_s,
            events=(
                None
                if self.events is None
                else self.events.phase_change(session.id, Phase.RECORDING)
            ),
        )
        return FinishCall(session, self._keys(session, run_id), [session.id, args, token])

    def finish(
        self, session: Session, sid: str, *, run_id: str, token: str, now: float, why: str
    ) -> AdoptResult:
        """Store ``sid`` (as :meth:`SessionStore.adopt_sid`), release the lease, forget the run.

        The result's ``session`` is only there for a stray sid (``other``, ``finished``): the
        start job reads it only then.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        call = self.finish_call(session, sid, run_id=run_id, token=token, now=now, why=why)
        with redis_errors(self._redis):
            reply = self._finish(keys=call.keys, args=call.args)
        return call.result(reply)


class Finisher(Protocol):
    """What stores a start's sid: :meth:`StartFlights.finish`, or one that batches it."""

    def __call__(
        self, session: Session, sid: str, *, run_id: str, token: str, now: float, why: str
    ) -> AdoptResult: ...


@dataclass(frozen=True)
class FinishCall:
    """One :data:`FINISH_START` call (:meth:`StartFlights.finish_call`).

    Attributes:
        session: the session as the job read it.
        keys, args: the script's KEYS and ARGV.
    """

    session: Session
    keys: list[str]
    args: list[str]

    def result(self, reply: Any) -> AdoptResult:
        """What the script's reply says (decoded or bytes)."""
        outcome, found, flat = reply
        result = AdoptOutcome(text(outcome))
        if result == AdoptOutcome.MISSING:
            return AdoptResult(result, None, None)
        # The session is decoded only where the job reads it: a sid that nothing follows.
        stray = result in (AdoptOutcome.OTHER, AdoptOutcome.FINISHED)
        after = session_from_hash(self.session.id, hash_pairs(flat)) if stray else None
        return AdoptResult(result, Phase(text(found)), after)
