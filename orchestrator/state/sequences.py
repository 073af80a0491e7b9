"""Sequence numbers of updates: an older update never overwrites a newer one.

The producer numbers each update and layout update of a session, per action, when it queues it
(:meth:`UpdateSequences.next`: one script that also refuses a session that is finished or
stopping). The job applies an update only if its number is above the last applied one of that
action, and records the number after a successful call (:meth:`UpdateSequences.record_applied`:
a compare-and-set that never lowers it). So an older layout that is retried, or that arrives
after a newer one was applied, ends without a call.

Both counters are fields of the session hash, so they share its lifetime::

    seq:<action>       the last number given out by the producer
    applied:<action>   the highest number applied (absent: none yet)

They are not part of :class:`Session` (the codec ignores fields it does not model).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.errors import SessionNotFoundError
from orchestrator.state.keys import Keys
from orchestrator.state.scripts import NEXT_SEQUENCE, RECORD_APPLIED
from orchestrator.state.session import Phase

__all__ = ["SEQUENCE_FIELD_PREFIX", "APPLIED_FIELD_PREFIX", "Numbered", "UpdateSequences"]

SEQUENCE_FIELD_PREFIX = "seq:"
APPLIED_FIELD_PREFIX = "applied:"

#: Phases in which a session takes no update: the finished ones, and stopping.
_REFUSING = json.dumps(sorted([p.value for p in Phase.finished()] + [Phase.STOPPING.value]))


@dataclass(frozen=True)
class Numbered:
    """What :meth:`UpdateSequences.next` gave out.

    Attributes:
        sequence: the update's number, from 1; 0 when the session refused it.
        phase: the session's phase at that moment.
    """

    sequence: int
    phase: Phase

    @property
    def is_refused(self) -> bool:
        """True when the session was finished or stopping (no number was given)."""
        return self.sequence == 0


class UpdateSequences:
    """The per-session, per-action sequence numbers of updates.

    Args:
        redis: the client.
        keys: the key names (the session store's).
    """

    def __init__(self, redis: Redis, *, keys: Keys) -> None:
        self._redis = redis
        self.keys = keys
        self._next = redis.register_script(NEXT_SEQUENCE)
        self._record = redis.register_script(RECORD_APPLIED)

    def next(self, session_id: str, action: str) -> Numbered:
        """Give the next update of ``action`` its number, unless the session refuses updates.

        Returns:
            The number (from 1) and the phase seen; number 0 when the session is finished or
            stopping (nothing is counted then).

        Raises:
            SessionNotFoundError: there is no such session.
            StateUnavailableError: Redis cannot be reached.
        """
        with redis_errors(self._redis):
            number, phase = self._next(
                keys=[self.keys.session(session_id)],
                args=[SEQUENCE_FIELD_PREFIX + action, _REFUSING],
            )
        if int(number) == -1:
            raise SessionNotFoundError(session_id)
        return Numbered(int(number), Phase(text(phase)))

    def applied(self, session_id: str, action: str) -> int:
        """The highest number of ``action`` applied to the session (0: none yet, or no session).

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        with redis_errors(self._redis):
            raw = cast(
                "str | bytes | None",
                self._redis.hget(self.keys.session(session_id), APPLIED_FIELD_PREFIX + action),
            )
        return 0 if raw is None else int(text(raw))

    def record_applied(self, session_id: str, action: str, sequence: int) -> bool:
        """Record that update ``sequence`` of ``action`` was applied; never lowers the record.

        Returns:
            Whether the record rose to ``sequence`` (False: a newer one was recorded first, or
            the session is gone).

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        with redis_errors(self._redis):
            raised = self._record(
                keys=[self.keys.session(session_id)],
                args=[APPLIED_FIELD_PREFIX + action, int(sequence)],
            )
        return int(raised) == 1
