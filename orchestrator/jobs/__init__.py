"""The jobs the workers run: plain functions of a :class:`JobContext` and a session id.

They know nothing of Celery: a job returns an outcome, raises :class:`Retry` to be run again
later, or raises :class:`JobFailedError` to go to the dead letters. ``workers.tasks`` maps these
onto Celery.
"""

from orchestrator.jobs.context import JobContext, JobFailedError, Retry
from orchestrator.jobs.start import run_begun_start, run_start
from orchestrator.jobs.stop import run_stop
from orchestrator.jobs.stray import run_stop_stray
from orchestrator.jobs.update import UPDATE_ACTIONS, run_update

__all__ = [
    "UPDATE_ACTIONS",
    "JobContext",
    "JobFailedError",
    "Retry",
    "run_start",
    "run_begun_start",
    "run_stop",
    "run_stop_stray",
    "run_update",
]
