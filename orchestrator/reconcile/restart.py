"""The restart policy of spec D14: a recording that exited abnormally may start again.

A session started with ``restart_on_failure`` that the reconciler finds at status 20 is
restarted as a **new session** for the same channel (same appId, cname, uid, mode and start
request): the failed session stays failed, with ``restarted_to`` naming the new one, and the new
one has ``restarted_from`` naming the failed one. Both histories say so. The new session inherits
the policy and counts the restarts of its chain (``restarts``), so a recording that keeps
failing is restarted at most ``max_restarts`` times in all.

Only the reconciler that moved the session to ``failed`` restarts it (the move is a
compare-and-set), so a status 20 seen by several pollers restarts once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from orchestrator.jobs.context import JobContext
from orchestrator.state import Desired, Session, Source

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
    created = ctx.store.create(
        app_id=failed.app_id,
        cname=failed.cname,
        uid=failed.uid,
        mode=failed.mode,
        request=failed.request,
        max_duration_s=failed.max_duration_s,
        restarted_from=failed.id,
        restart_on_failure=True,
        max_restarts=failed.max_restarts,
        restarts=number,
        source=Source.POLL,
        why=f"restart {number} of {failed.max_restarts}: session {failed.id} exited "
        "abnormally (status 20)",
    )
    if not created.created:
        # Someone started this channel again meanwhile: that recording stands.
        ctx.store.note(
            failed.id,
            "not restarted",
            source=Source.POLL,
            why=f"session {created.session.id} already holds its (appId, cname, uid)",
        )
        outcome.note(f"not restarted: session {created.session.id} holds the identity")
        return None
    new_id = created.session.id
    ctx.store.transition(
        failed.id,
        restarted_to=new_id,
        why=f"restart policy: restarted as session {new_id} ({number} of {failed.max_restarts})",
        source=Source.POLL,
    )
    task = ctx.send("krtc.start", [new_id])
    log.info("session %s restarted as %s (start task %s)", failed.id, new_id, task)
    outcome.note(f"restarted as session {new_id} ({number} of {failed.max_restarts})")
    return new_id
