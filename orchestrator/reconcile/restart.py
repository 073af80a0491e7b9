"""The restart policy of spec D14: a recording that exited abnormally may start again.

A session started with ``restart_on_failure`` that the reconciler finds at status 20 is
restarted as a **new session** for the same channel (same appId, cname, uid, mode and start
request): the failed session stays failed, with ``restarted_to`` naming the new one, and the new
one has ``restarted_from`` naming the failed one. Both histories say so. The new session inherits
the policy and counts the restarts of its chain (``restarts``), so a recording that keeps
failing is restarted at most ``max_restarts`` times in all.

Only the reconciler that moved the session to ``failed`` restarts it (the move is a
compare-and-set), so a status 20 seen by several pollers restarts once. The restart itself is
one script (the session-create script with ``restart_of``): it reads the failed session's state
at that moment, so a stop requested meanwhile (even after the failure: ``request_stop`` records
``desired`` on a finished session) means no restart, and it creates the successor, links both
sessions and queues the start together. A stop of the original id follows the link
(:func:`orchestrator.tasking.stops.stop_chain`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from orchestrator.jobs.context import JobContext
from orchestrator.state import Desired, RestartRefusedError, Session, Source

if TYPE_CHECKING:
    from orchestrator.reconcile.session import Outcome

__all__ = ["restart_failed"]

log = logging.getLogger("orchestrator.reconcile")


def restart_failed(ctx: JobContext, failed: Session, outcome: Outcome) -> str | None:
    """Restart ``failed`` (just moved to ``failed`` on status 20) if its policy allows.

    Args:
        ctx: the job context (store, task sender).
        failed: the session as it was before it failed.
        outcome: where the change is noted.

    Returns:
        The new session's id, or ``None`` when it is not restarted.
    """
    if not failed.restart_on_failure or failed.desired != Desired.RECORDING:
        return None
    if not failed.may_restart:
        ctx.store.note(
            failed.id,
            "not restarted",
            source=Source.POLL,
            why=f"restart policy: its chain has made {failed.restarts} of "
            f"{failed.max_restarts} restarts",
        )
        outcome.note(f"not restarted: {failed.restarts} of {failed.max_restarts} restarts made")
        return None
    number = failed.restarts + 1
    try:
        # One atomic step: re-read the failed session (still failed, not restarted, still
        # desired recording: a stop requested during the query means no restart), create the
        # successor, link both, and queue its start.
        created = ctx.start_queue().create(
            app_id=failed.app_id,
            cname=failed.cname,
            uid=failed.uid,
            mode=failed.mode,
            request=failed.request,
            max_duration_s=failed.max_duration_s,
            restart_on_failure=True,
            max_restarts=failed.max_restarts,
            restarts=number,
            source=Source.POLL,
            why=f"restart {number} of {failed.max_restarts}: session {failed.id} exited "
            "abnormally (status 20)",
            restart_of=failed,
        )
    except RestartRefusedError as exc:
        ctx.store.note(failed.id, "not restarted", source=Source.POLL, why=str(exc))
        outcome.note(f"not restarted: {exc.why.replace('_', ' ')}")
        return None
    new = created.session
    if not created.created:
        if new.restarted_from == failed.id:
            return new.id  # restarted by an earlier run of this step
        # Someone started this channel again meanwhile: that recording stands.
        ctx.store.note(
            failed.id,
            "not restarted",
            source=Source.POLL,
            why=f"session {new.id} already holds its (appId, cname, uid)",
        )
        outcome.note(f"not restarted: session {new.id} holds the identity")
        return None
    log.info("session %s restarted as %s", failed.id, new.id)
    outcome.note(f"restarted as session {new.id} ({number} of {failed.max_restarts})")
    return new.id
