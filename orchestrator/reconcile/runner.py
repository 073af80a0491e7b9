"""Running reconcile rounds: fanned out over the workers (beat), or in the foreground (CLI).

One bad session never stops a round. A session whose record does not decode (corrupt, or written
by a newer version) is skipped with one warning line a round, no traceback, and one alert
``corrupt_session`` (deduplicated per session like every alert); nothing is written to it.
"""

from __future__ import annotations

import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from orchestrator.jobs.context import JobContext
from orchestrator.jobs.unreadable import CORRUPT_SESSION
from orchestrator.reconcile.rounds import RoundGate, RoundSummary, batches
from orchestrator.reconcile.session import Outcome, reconcile_session
from orchestrator.state import CorruptSessionError

__all__ = ["gate_for", "fan_out", "reconcile_many", "run_batch", "run_once"]

log = logging.getLogger("orchestrator.reconcile")


def gate_for(ctx: JobContext) -> RoundGate:
    """The round gate of the context's store and settings."""
    return RoundGate(
        ctx.store.redis,
        ctx.store.keys,
        interval_s=ctx.settings.reconcile_interval,
        clock=ctx.clock,
    )


def fan_out(ctx: JobContext) -> str | None:
    """Begin a round and queue its batches; ``None`` if a round is under way or too recent."""
    gate = gate_for(ctx)
    round_id = gate.begin()
    if round_id is None:
        return None
    parts = batches(ctx.store.active_ids(), ctx.settings.reconcile_batch_size)
    summary = gate.batch_done(round_id, add_batches=len(parts))
    for part in parts:
        ctx.send("krtc.reconcile_batch", [round_id, part])
    if summary is not None:
        log.info("reconcile round %s: nothing to reconcile", round_id)
    return round_id


def _safe(ctx: JobContext, session_id: str) -> Outcome:
    try:
        return reconcile_session(ctx, session_id)
    except CorruptSessionError as exc:
        return _skip_unreadable(ctx, session_id, exc)
    except Exception as exc:  # one bad session must not stop the round
        log.exception("reconciling session %s failed", session_id)
        return Outcome(session_id, error=f"{type(exc).__name__}: {exc}")


def _skip_unreadable(ctx: JobContext, session_id: str, exc: CorruptSessionError) -> Outcome:
    """Leave an unreadable session alone: a warning, an alert (once), no traceback."""
    log.warning("session %s skipped: %s (see krtc-rec repair %s)", session_id, exc, session_id)
    ctx.alert(
        CORRUPT_SESSION,
        session_id,
        f"{exc}; the reconciler skips it until repaired (krtc-rec repair {session_id})",
    )
    return Outcome(session_id, skipped=str(exc))


def reconcile_many(ctx: JobContext, session_ids: list[str], *, concurrency: int) -> list[Outcome]:
    """Reconcile ``session_ids`` with up to ``concurrency`` queries in flight; outcomes in order.

    Each reconciliation spends most of its time waiting for ``query``, so a handful of threads
    cut a batch's time almost by their number, and keep it well inside the task's time limit
    when the API is slow.
    """
    workers = min(concurrency, len(session_ids))
    if workers <= 1:
        return [_safe(ctx, session_id) for session_id in session_ids]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
        return list(pool.map(functools.partial(_safe, ctx), session_ids))


def run_batch(ctx: JobContext, round_id: str, session_ids: list[str]) -> list[Outcome]:
    """Reconcile a batch of a round (``KRTC_RECONCILE_BATCH_CONCURRENCY`` queries at once) and
    report it done."""
    outcomes = reconcile_many(
        ctx, session_ids, concurrency=ctx.settings.reconcile_batch_concurrency
    )
    summary = gate_for(ctx).batch_done(
        round_id,
        sessions=len(outcomes),
        queried=sum(o.queried for o in outcomes),
        changes=sum(len(o.changes) for o in outcomes),
    )
    for outcome in outcomes:
        for change in outcome.changes:
            log.info("session %s: %s", outcome.session_id, change)
    if summary is not None:
        _log_summary(summary)
    return outcomes


def _log_summary(summary: RoundSummary) -> None:
    log.info(
        "reconcile round %s: %d sessions, %d queried, %d changes in %.2fs",
        summary.id,
        summary.sessions,
        summary.queried,
        summary.changes,
        summary.duration_s,
    )


def run_once(ctx: JobContext, *, concurrency: int = 16) -> tuple[list[Outcome], float]:
    """One round in the foreground, over every active session; returns outcomes and seconds."""
    started = time.monotonic()
    outcomes = reconcile_many(ctx, ctx.store.active_ids(), concurrency=concurrency)
    return outcomes, time.monotonic() - started
