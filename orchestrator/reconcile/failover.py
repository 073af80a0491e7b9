"""Repairs after a Redis failover (or restart), and of writes the replicas did not acknowledge.

Redis replicates asynchronously. A primary killed a moment after it answered may take its last
writes with it: a queued start or stop message, or a write that the producer waited for in vain
(:mod:`orchestrator.state.replication` marks those sessions *unsure*). Each reconcile round
begins here:

* **a failover noticed**: the primary's run id differs from the one the last round saw (a
  promoted replica, or a restarted server). It is logged, counted
  (``krtc_redis_failovers_total``) and every unfinished session is checked as below.
* **unsure sessions**: those whose write was not acknowledged in time are checked, then
  forgotten.

A session checked this way gets its task queued again when its message may be the lost write:
a pending session (never begun) its start; a session whose stop was requested (desired
``stopped``) and that has a sid, or is stopping, its stop. Both tasks are idempotent (single
flight and phase guards), so a message queued twice costs a no-op run, never a second start.
A session in ``starting`` without a sid is left to its start job (which queues the stop itself
when one was requested meanwhile) and to the usual quiet-time rule of the reconciler.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from redis.exceptions import RedisError

from orchestrator.jobs.context import JobContext
from orchestrator.state import Desired, Phase, Session, Source
from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text

__all__ = ["FAILOVERS_FIELD", "notice_failover", "repair_sessions", "sweep"]

log = logging.getLogger("orchestrator.reconcile")

#: The field of :meth:`Keys.metrics_redis_ha` that counts the failovers noticed.
FAILOVERS_FIELD = "failovers"


def notice_failover(ctx: JobContext) -> bool:
    """Whether the primary changed since the last round (and remember the current one).

    Raises:
        StateUnavailableError: Redis cannot be reached.
    """
    redis = ctx.store.redis
    keys = ctx.store.keys
    with redis_errors(redis):
        info = cast("dict[str, Any]", redis.info("server"))
        run_id = str(info.get("run_id", ""))
        previous = cast("str | bytes | None", redis.getset(keys.ha_primary(), run_id))
    if previous is None or text(previous) == run_id:
        return False
    with redis_errors(redis):
        redis.hincrby(keys.metrics_redis_ha(), FAILOVERS_FIELD, 1)
    log.warning(
        "Redis failover (or restart) noticed: the primary is now %s (run id %s…, was %s…); "
        "checking every unfinished session for a lost start or stop",
        info.get("tcp_port", "?"),
        run_id[:8],
        text(previous)[:8],
    )
    return True


def repair_sessions(ctx: JobContext, ids: list[str], why: str) -> list[str]:
    """Queue again the start or stop that ``ids``' sessions may have lost; the lines of what
    was done."""
    done: list[str] = []
    for session in ctx.store.get_many(ids):
        task = _lost_task(session)
        if task is None:
            continue
        task_id = ctx.send(task, [session.id])
        ctx.store.note(session.id, f"{task} queued again ({task_id})", why=why, source=Source.POLL)
        done.append(f"{session.id}: {task} queued again ({why})")
    return done


def sweep(ctx: JobContext) -> list[str]:
    """What a round does first: after a failover every unfinished session, else the unsure
    ones, are checked (:func:`repair_sessions`); the lines of what was done.

    Never raises for Redis: a round goes on without it (the next one tries again).
    """
    keys = ctx.store.keys
    redis = ctx.store.redis
    try:
        failover = notice_failover(ctx)
        with redis_errors(redis):
            members = cast("list[str | bytes]", redis.zrange(keys.ha_unsure(), 0, -1))
        unsure = [text(m) for m in members]
        ids = ctx.store.active_ids() if failover else unsure
        why = "Redis failover: its message may be lost" if failover else "unreplicated write"
        done = repair_sessions(ctx, ids, why) if ids else []
        if unsure:
            with redis_errors(redis):
                redis.zrem(keys.ha_unsure(), *unsure)
    except (RedisError, OSError) as exc:
        log.warning("failover checks skipped this round: %s", type(exc).__name__)
        return []
    except Exception as exc:  # noqa: BLE001 - a round must go on
        log.warning("failover checks skipped this round: %s", exc)
        return []
    for line in done:
        log.warning("%s", line)
    return done


def _lost_task(session: Session) -> str | None:
    if session.is_finished:
        return None
    if session.desired == Desired.STOPPED:
        if session.sid is not None or session.phase == Phase.STOPPING:
            return "krtc.stop"
        return None
    if session.phase == Phase.PENDING and session.sid is None:
        return "krtc.start"
    return None
