"""The Celery tasks: thin wrappers that run a job and map its outcome onto Celery.

=================  ====================================  =====================================
task               arguments                             job
=================  ====================================  =====================================
``krtc.start``     session id                            :func:`orchestrator.jobs.run_start`
``krtc.stop``      session id                            :func:`orchestrator.jobs.run_stop`
``krtc.update``    session id, clientRequest[, sequence]  :func:`orchestrator.jobs.run_update`
``krtc.update_layout``  session id, clientRequest[, sequence]  (the same, for update-layout)
``krtc.stop_stray``  session id, reference                :func:`orchestrator.jobs.run_stop_stray`
``krtc.gc``        (none; beat)                          :class:`orchestrator.retention.Collector`
=================  ====================================  =====================================

Arguments never hold a secret: sessions and storage profiles are loaded by the worker. An
update's sequence number (given by the producer) may be missing in messages of older producers:
then the update is applied as it comes. A job's :class:`Retry` becomes ``task.retry`` (no retry
limit here: the job keeps its own budget, per run, under the task id, which a retry keeps: see
:mod:`orchestrator.jobs.budget`); :class:`JobFailedError` and any unexpected error end as
FAILURE, which :mod:`workers.failures` turns into exactly one dead letter. When a run ends
(done or failed), its budget's counters are deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject
from celery.signals import worker_ready, worker_shutdown

from orchestrator.jobs import (
    JobContext,
    JobFailedError,
    Retry,
    run_start,
    run_stop,
    run_stop_stray,
    run_update,
)
from orchestrator.jobs.budget import RunBudget, forget_run
from orchestrator.reconcile.runner import fan_out, run_batch
from workers import failures, heartbeat, lane, redelivery, runtime, wakeup
from workers.delivery import MAX_DELIVERIES, DeliveryCounter, worker_lost

__all__ = ["TASK_NAMES", "TASK_ACTIONS", "register"]

log = logging.getLogger("workers.tasks")

#: task name -> the action its dead letters and attempt counters use.
TASK_ACTIONS = {
    "krtc.start": "start",
    "krtc.stop": "stop",
    "krtc.update": "update",
    "krtc.update_layout": "update-layout",
    "krtc.stop_stray": "stop",
}
TASK_NAMES = tuple(TASK_ACTIONS)


def _run(
    task: Task,
    job: Callable[[JobContext, str], str],
    settled: Callable[[], bool] = lambda: False,
) -> str:
    ctx = runtime.context(task.app.conf.krtc_settings, task.app)
    request = task.request
    task_id = str(request.id)
    retries = int(request.retries or 0)
    counter = DeliveryCounter(ctx.store.redis, ctx.store.keys.prefix)
    redelivered = bool((request.delivery_info or {}).get("redelivered"))
    # A redelivery means an earlier run of this message did not end (its worker died):
    # count those, so that a message that kills every worker is given up, not looped.
    died = counter.begin(task_id, retries) if redelivered else 0
    try:
        if died >= MAX_DELIVERIES:
            raise worker_lost(
                TASK_ACTIONS.get(task.name, task.name),
                str(request.args[0]) if request.args else "?",
                died,
                ctx.clock(),
            )
        outcome = job(ctx, task_id)
    except JobFailedError as exc:
        # Record the letter here, with the job's structured error: by the time Celery's
        # task_failure signal fires, the exception may have been rebuilt for serialization.
        failures.record(task, task_id, exc, list(request.args or []))
        forget_run(ctx, task_id)
        raise
    except Retry as signal:
        log.info("%s[%s] retry in %.1fs: %s", task.name, task_id, signal.delay_s, signal.reason)
        try:
            raise task.retry(countdown=signal.delay_s, max_retries=None) from None
        except Reject as exc:
            # The retry could not be published (broker down): keep the message instead of
            # dropping it (Celery's default here is requeue=False, which loses a stop).
            raise Reject(exc, requeue=True) from None
    finally:
        if redelivered:
            counter.end(task_id, retries)
    if not settled():
        forget_run(ctx, task_id)
    return outcome


def register(app: Celery) -> None:
    """Register the tasks and the dead-letter hook on ``app``."""
    options: dict[str, Any] = {"bind": True, "acks_late": True, "max_retries": None}

    def start(self: Task, session_id: str) -> str:
        budgets: list[RunBudget] = []

        def job(ctx: JobContext, run_id: str) -> str:
            budgets.append(RunBudget.of(ctx, run_id))
            return run_start(ctx, session_id, run_id=run_id, budget=budgets[-1])

        # A start that stored its sid deleted its run's counters in the same script.
        return _run(self, job, lambda: bool(budgets) and budgets[-1].settled)

    def stop(self: Task, session_id: str) -> str:
        return _run(self, lambda ctx, run_id: run_stop(ctx, session_id, run_id=run_id))

    def update(
        self: Task, session_id: str, client_request: dict[str, Any], sequence: int | None = None
    ) -> str:
        return _run(
            self,
            lambda ctx, run_id: run_update(
                ctx, session_id, "update", client_request, run_id=run_id, sequence=sequence
            ),
        )

    def update_layout(
        self: Task, session_id: str, client_request: dict[str, Any], sequence: int | None = None
    ) -> str:
        return _run(
            self,
            lambda ctx, run_id: run_update(
                ctx, session_id, "update-layout", client_request, run_id=run_id, sequence=sequence
            ),
        )

    def stop_stray(self: Task, session_id: str, reference: dict[str, Any]) -> str:
        # The stray stop counts its attempts with the task's retries (it has no Redis wait).
        attempt = int(self.request.retries or 0) + 1
        return _run(self, lambda ctx, _run_id: run_stop_stray(ctx, session_id, reference, attempt))

    for name, function in (
        ("krtc.stop_stray", stop_stray),
        ("krtc.start", start),
        ("krtc.stop", stop),
        ("krtc.update", update),
        ("krtc.update_layout", update_layout),
    ):
        app.task(name=name, **options)(function)

    def reconcile(self: Task) -> str:
        ctx = runtime.context(self.app.conf.krtc_settings, self.app)
        round_id = fan_out(ctx)
        return f"round {round_id}" if round_id else "skipped: a round is under way or too recent"

    def reconcile_batch(self: Task, round_id: str, session_ids: list[str]) -> str:
        ctx = runtime.context(self.app.conf.krtc_settings, self.app)
        outcomes = run_batch(ctx, round_id, session_ids)
        reached = [o for o in outcomes if not o.deferred]
        return (
            f"{len(reached)} sessions, {sum(len(o.changes) for o in reached)} changes, "
            f"{len(outcomes) - len(reached)} handed on"
        )

    app.task(name="krtc.reconcile", bind=True)(reconcile)
    app.task(name="krtc.reconcile_batch", bind=True, acks_late=True)(reconcile_batch)

    def schedule_tick(self: Task) -> str:
        from orchestrator.schedule.tick import run_tick

        ctx = runtime.context(self.app.conf.krtc_settings, self.app)
        return str(run_tick(ctx))

    # Not acks_late: a lost tick is replaced by the next one, and claims survive in Redis.
    app.task(name="krtc.schedule_tick", bind=True)(schedule_tick)

    def gc(self: Task) -> str:
        from orchestrator.retention import Collector, RetentionPolicy

        settings = self.app.conf.krtc_settings
        ctx = runtime.context(settings, self.app)
        collector = Collector(
            ctx.store.redis,
            ctx.store.keys,
            policy=RetentionPolicy.from_settings(settings),
            clock=ctx.store.clock,
        )
        report = collector.run_gated()
        if report is None:
            return "skipped: a collector run began less than an interval ago"
        return " ".join(f"{kind}={count}" for kind, count in report.deleted.items())

    # Not acks_late: a lost run is replaced by the next one; every deletion is idempotent.
    app.task(name="krtc.gc", bind=True)(gc)

    settings = app.conf.krtc_settings

    def deliver_alerts(sender: Any = None, **_: Any) -> None:
        # Each worker delivers what any process left in the alert outbox (one that died before
        # delivering), not only the alerts it raises itself.
        if getattr(sender, "app", None) is not app:
            return
        try:
            ctx = runtime.context(settings, app)
            if ctx.alerter is not None:
                ctx.alerter.start()
            # Lifecycle events wait in their own outbox; every worker delivers them.
            if ctx.events is not None:
                ctx.events.start()
        except Exception:
            log.exception("could not start alert or event delivery")

    failures.connect(app)
    worker_ready.connect(deliver_alerts, weak=False)
    # Before the context closes: the lane's running starts use its HTTP session.
    lane.connect(app)
    worker_shutdown.connect(lambda **_: runtime.close(), weak=False)
    redelivery.connect(app)
    wakeup.connect(app)
    heartbeat.connect(app)
