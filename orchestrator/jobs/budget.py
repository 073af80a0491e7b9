"""The budget of one run of a job: the attempts it may make and how long it may wait.

A run is one task message and its retries (the task id). Its attempts are counted under its
own id (:class:`orchestrator.state.RunBudgets`), so each start, each stop request and each
update gets its full budget, whatever earlier runs of the session spent; the session's
``attempts`` are only counted for people. Waits (for a start's sid, for the end of a stopped
recording) are bounded by time on the deployment's clock (Redis'), from the run's first look.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import StateError
from orchestrator.jobs.context import JobContext
from orchestrator.state import RunBudgets

__all__ = ["RunBudget", "WAIT_SID", "WAIT_CONFIRM", "forget_run"]

#: What a run waits for: the sid of a start still under way.
WAIT_SID = "sid"
#: What a run waits for: status 8 after the server accepted a stop.
WAIT_CONFIRM = "confirm"


@dataclass
class RunBudget:
    """The counters of one run.

    Attributes:
        run_id: the run's id (the task id; the same across the task's retries).
        runs: where runs are counted.
        clock: the deployment's clock (Redis' time).
        settled: the job already deleted the run's counters (the run ended in the same script
            as its last write), so the task need not delete them again.
    """

    run_id: str
    runs: RunBudgets
    clock: Callable[[], float]
    settled: bool = False

    @classmethod
    def of(cls, ctx: JobContext, run_id: str) -> RunBudget:
        """The budget of run ``run_id`` in ``ctx``'s Redis, on its clock."""
        return cls(run_id, ctx.runs, ctx.clock)

    def count_attempt(self) -> int:
        """Count one API call of this run; returns the run's attempt number, from 1.

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        return self.runs.count_attempt(self.run_id)

    def waited_s(self, what: str) -> float:
        """Seconds since this run first waited for ``what`` (0 the first time it asks).

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        now = self.clock()
        return max(0.0, now - self.runs.waiting_since(self.run_id, what, now))


def forget_run(ctx: JobContext, run_id: str) -> None:
    """Delete an ended run's budget counters (they would expire anyway: never fail for it)."""
    try:
        ctx.runs.forget(run_id)
    except StateError as exc:
        logging.getLogger("orchestrator.jobs").warning(
            "could not delete the counters of run %s: %s", run_id, exc
        )
