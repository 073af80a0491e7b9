"""The worker's start lane consumer: starts run here, outside Celery's per-message machinery.

Celery and kombu cost about 1.6 ms of CPU per message (``BRPOP``, the unacked index, the ack,
the request and the pool hand-off: docs/performance.md); a start's own work costs less than
that. So starts wait in the start lane (:mod:`orchestrator.state.lane`), and every worker
process runs a consumer beside its Celery pool: a dispatcher thread takes as many starts as it
has free threads in one script (acknowledging the finished ones in the same round trip), and
its threads run :func:`orchestrator.jobs.run_start`, the job the ``krtc.start`` task runs.
Without a per-appId rate limit the take also begins each start (lease, ``starting``, attempts:
the job's own first step) and its thread goes on from there
(:func:`orchestrator.jobs.run_begun_start`). A run's last step (its sid stored, its lease
released) goes with the dispatcher's next take too (:mod:`workers.lane_finishes`).

What the task wrapper does for a Celery message is done here for a lane delivery:

* a :class:`Retry` puts the entry in the lane's ``delayed`` set, due on Redis' clock;
* :class:`JobFailedError` and any unexpected error file one dead letter (task ``krtc.start``);
* an entry whose deliveries outlived their visibility :data:`MAX_DELIVERIES` times (its runs
  killed their workers) is failed to the dead letters instead of being run again;
* a run that ends deletes its budget's counters;
* Redis failing in the middle leaves the delivery in flight: it comes back when its
  visibility ends (the longest a run lasts, plus a margin), and the start lease keeps a second
  run from sending a second start meanwhile.

A warm shutdown stops taking, lets the running starts end (up to ``stop_timeout_s``) and puts
back what was taken but not begun.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from orchestrator.errors import StateError
from orchestrator.jobs import JobContext, JobFailedError, Retry, run_begun_start, run_start
from orchestrator.jobs.budget import RunBudget, forget_run
from orchestrator.state.errors import StateUnavailableError
from orchestrator.state.lane import LaneEntry, StartLane
from orchestrator.tasking.starts import START_TASK
from orchestrator.tasking.timing import longest_run_s
from workers import failures
from workers.delivery import MAX_DELIVERIES, worker_lost
from workers.lane_finishes import BatchedFinishes

__all__ = ["LaneConsumer", "SWEEP_EVERY_S", "WAIT_S", "connect"]

log = logging.getLogger("workers.lane")

#: How often a consumer moves due retries and expired deliveries back to ``ready``.
SWEEP_EVERY_S = 1.0
#: How long an idle dispatcher blocks on an empty lane before it looks again.
WAIT_S = 1.0
#: How long it blocks instead while starts of its own are running (their acks wait for it).
BUSY_WAIT_S = 0.1
#: With no thread free, the dispatcher waits for ``threads // BATCH_SHARE`` free threads, up to
#: ``BATCH_WAIT_S``, so that one take (one round trip) serves several starts.
BATCH_SHARE = 8
BATCH_WAIT_S = 0.005
#: A run waiting for its finish to be sent waits this long at most for others to join it.
FINISH_BATCH_WAIT_S = 0.001
#: Seconds past the longest run before a delivery may go to another worker.
VISIBILITY_MARGIN_S = 3.0
#: After a Redis failure, the dispatcher waits this long before it tries again.
_BACKOFF_S = 1.0
#: A retry that could not be scheduled because Redis failed is tried this soon instead.
_UNSURE_RETRY_S = 1.0


class LaneConsumer:
    """Takes starts from the lane and runs them on ``threads`` threads.

    Args:
        context: the process's job context (called once per run; it is built once).
        threads: starts run at once.
        name: the worker's name, for the threads' names and the log.
    """

    def __init__(self, context: Callable[[], JobContext], threads: int, name: str = "") -> None:
        self._context = context
        self.threads = max(1, threads)
        self.name = name
        self._lock = threading.Condition()
        self._running = 0
        self._acks: list[str] = []
        self._taken: dict[str, LaneEntry] = {}
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._dispatcher: threading.Thread | None = None
        self._lane: StartLane | None = None
        self._visibility_s = 0.0
        self._begin = ""
        self._finishes = BatchedFinishes(self._lock, lambda: self._context().flights)

    def start(self) -> None:
        """Start the dispatcher (once)."""
        if self._dispatcher is not None:
            return
        ctx = self._context()
        self._lane = StartLane(ctx.store.redis, keys=ctx.store.keys)
        self._visibility_s = longest_run_s(ctx.settings) + VISIBILITY_MARGIN_S
        if ctx.limiter is None:
            # The take begins the starts too (one round trip for what the job's own begin and
            # session read cost per start); with a per-appId rate limit the job paces first.
            self._begin = self._lane.begin_params(
                ctx.flights, lease_s=longest_run_s(ctx.settings), max_deaths=MAX_DELIVERIES
            )
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="start-lane")
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="start-lane-dispatcher", daemon=True
        )
        self._dispatcher.start()

    def halt(self) -> None:
        """Take no more starts (returns at once)."""
        self._stopping.set()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop taking, let running starts end, put the rest back.

        Args:
            timeout_s: longest wait for the running starts (default: the longest a run lasts);
                what is still running after it comes back when its visibility ends.
        """
        if timeout_s is None:
            timeout_s = max(0.0, self._visibility_s - VISIBILITY_MARGIN_S)
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._running and time.monotonic() < deadline:
                self._lock.wait(0.05)
            acks, self._acks = self._acks, []
            unrun = list(self._taken.values())
            self._taken.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._lane is None:
            return
        try:
            if acks:
                self._lane.cycle(0, visibility_s=self._visibility_s, acks=acks)
            # A start the take began holds its lease: free it for the run that takes it next.
            leases = self._context().leases
            for entry in unrun:
                if entry.begun:
                    leases.release(entry.session_id, "start", entry.token)
            put_back = self._lane.release([e.delivery for e in unrun])
        except StateError as exc:
            log.warning("start lane: could not hand back on shutdown (%s); they come back", exc)
            return
        if put_back:
            log.info("start lane: %d starts taken but not run put back", put_back)

    # -- dispatcher -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            self._dispatch_until_stopped()
        finally:
            with self._lock:
                unsent = self._finishes.close()
            self._finishes.hand_back(unsent)

    def _dispatch_until_stopped(self) -> None:
        assert self._lane is not None and self._pool is not None
        lane = self._lane
        next_sweep = 0.0
        while not self._stopping.is_set():
            free = self._wait_for_free()
            if self._stopping.is_set():
                return
            with self._lock:
                acks, self._acks = self._acks, []
                finishes = self._finishes.take()
            try:
                if time.monotonic() >= next_sweep:
                    lane.sweep()
                    next_sweep = time.monotonic() + SWEEP_EVERY_S
                replies, entries = lane.cycle_finishing(
                    [f.call for f in finishes],
                    free,
                    visibility_s=self._visibility_s,
                    acks=acks,
                    begin=self._begin,
                )
            except BaseException as exc:
                # Their runs send them again themselves (a finish is idempotent).
                self._finishes.hand_back(finishes)
                if not isinstance(exc, StateError):
                    raise
                with self._lock:  # acknowledged again next time (acknowledging is idempotent)
                    self._acks.extend(acks)
                log.warning("start lane: %s; trying again in %.0f s", exc, _BACKOFF_S)
                with self._unbatched():
                    self._stopping.wait(_BACKOFF_S)
                continue
            self._finishes.settle(finishes, replies)
            if entries:
                with self._lock:
                    self._running += len(entries)
                    self._taken.update((e.delivery, e) for e in entries)
                for entry in entries:
                    self._pool.submit(self._run, entry)
            if len(entries) < free:
                # The lane is empty: block until an entry comes (runs of its own that end
                # meanwhile have acks to send: look again sooner then).
                with self._lock:
                    longest = WAIT_S if self._running == 0 else BUSY_WAIT_S
                self._idle(lane, min(longest, max(0.0, next_sweep - time.monotonic())))

    def _wait_for_free(self) -> int:
        """Wait for a free thread or a finish, then briefly for a few more (one take for
        several); returns how many entries to take: a thread whose finish goes with this take
        counts as free (it is, once the take's answer comes back)."""
        with self._lock:
            while (
                self._running >= self.threads and not self._finishes and not self._stopping.is_set()
            ):
                self._lock.wait(0.5)
            batch = max(1, self.threads // BATCH_SHARE)
            deadline = time.monotonic() + BATCH_WAIT_S
            while self._free() < batch and not self._stopping.is_set():
                oldest = self._finishes.oldest()
                if oldest is not None:  # its run is blocked: wait less for company
                    deadline = min(deadline, oldest + FINISH_BATCH_WAIT_S)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            return self._free()

    def _free(self) -> int:
        # Entries taken for threads whose finish went with the take may wait in the pool's
        # queue a moment: running can exceed the threads.
        return max(0, self.threads - self._running + len(self._finishes))

    def _idle(self, lane: StartLane, timeout_s: float) -> None:
        with self._lock:
            if self._acks and self._running == 0:
                return  # the last acks: send them now
            if self._finishes:
                return  # finishes came meanwhile: send them now
        with self._unbatched():
            try:
                lane.wait(max(0.05, timeout_s))
            except StateError as exc:
                log.warning("start lane: %s; trying again in %.0f s", exc, _BACKOFF_S)
                self._stopping.wait(_BACKOFF_S)

    @contextlib.contextmanager
    def _unbatched(self) -> Iterator[None]:
        """While the dispatcher waits (on Redis, or after a failure), runs send their finishes
        themselves (what waits already goes back to them)."""
        with self._lock:
            self._finishes.blocked = True
            waiting = self._finishes.take()
        self._finishes.hand_back(waiting)
        try:
            yield
        finally:
            with self._lock:
                self._finishes.blocked = False

    # -- one start --------------------------------------------------------------------------

    def _run(self, entry: LaneEntry) -> None:
        ack = True
        with self._lock:
            self._taken.pop(entry.delivery, None)
        try:
            ack = self._start(entry)
        except BaseException:  # never lose the slot, whatever happened
            log.exception("start lane: the run of %s ended abnormally", entry.session_id)
        finally:
            with self._lock:
                self._running -= 1
                if ack:
                    self._acks.append(entry.delivery)
                self._lock.notify_all()

    def _start(self, entry: LaneEntry) -> bool:
        """Run one delivery; returns whether to acknowledge it (False: it is rescheduled or
        left in flight)."""
        assert self._lane is not None
        ctx = self._context()
        args = [entry.session_id]
        try:
            if entry.deaths >= MAX_DELIVERIES:
                raise worker_lost("start", entry.session_id, entry.deaths, ctx.clock())
            budget = RunBudget.of(ctx, entry.run_id)
            began = time.monotonic()
            if entry.begun:
                outcome = run_begun_start(
                    ctx,
                    entry.session_id,
                    entry.fields,
                    run_id=entry.run_id,
                    token=entry.token,
                    attempt=entry.attempt,
                    budget=budget,
                    finish=self._finishes.finish,
                )
            else:
                outcome = run_start(
                    ctx,
                    entry.session_id,
                    run_id=entry.run_id,
                    budget=budget,
                    finish=self._finishes.finish,
                )
        except Retry as signal:
            log.info(
                "Task %s[%s] retry in %.1fs: %s",
                START_TASK,
                entry.run_id,
                signal.delay_s,
                signal.reason,
            )
            self._retry(entry, signal.delay_s)
            return False
        except StateUnavailableError as exc:
            # Redis failed mid-run: run it again (the lease and the stored phase make a second
            # run safe); if even that cannot be written, its visibility brings it back.
            log.warning("Task %s[%s] retry: %s", START_TASK, entry.run_id, exc)
            self._retry(entry, _UNSURE_RETRY_S)
            return False
        except Exception as exc:  # JobFailedError, or a bug: one dead letter either way
            self._fail(ctx, entry, exc, args)
            return True
        # Celery's own line, so that a start reads the same in the log whichever way it came.
        log.info(
            "Task %s[%s] succeeded in %.3fs: %r",
            START_TASK,
            entry.run_id,
            time.monotonic() - began,
            outcome,
        )
        if not budget.settled:
            forget_run(ctx, entry.run_id)
        return True

    def _retry(self, entry: LaneEntry, delay_s: float) -> None:
        assert self._lane is not None
        try:
            self._lane.retry(entry.delivery, delay_s)
        except StateError as exc:
            log.warning("start lane: could not schedule the retry of %s (%s)", entry.run_id, exc)

    def _fail(self, ctx: JobContext, entry: LaneEntry, exc: Exception, args: list[str]) -> None:
        if not isinstance(exc, JobFailedError):
            log.exception("Task %s[%s] raised unexpected: %r", START_TASK, entry.run_id, exc)
        else:
            log.error("Task %s[%s] failed: %s", START_TASK, entry.run_id, exc)
        try:
            failures.file_letter(ctx, START_TASK, entry.run_id, exc, args)
        except Exception:
            log.exception("could not record the dead letter of %s", entry.run_id)
        forget_run(ctx, entry.run_id)


def connect(app: Celery) -> None:
    """Run a start lane consumer in ``app``'s workers, from ready until shutdown.

    It has as many threads as the worker's pool (``--concurrency``).
    """
    from workers import runtime

    consumers: list[LaneConsumer] = []
    settings = app.conf.krtc_settings

    def on_ready(sender: Any = None, **_: Any) -> None:
        if sender is None or getattr(sender, "app", None) is not app:
            return
        controller = getattr(sender, "controller", None)
        threads = int(getattr(controller, "concurrency", 0) or settings.worker_concurrency)
        consumer = LaneConsumer(
            lambda: runtime.context(settings, app), threads, str(sender.hostname)
        )
        try:
            consumer.start()
        except Exception:
            log.exception("could not start the start lane consumer")
            return
        consumers.append(consumer)
        log.info("start lane: %d threads", threads)

    def on_shutting_down(**_: Any) -> None:
        for consumer in consumers:
            consumer.halt()  # in a signal handler: only stop taking

    def on_shutdown(**_: Any) -> None:
        while consumers:
            consumers.pop().stop()

    worker_ready.connect(on_ready, weak=False)
    worker_shutting_down.connect(on_shutting_down, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
