"""Running reconcile rounds: fanned out over the workers (beat), or in the foreground (CLI).

A batch is bounded by time as well as by count: it begins no session after its budget
(:func:`orchestrator.tasking.timing.batch_budget_s`, measured with the worker's monotonic clock), so
that the sessions it has begun still end before the task's soft time limit, well inside the
hard limit and the visibility timeout, however slow the API is. The sessions it did not begin
go to a new batch of the same round.

Sessions are read in chunks (:data:`READ_CHUNK` at most), one round trip per chunk: each
thread of a batch takes the next chunk, reads it, and reconciles its sessions one after the
other from what was read (see :mod:`orchestrator.reconcile.session` for why that is safe).

One bad session never stops a round. A session whose record does not decode (corrupt, or written
by a newer version) is skipped with one warning line a round, no traceback, and one alert
``corrupt_session`` (deduplicated per session like every alert); nothing is written to it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator

from orchestrator.errors import StateError
from orchestrator.jobs.context import JobContext
from orchestrator.jobs.unreadable import CORRUPT_SESSION
from orchestrator.reconcile.failover import sweep
from orchestrator.reconcile.rounds import RoundGate, RoundSummary, batches
from orchestrator.reconcile.session import NOT_READ, Outcome, Snapshot, reconcile_session
from orchestrator.state import CorruptSessionError
from orchestrator.tasking.timing import batch_budget_s, hard_time_limit_s

__all__ = ["gate_for", "fan_out", "reconcile_many", "run_batch", "run_once"]

log = logging.getLogger("orchestrator.reconcile")

#: Most sessions read in one round trip by a thread of :func:`reconcile_many`.
READ_CHUNK = 16


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
    # Lost starts and stops of a failover (or of unacknowledged writes) are queued first, on
    # every tick: a round begun before the failover may hold the gate until its lost batches
    # come back (the visibility timeout). Only one tick sees the old primary (GETSET).
    sweep(ctx)
    gate = gate_for(ctx)
    round_id = gate.begin()
    if round_id is None:
        return None
    ids = ctx.store.active_ids()
    # A fresh order each round: the sessions that the rate limit leaves out (the last ones to
    # ask for a slot) are not the same ones every round.
    random.shuffle(ids)
    parts = batches(ids, ctx.settings.reconcile_batch_size)
    summary = gate.batch_done(round_id, add_batches=len(parts))
    for part in parts:
        ctx.send("krtc.reconcile_batch", [round_id, part])
    if summary is not None:
        log.info("reconcile round %s: nothing to reconcile", round_id)
    return round_id


def _safe(
    ctx: JobContext, deadline: float | None, session_id: str, snapshot: Snapshot = NOT_READ
) -> Outcome:
    """Reconcile one session unless ``deadline`` has passed; never raises."""
    if deadline is not None and time.monotonic() >= deadline:
        return Outcome(session_id, deferred=True)
    try:
        return reconcile_session(ctx, session_id, deadline=deadline, snapshot=snapshot)
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


def reconcile_many(
    ctx: JobContext,
    session_ids: list[str],
    *,
    concurrency: int,
    deadline: float | None = None,
) -> list[Outcome]:
    """Reconcile ``session_ids`` with up to ``concurrency`` queries in flight; outcomes in order.

    Each reconciliation spends most of its time waiting for ``query``, so a handful of threads
    cut a batch's time almost by their number. Each thread takes the next chunk of sessions
    (:func:`chunk_size`), reads them in one round trip, then reconciles them one by one.

    Args:
        ctx: the services.
        session_ids: the sessions.
        concurrency: reconciliations at once.
        deadline: ``time.monotonic()`` after which no session is begun: those left are
            returned with ``deferred`` set (``None``: no deadline). The first session is
            always begun, so that handing on the rest always makes progress.
    """
    if not session_ids:
        return []
    workers = max(1, min(concurrency, len(session_ids)))
    size = chunk_size(len(session_ids), workers)
    outcomes: list[Outcome | None] = [None] * len(session_ids)
    chunks = iter(range(0, len(session_ids), size))
    lock = threading.Lock()

    def next_chunk() -> Iterator[int]:
        while True:
            with lock:
                start = next(chunks, None)
            if start is None:
                return
            yield start

    def work() -> None:
        for start in next_chunk():
            ids = session_ids[start : start + size]
            first = None if start == 0 else deadline
            if first is not None and time.monotonic() >= first:
                snapshots: list[Snapshot] = [NOT_READ] * len(ids)  # deferred, unread
            else:
                snapshots = _read_chunk(ctx, ids)
            for n, (session_id, snapshot) in enumerate(zip(ids, snapshots, strict=True)):
                limit = None if start + n == 0 else deadline
                outcomes[start + n] = _safe(ctx, limit, session_id, snapshot)

    # The calling thread is one of the workers: a batch of concurrency 2 starts one thread.
    threads = [
        threading.Thread(target=work, name=f"reconcile-{n}", daemon=True) for n in range(1, workers)
    ]
    for thread in threads:
        thread.start()
    try:
        work()
    finally:
        for thread in threads:
            thread.join()
    missing = [session_ids[n] for n, o in enumerate(outcomes) if o is None]
    if missing:  # a thread died (it never should: _safe catches everything)
        raise RuntimeError(f"{len(missing)} sessions were not reconciled")
    return [o for o in outcomes if o is not None]


def chunk_size(count: int, workers: int) -> int:
    """Sessions per read: every thread gets about two chunks (so they finish close together),
    at most :data:`READ_CHUNK`."""
    return max(1, min(READ_CHUNK, -(-count // (2 * workers))))


def _read_chunk(ctx: JobContext, ids: list[str]) -> list[Snapshot]:
    """The stored hashes of ``ids`` in one round trip; when that fails (Redis, or a value that
    is not UTF-8), :data:`NOT_READ` for each: each session is then read on its own, and its own
    error (or record that does not decode) is its outcome alone."""
    try:
        return list(ctx.store.read_hashes(ids))
    except (StateError, UnicodeDecodeError) as exc:
        log.debug("reading %d sessions at once failed (%s); one by one", len(ids), exc)
    except Exception:  # never stop a round for it: the reads one by one still run
        log.exception("reading %d sessions at once failed; one by one", len(ids))
    return [NOT_READ] * len(ids)


def run_batch(
    ctx: JobContext, round_id: str, session_ids: list[str], *, budget_s: float | None = None
) -> list[Outcome]:
    """Reconcile a batch of a round (``KRTC_RECONCILE_BATCH_CONCURRENCY`` queries at once)
    within its time budget, hand on what it did not begin, and report it done.

    Args:
        ctx: the services (``ctx.send`` queues the batch handed on).
        round_id: the round.
        session_ids: the batch.
        budget_s: seconds after which no session is begun (default:
            :func:`~orchestrator.tasking.timing.batch_budget_s` of the settings).

    Returns:
        an outcome per session, in order; those not begun have ``deferred`` set.
    """
    if budget_s is None:
        budget_s = batch_budget_s(ctx.settings)
    gate = gate_for(ctx)
    # One run per batch, however many copies of its message are delivered at once.
    token = gate.claim_batch(round_id, session_ids, hard_time_limit_s(ctx.settings))
    if token is None:
        log.info("reconcile round %s: a batch of %d is run elsewhere", round_id, len(session_ids))
        return []
    began = time.monotonic()
    outcomes = reconcile_many(
        ctx,
        session_ids,
        concurrency=ctx.settings.reconcile_batch_concurrency,
        deadline=began + budget_s,
    )
    reached = [o for o in outcomes if not o.deferred]
    left = [o.session_id for o in outcomes if o.deferred]
    gate.batch_claimed_done(round_id, session_ids, token)
    summary = gate.batch_done(
        round_id,
        sessions=len(reached),
        queried=sum(o.queried for o in reached),
        changes=sum(len(o.changes) for o in reached),
        rate_limited=sum(o.rate_limited for o in reached),
        handed_on=len(left),
        add_batches=1 if left else 0,
    )
    for outcome in reached:
        for change in outcome.changes:
            log.info("session %s: %s", outcome.session_id, change)
    limited = sum(o.rate_limited for o in reached)
    if limited:
        log.info(
            "reconcile round %s: %d sessions not queried for the rate limit of their appId; "
            "the next round tries again",
            round_id,
            limited,
        )
    if left:
        _hand_on(ctx, gate, round_id, left, time.monotonic() - began)
    if summary is not None:
        _log_summary(summary)
    return outcomes


def _hand_on(
    ctx: JobContext, gate: RoundGate, round_id: str, session_ids: list[str], seconds: float
) -> None:
    """Queue ``session_ids`` as a new batch of the round (already counted by the gate)."""
    log.info(
        "reconcile round %s: batch deadline reached after %.2fs; %d sessions handed on to a "
        "new batch",
        round_id,
        seconds,
        len(session_ids),
    )
    try:
        ctx.send("krtc.reconcile_batch", [round_id, session_ids])
    except Exception:
        # Not sent: release the batch the gate was told about, or the round would stay open
        # until its key expires. These sessions wait for the next round.
        log.exception("reconcile round %s: the handed-on batch could not be queued", round_id)
        summary = gate.batch_done(round_id)
        if summary is not None:
            _log_summary(summary)


def _log_summary(summary: RoundSummary) -> None:
    log.info(
        "reconcile round %s: %d sessions, %d queried, %d changes, %d rate-limited, "
        "%d handed on in %.2fs",
        summary.id,
        summary.sessions,
        summary.queried,
        summary.changes,
        summary.rate_limited,
        summary.handed_on,
        summary.duration_s,
    )


def run_once(ctx: JobContext, *, concurrency: int = 16) -> tuple[list[Outcome], float]:
    """One round in the foreground, over every active session; returns outcomes and seconds.

    It has no deadline (nothing times it out); the rate limit still applies to its queries.
    """
    started = time.monotonic()
    sweep(ctx)
    outcomes = reconcile_many(ctx, ctx.store.active_ids(), concurrency=concurrency)
    return outcomes, time.monotonic() - started
