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
from collections.abc import Callable
from typing import Any

from orchestrator.state import SessionNotFoundError, SessionStore, Source, StopRequestResult

__all__ = ["MAX_RESTART_HOPS", "STOP_TASK", "stop_chain"]

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
    result = store.request_stop(session_id, why=why, source=source)
    stopped = [result.session.id]
    for _ in range(MAX_RESTART_HOPS):
        if result.needs_stop_call:
            send(STOP_TASK, [result.session.id])
        successor = result.session.restarted_to
        if successor is None:
            # The stop requests and their messages on the replicas before the caller relies on
            # them (a failover right after this call keeps them).
            store.replica_acks.confirm("stop", stopped)
            return result
        try:
            result = store.request_stop(
                successor, why=f"{why} (restart of session {result.session.id})", source=source
            )
            stopped.append(result.session.id)
        except SessionNotFoundError:
            log.warning("session %s: its successor %s is gone", result.session.id, successor)
            store.replica_acks.confirm("stop", stopped)
            return result
    store.replica_acks.confirm("stop", stopped)
    log.warning("stop of session %s: restart chain longer than %d", session_id, MAX_RESTART_HOPS)
    return result
