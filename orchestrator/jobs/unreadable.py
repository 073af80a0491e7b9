"""A session record the job cannot read (corrupt, or written by a newer version): give up at once.

Such a record never gets better by trying again, and must not be rewritten by code that cannot
read it. So the job does not retry and writes nothing: it raises :class:`JobFailedError` with an
error of kind ``corrupt_session``, which becomes exactly one dead letter per job, and one alert
``corrupt_session`` per session (``workers.failures``). The reason names the session and the
field that does not decode, never the stored value. ``krtc-rec repair`` shows the record and lets
a person release it.

One exception to "writes nothing": the start lane's take begins the starts it takes before the
job decodes the session (:mod:`orchestrator.state.lane`). It checks what it writes (the phase,
a stop requested, the schema version, the attempts counter) and leaves any other session alone,
so a session broken in another field is moved to ``starting`` with its attempt counted; the job
then fails as here and releases the start lease. Nothing is sent for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from orchestrator.jobs.context import JobContext, JobFailedError
from orchestrator.state import CorruptSessionError

__all__ = ["CORRUPT_SESSION", "unreadable_error", "failing_on_unreadable"]

#: The error kind of a job that met an unreadable record (and the kind of its alert).
CORRUPT_SESSION = "corrupt_session"


def unreadable_error(error: CorruptSessionError, at: float) -> dict[str, Any]:
    """The error record of a job that met an unreadable session (safe to store)."""
    return {
        "kind": CORRUPT_SESSION,
        "status": None,
        "code": None,
        "reason": f"{error}; not retried (krtc-rec repair {error.session_id})",
        "at": at,
    }


@contextmanager
def failing_on_unreadable(ctx: JobContext, action: str, session_id: str) -> Iterator[None]:
    """Turn a :class:`CorruptSessionError` raised in the block into the job's failure.

    Raises:
        JobFailedError: the session (or the one the error names) does not decode.
    """
    try:
        yield
    except CorruptSessionError as exc:
        raise JobFailedError(action, session_id, unreadable_error(exc, ctx.clock())) from None
