"""A start's single flight in two round trips: begin (lease, phase, attempt) and finish.

The start job used to make seven round trips around its call: read the session, take the lease,
move to ``starting`` and count the session's attempt, count the run's attempt, and afterwards
adopt the sid, release the lease, forget the run. Each pair below is one Lua script instead, so
each step is as atomic as before, or more (the lease is taken only if the phase allows a start):

* :meth:`StartFlights.begin`: take the session's start lease, unless another run holds it; move
  the session to ``starting`` (a ``TRANSITION``, with the session's attempt counted); count the
  run's attempt (``{p}:run:{id}``, as :class:`~orchestrator.state.runs.RunBudgets` does). The
  lease is taken only when the transition applies; nothing changes when it is held elsewhere.
* :meth:`StartFlights.finish`: store the sid (``ADOPT_SID``, unchanged), then release the lease
  if this run still holds it and delete the run's counters (the run has ended).

The lease, the phase and the run's counters mean exactly what they meant with separate calls
(:mod:`orchestrator.state.leases`, :mod:`orchestrator.state.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.changes import adopt_args, hash_pairs, transition_args
from orchestrator.state.codec import attempts_field, session_from_hash, text
from orchestrator.state.errors import SessionNotFoundError
from orchestrator.state.events import EventLog
from orchestrator.state.keys import Keys
from orchestrator.state.results import AdoptOutcome, AdoptResult
from orchestrator.state.runs import DEFAULT_RUN_TTL_S
from orchestrator.state.scripts import _HELPERS, ADOPT_SID, TRANSITION
from orchestrator.state.session import Phase, Session, Source

__all__ = ["BEGIN_START", "FINISH_START", "Begun", "StartFlights"]

_ACTION = "start"


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


#: Take the start lease, move the session to ``starting`` and count the attempt: one step.
BEGIN_START = (
    _HELPERS
    + _as_function(TRANSITION, "transition", with_hash=False)
    + """
-- KEYS[1..4] as TRANSITION: session hash, history list, active set, identity
-- KEYS[5] the start lease     {p}:session:{id}:start-lease
-- KEYS[6] the run's counters  {p}:run:{run id}
-- ARGV[1], ARGV[2] as TRANSITION (session id, JSON parameters)
-- ARGV[3] the run's lease token, ARGV[4] lease ms, ARGV[5] seconds the run's counters live
-- Returns {applied, phase found, {}, run attempt}: applied -2 when another run
-- holds the lease (nothing changed), else as TRANSITION (1 applied: the lease is now ours and
-- the run's attempt counted; 0 refused: no lease taken; -1 no session).
local holder = redis.call('GET', KEYS[5])
if holder and holder ~= ARGV[3] then return {-2, '', {}, 0} end
local r = transition()
if r[1] ~= 1 then return {r[1], r[2], r[3], 0} end
redis.call('SET', KEYS[5], ARGV[3], 'PX', ARGV[4])
local attempt = redis.call('HINCRBY', KEYS[6], 'attempts', 1)
redis.call('EXPIRE', KEYS[6], ARGV[5])
return {1, r[2], {}, attempt}
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
        self._begin = redis.register_script(BEGIN_START)
        self._finish = redis.register_script(FINISH_START)

    def _keys(self, session: Session, run_id: str) -> list[str]:
        return [
            self.keys.session(session.id),
            self.keys.history(session.id),
            self.keys.active(),
            self.keys.identity(*session.identity),
            self.keys.lease(session.id, _ACTION),
            self.keys.run(run_id),
        ]

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
        entry = None
        if record:
            entry = {"at": now, "what": "", "why": why, "source": Source.TASK.value}
        args = transition_args(
            now=now,
            to=Phase.STARTING,
            allowed_from=[Phase.PENDING, Phase.STARTING],
            changes={},
            entry=entry,
            history_limit=self.history_limit,
            retention_s=self.retention_s,
            incr=attempts_field(_ACTION),
        )
        with redis_errors(self._redis):
            applied, found, _, attempt = self._begin(
                keys=self._keys(session, run_id),
                args=[session.id, args, token, max(1, int(lease_s * 1000)), self.run_ttl_s],
            )
        code = int(applied)
        if code == -2:
            return Begun(True, False, None, 0)
        if code == -1:
            raise SessionNotFoundError(session.id)
        return Begun(False, code == 1, Phase(text(found)), int(attempt))

    def finish(
        self, session: Session, sid: str, *, run_id: str, token: str, now: float, why: str
    ) -> AdoptResult:
        """Store ``sid`` (as :meth:`SessionStore.adopt_sid`), release the lease, forget the run.

        The result's ``session`` is only there for a stray sid (``other``, ``finished``): the
        start job reads it only then.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
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
        with redis_errors(self._redis):
            outcome, found, flat = self._finish(
                keys=self._keys(session, run_id), args=[session.id, args, token]
            )
        result = AdoptOutcome(text(outcome))
        if result == AdoptOutcome.MISSING:
            return AdoptResult(result, None, None)
        # The session is decoded only where the job reads it: a sid that nothing follows.
        stray = result in (AdoptOutcome.OTHER, AdoptOutcome.FINISHED)
        after = session_from_hash(session.id, hash_pairs(flat)) if stray else None
        return AdoptResult(result, Phase(text(found)), after)
