"""Reconcile rounds: at most one at a time, at most one per interval, however many beats run.

A round is begun by whichever beat's tick comes first: :meth:`RoundGate.begin` atomically checks
that no round is under way and that the last one began more than ``SPACING`` of an interval ago,
then records the new round with the number of batches it fans out. Each batch reports back with
:meth:`RoundGate.batch_done`; the last one closes the round and records its duration (in the
list of recent rounds, and in the ``krtc_reconcile_round_seconds`` histogram). A round
whose batches are lost (a crash) is closed by the expiry of its key, so rounds never stop.

A batch that reaches its deadline hands the sessions it did not begin to a new batch of the
same round: it reports itself done and adds that batch in one script call, before sending it,
so the round neither closes early nor waits for a batch that was never sent. Adding a batch
renews the round's expiry. The summary counts the sessions handed on, and those left to the
next round by the rate limit.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis

from orchestrator.metrics.histograms import RECONCILE_ROUND_SECONDS
from orchestrator.state import Keys
from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text

__all__ = ["SPACING", "RoundGate", "RoundSummary", "batches"]

#: Rounds begin at least this share of an interval apart (below 1 so beat's jitter is harmless).
SPACING = 0.8
#: Finished rounds kept for inspection and metrics.
ROUNDS_KEPT = 100

_BEGIN = """
-- KEYS[1] round hash, KEYS[2] spacing key
-- ARGV[1] round id, ARGV[2] started, ARGV[3] spacing ms, ARGV[4] round ttl s
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'started', ARGV[2], 'pending', 1,
  'sessions', 0, 'changes', 0, 'queried', 0)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1
"""

_BATCH_DONE = """
-- KEYS[1] round hash, KEYS[2] rounds list, KEYS[3] round duration histogram (metrics)
-- ARGV[1] round id, ARGV[2] sessions, ARGV[3] queried, ARGV[4] changes, ARGV[5] now,
-- ARGV[6] batches to add (the fan-out adds its batches, before sending them, while it
-- closes its own share; a batch at its deadline adds the one it hands on), ARGV[7] the last
-- index of the rounds list to keep, ARGV[8] sessions left to the next round by the rate
-- limit, ARGV[9] sessions handed on, ARGV[10] the round's time to live, seconds (renewed when
-- batches are added), ARGV[11..] the histogram's bucket bounds, increasing
-- (orchestrator.metrics.histograms)
-- Returns the finished round as JSON, or '' while batches are pending (or the round is gone).
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return '' end
redis.call('HINCRBY', KEYS[1], 'sessions', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'queried', ARGV[3])
redis.call('HINCRBY', KEYS[1], 'changes', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'rate_limited', ARGV[8])
redis.call('HINCRBY', KEYS[1], 'handed_on', ARGV[9])
local pending = redis.call('HINCRBY', KEYS[1], 'pending', tonumber(ARGV[6]) - 1)
if pending > 0 then
  if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[10]) end
  return ''
end
local r = redis.call('HMGET', KEYS[1], 'started', 'sessions', 'queried', 'changes',
  'rate_limited', 'handed_on')
local summary = cjson.encode({id = ARGV[1], started = tonumber(r[1]), finished = tonumber(ARGV[5]),
  sessions = tonumber(r[2]), queried = tonumber(r[3]), changes = tonumber(r[4]),
  rate_limited = tonumber(r[5]), handed_on = tonumber(r[6])})
redis.call('DEL', KEYS[1])
local duration = math.max(0, tonumber(ARGV[5]) - tonumber(r[1]))
local bucket = '+Inf'
for i = 11, #ARGV do
  if duration <= tonumber(ARGV[i]) then bucket = ARGV[i]; break end
end
redis.call('HINCRBY', KEYS[3], bucket, 1)
redis.call('HINCRBY', KEYS[3], 'count', 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'sum', duration)
redis.call('LPUSH', KEYS[2], summary)
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[7]))
return summary
"""


_CLAIM_BATCH = """
-- KEYS[1] the batch's claim
-- ARGV[1] 'take' (ARGV[2] token, ARGV[3] lease ms) or 'done' (ARGV[2] token, ARGV[3] ttl s)
-- take: 1 when taken; 0 when a run holds it or it is done (a copy of the message: skip it).
-- done: 1 when the token still held it (now 'done'), else 0.
local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'take' then
  if holder then return 0 end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if holder ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[3])
return 1
"""


def batch_digest(session_ids: list[str]) -> str:
    """A short name for a batch: its session ids, hashed."""
    return hashlib.sha1("\n".join(session_ids).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RoundSummary:
    """A finished round.

    Attributes:
        id: the round.
        started, finished: unix times (the workers' clocks: for display and the histogram).
        sessions: sessions reconciled (each once, whichever batch reached it).
        queried: sessions whose recording was queried.
        changes: changes made or queued.
        rate_limited: sessions not queried because of the rate limit (the next round tries).
        handed_on: sessions a batch passed on to a new batch at its deadline.
    """

    id: str
    started: float
    finished: float
    sessions: int
    queried: int
    changes: int
    rate_limited: int = 0
    handed_on: int = 0

    @property
    def duration_s(self) -> float:
        return self.finished - self.started


def batches(ids: list[str], size: int) -> list[list[str]]:
    """``ids`` cut into batches of at most ``size``."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class RoundGate:
    """Begins and closes rounds in Redis (see the module's description)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self.keys = keys
        self.interval_s = interval_s
        self._clock = clock
        self._begin = redis.register_script(_BEGIN)
        self._claim = redis.register_script(_CLAIM_BATCH)
        self._done = redis.register_script(_BATCH_DONE)

    @property
    def round_ttl_s(self) -> int:
        """How long a round may stay open (lost batches): ten intervals, at least 5 minutes."""
        return int(max(300, 10 * self.interval_s))

    def claim_batch(self, round_id: str, session_ids: list[str], lease_s: float) -> str | None:
        """Claim a batch for this run; ``None`` when another run has it or it is done.

        A batch message may be delivered several times at once (a copy, a visibility-timeout
        restore): only the run that claims it reconciles and reports it, so a round counts each
        batch once. The claim expires on Redis' clock after ``lease_s``: if its run dies, the
        redelivered message claims it again.
        """
        token = uuid.uuid4().hex
        with redis_errors(self._redis):
            taken = self._claim(
                keys=[self.keys.reconcile_batch(round_id, batch_digest(session_ids))],
                args=["take", token, max(1, int(lease_s * 1000))],
            )
        return token if int(taken) else None

    def batch_claimed_done(self, round_id: str, session_ids: list[str], token: str) -> bool:
        """Mark a claimed batch done (later copies skip it); false if the claim was lost."""
        with redis_errors(self._redis):
            done = self._claim(
                keys=[self.keys.reconcile_batch(round_id, batch_digest(session_ids))],
                args=["done", token, self.round_ttl_s],
            )
        return bool(int(done))

    def begin(self) -> str | None:
        """A new round's id, or ``None`` when a round is under way or began too recently."""
        round_id = uuid.uuid4().hex
        with redis_errors(self._redis):
            began = self._begin(
                keys=[self.keys.reconcile_round(), self.keys.reconcile_spacing()],
                args=[
                    round_id,
                    repr(self._clock()),
                    int(self.interval_s * SPACING * 1000),
                    self.round_ttl_s,
                ],
            )
        return round_id if int(began) else None

    def batch_done(
        self,
        round_id: str,
        *,
        sessions: int = 0,
        queried: int = 0,
        changes: int = 0,
        add_batches: int = 0,
        rate_limited: int = 0,
        handed_on: int = 0,
    ) -> RoundSummary | None:
        """Report one batch done; the round's summary if it was the last.

        The fan-out reports its own share with ``add_batches`` = the number of batches, before
        it sends them, so that the round cannot close while they are being sent; a batch at
        its deadline adds the batch it hands ``handed_on`` sessions to the same way.
        """
        with redis_errors(self._redis):
            raw = self._done(
                keys=[
                    self.keys.reconcile_round(),
                    self.keys.reconcile_rounds(),
                    self.keys.metrics_reconcile_seconds(),
                ],
                args=[
                    round_id,
                    sessions,
                    queried,
                    changes,
                    repr(self._clock()),
                    add_batches,
                    ROUNDS_KEPT - 1,
                    rate_limited,
                    handed_on,
                    self.round_ttl_s,
                    *RECONCILE_ROUND_SECONDS.le_labels[:-1],
                ],
            )
        summary = text(raw)
        return RoundSummary(**json.loads(summary)) if summary else None

    def recent(self, limit: int = 20) -> list[RoundSummary]:
        """Finished rounds, newest first."""
        with redis_errors(self._redis):
            raw = cast(
                "list[str | bytes]",
                self._redis.lrange(self.keys.reconcile_rounds(), 0, limit - 1),
            )
        return [RoundSummary(**cast(dict[str, Any], json.loads(text(r)))) for r in raw]
