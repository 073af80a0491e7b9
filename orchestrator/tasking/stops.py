"""Stopping a recording that may have been restarted: the stop follows the chain.

A web app keeps the id of the session it started. When the restart policy (spec D14) replaces
that session after an abnormal exit, the recording now runs in its successor (``restarted_to``),
and maybe in the successor's successor. :func:`stop_chain` records the stop on every session of
the chain from the given one on and queues a stop for each that needs one, so ``stop(original
id)``, ``krtc-rec stop`` and a scheduled end all reach the live recording. Recording the stop on
a finished session also refuses any restart of it still to come (the restart reads ``desired``
in the same script that creates the successor).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from orchestrator.state import SessionNotFoundError, SessionStore, Source, StopRequestResult

__all__ = ["MAX_RESTART_HOPS", "STOP_TASK", "StopStep", "stop_chain", "stop_steps"]

#: The task that stops a session's recording.
STOP_TASK = "krtc.stop"
#: Sessions followed along ``restarted_to`` at most (a chain longer than any restart policy).
MAX_RESTART_HOPS = 50

log = logging.getLogger("orchestrator.tasking")


def stop_chain(
    store: SessionStore,
    send: Callable[[str, list[Any]], str],
    session_id: str,
    *,
    why: str,
    source: Source = Source.PRODUCER,
) -> StopRequestResult:
    """Request the stop of ``session_id`` and of every session that restarted it.

    Args:
        store: the session store.
        send: queues a task by name (``krtc.stop`` for each session that needs a stop call).
        session_id: the session the caller knows (the first of its chain, or any other).
        why, source: for the histories.

    Returns:
        The outcome for the last session of the chain: the live recording, if any.

    Raises:
        SessionNotFoundError: ``session_id`` does not exist.
        StateUnavailableError: Redis (or the broker) is unreachable; what was recorded stays,
            and the reconciler queues any stop that could not be sent.
    """
    chain = stop_steps(session_id, why)
    step = next(chain)
    stopped: list[str] = []
    try:
        while True:
            reply: StopRequestResult | SessionNotFoundError
            try:
                reply = store.request_stop(step.session_id, why=step.why, source=source)
                stopped.append(reply.session.id)
            except SessionNotFoundError as exc:
                reply = exc
            if isinstance(reply, StopRequestResult) and reply.needs_stop_call:
                send(STOP_TASK, [reply.session.id])
            try:
                step = chain.send(reply)
            except StopIteration as done:
                last: StopRequestResult = done.value
                return last
    finally:
        if stopped:
            # The stop requests and their messages on the replicas before the caller relies
            # on them (a failover right after this call keeps them).
            store.replica_acks.confirm("stop", stopped)


@dataclass(frozen=True)
class StopStep:
    """The next stop to request: a session of the chain, and why."""

    session_id: str
    why: str


def stop_steps(
    session_id: str, why: str
) -> Generator[StopStep, StopRequestResult | SessionNotFoundError, StopRequestResult]:
    """The chain of :func:`stop_chain` without its I/O (the async producer drives it too).

    Yields the stops to request; is sent each one's result, or the ``SessionNotFoundError`` it
    raised (``session_id``'s own is raised again); returns the outcome of the last session.
    """
    reply = yield StopStep(session_id, why)
    if isinstance(reply, SessionNotFoundError):
        raise reply
    result = reply
    for _ in range(MAX_RESTART_HOPS):
        successor = result.session.restarted_to
        if successor is None:
            return result
        reply = yield StopStep(successor, f"{why} (restart of session {result.session.id})")
        if isinstance(reply, SessionNotFoundError):
            log.warning("session %s: its successor %s is gone", result.session.id, successor)
            return result
        result = reply
    log.warning("stop of session %s: restart chain longer than %d", session_id, MAX_RESTART_HOPS)
    return result
