"""The start lane's finishes: a run's sid goes to Redis with its dispatcher's next take.

A start's last step stores its sid, releases its lease and forgets its run (``FINISH_START``,
:meth:`StartFlights.finish`): a round trip of its own, one per start, which costs Redis about
as much CPU as the script itself. A lane worker's dispatcher makes a round trip anyway, to
acknowledge what its runs finished and take new entries for the threads that freed up. So a
run hands its finish to the dispatcher (:meth:`BatchedFinishes.finish`, the job's
``finish=``), which sends the finishes waiting at that moment with its next take, in one
pipeline (:meth:`StartLane.cycle_finishing`), and counts their threads as free: the entries for
them come back in the same round trip.

A finish waits little: the dispatcher goes as soon as one waits (after at most
``FINISH_BATCH_WAIT_S``, a millisecond, for others), and a run sends its finish itself
whenever the dispatcher cannot: while it blocks on an empty lane, after it stopped, when its
round trip failed (the run then tries once more on its own, as its own call would have failed;
every finish is idempotent, so one that Redis applied before an answer was lost only says
``same``), or when it did not send it within :data:`FINISH_WAIT_S`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.state.flights import FinishCall, StartFlights
from orchestrator.state.results import AdoptResult
from orchestrator.state.session import Session

__all__ = ["FINISH_WAIT_S", "BatchedFinishes", "PendingFinish"]

#: A finish the dispatcher has not sent after this long is sent by its run.
FINISH_WAIT_S = 2.0


@dataclass(eq=False)
class PendingFinish:
    """One run's finish, waiting for the dispatcher.

    Attributes:
        call: the script call.
        queued: when it was handed over (``time.monotonic``).
        done: set once it was answered, or handed back.
        reply: the script's reply (or the error Redis answered with).
        yours: handed back: the run sends it itself.
    """

    call: FinishCall
    queued: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    reply: Any = None
    yours: bool = False


class BatchedFinishes:
    """The finishes of one lane consumer's runs, under the consumer's lock.

    Args:
        lock: the consumer's condition: the dispatcher waits on it, a finish notifies it.
        flights: the process's start steps (called when needed).

    The dispatcher, holding ``lock``: :meth:`take` what waits, sets :attr:`blocked` around a
    blocking wait, and :meth:`close` when it stops; then, without it, :meth:`settle` or
    :meth:`hand_back` what it took.
    """

    def __init__(self, lock: threading.Condition, flights: Callable[[], StartFlights]) -> None:
        self._lock = lock
        self._flights = flights
        self._waiting: list[PendingFinish] = []
        #: The dispatcher is in a blocking Redis call: runs send their finishes themselves.
        self.blocked = False
        self._closed = False

    def __len__(self) -> int:
        """Finishes waiting (hold the lock)."""
        return len(self._waiting)

    def finish(
        self, session: Session, sid: str, *, run_id: str, token: str, now: float, why: str
    ) -> AdoptResult:
        """:meth:`StartFlights.finish`, sent with the dispatcher's next take when it can be.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        flights = self._flights()
        pending = PendingFinish(
            flights.finish_call(session, sid, run_id=run_id, token=token, now=now, why=why)
        )
        with self._lock:
            if self.blocked or self._closed:
                pending.yours = True
            else:
                self._waiting.append(pending)
                self._lock.notify_all()
        if not pending.yours and not pending.done.wait(FINISH_WAIT_S):
            with self._lock:
                if any(p is pending for p in self._waiting):
                    self._waiting.remove(pending)
                    pending.yours = True
            if not pending.yours:
                pending.done.wait()  # being sent: its round trip ends (the socket's timeout)
        if pending.yours:
            return flights.finish(session, sid, run_id=run_id, token=token, now=now, why=why)
        if isinstance(pending.reply, Exception):
            raise pending.reply
        return pending.call.result(pending.reply)

    def oldest(self) -> float | None:
        """When the finish that waits longest was handed over (hold the lock)."""
        return self._waiting[0].queued if self._waiting else None

    def take(self) -> list[PendingFinish]:
        """The finishes waiting, for the dispatcher to send (hold the lock)."""
        taken, self._waiting = self._waiting, []
        return taken

    def close(self) -> list[PendingFinish]:
        """No more batching (the dispatcher stops); returns what waits (hold the lock)."""
        self._closed = True
        return self.take()

    @staticmethod
    def settle(pending: list[PendingFinish], replies: list[Any]) -> None:
        """Give each run its reply."""
        for one, reply in zip(pending, replies, strict=True):
            one.reply = reply
            one.done.set()

    @staticmethod
    def hand_back(pending: list[PendingFinish]) -> None:
        """Let each run send its finish itself."""
        for one in pending:
            one.yours = True
            one.done.set()
