"""Single flight: at most one run of a session's job has its API call in flight.

At-least-once delivery means a job may run twice at once: a redelivery after a worker's death, a
message restored after the visibility timeout, a re-queue by the reconciler or the scheduler. A
run holds the session's lease for its action (a Redis key with a ``PX`` expiry, so Redis' clock
decides when a dead holder's lease ends) around its call; another run meanwhile is told to come
back later (:class:`Retry`), never dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.jobs.context import SHORT_WAIT_S, JobContext, Retry
from orchestrator.tasking.timing import longest_run_s

__all__ = ["single_flight"]


@contextmanager
def single_flight(ctx: JobContext, session_id: str, action: str) -> Iterator[None]:
    """Hold the lease of ``action`` for ``session_id`` while the block runs.

    Raises:
        Retry: another run holds it (its call is in flight).
    """
    token = uuid.uuid4().hex
    if not ctx.leases.take(session_id, action, token, longest_run_s(ctx.settings)):
        raise Retry(SHORT_WAIT_S, f"another run of this {action} has its call in flight")
    try:
        yield
    finally:
        ctx.leases.release(session_id, action, token)
