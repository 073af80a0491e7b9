"""Background delivery: raising an alert never waits for a network.

Each background sink gets its own lane: a bounded queue and one daemon thread that delivers the
queued alerts in order, retrying a retryable failure with capped, fully jittered exponential
backoff (a receiver's ``Retry-After`` as a floor). A hung or failing receiver therefore delays
only its own sink. When a lane's queue is full the alert is dropped from that sink with an error
log: it is still stored (``krtc-rec alerts``) and logged.

Threads start on the first alert, so a process that never raises one (a CLI command, a prefork
parent before it forks) starts none. Deliveries still queued when the process exits are lost;
call :meth:`Dispatcher.close` on shutdown to give them a moment.

Chosen over a Celery task so that alerts raised by the reconciler, the CLI and the workers all
deliver the same way, without depending on the queue whose trouble they may be reporting.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.alerts.model import Alert
from orchestrator.alerts.sinks.base import DeliveryError, Sink

__all__ = [
    "DEFAULT_DELIVERY_ATTEMPTS",
    "DEFAULT_BACKOFF_BASE_S",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_QUEUE_SIZE",
    "DeliveryPolicy",
    "backoff_s",
    "Dispatcher",
]

DEFAULT_DELIVERY_ATTEMPTS = 6
DEFAULT_BACKOFF_BASE_S = 1.0
#: Cap of one wait between attempts, seconds (six attempts span about a minute at most).
DEFAULT_BACKOFF_MAX_S = 30.0
#: Alerts waiting per sink before new ones are dropped from that sink.
DEFAULT_QUEUE_SIZE = 1000

log = logging.getLogger("orchestrator.alerts.delivery")


@dataclass(frozen=True)
class DeliveryPolicy:
    """Attempts per alert and sink, and the backoff between them (seconds)."""

    max_attempts: int = DEFAULT_DELIVERY_ATTEMPTS
    base_s: float = DEFAULT_BACKOFF_BASE_S
    max_s: float = DEFAULT_BACKOFF_MAX_S

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.max_s < self.base_s:
            raise ValueError("need 0 <= base_s <= max_s")


def backoff_s(
    error: DeliveryError,
    attempt: int,
    policy: DeliveryPolicy,
    *,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter, capped."""
    wait: float = rng() * min(policy.max_s, policy.base_s * 2 ** (attempt - 1))
    if error.retry_after_s is not None:
        wait = max(wait, min(error.retry_after_s, policy.max_s))
    return wait


_STOP = object()


class _Lane:
    """One sink's queue and thread."""

    def __init__(self, sink: Sink, dispatcher: Dispatcher, size: int) -> None:
        self.sink = sink
        self.queue: queue.Queue[object] = queue.Queue(maxsize=size)
        self._dispatcher = dispatcher
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def offer(self, alert: Alert) -> bool:
        self._start()
        try:
            self.queue.put_nowait(alert)
        except queue.Full:
            return False
        return True

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"krtc-alerts-{self.sink.name}", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            try:
                if item is _STOP:
                    return
                assert isinstance(item, Alert)
                self._dispatcher.deliver(self.sink, item)
            except Exception:  # a lane must outlive any one alert
                log.exception("alert delivery to %s crashed", self.sink.describe())
            finally:
                self.queue.task_done()

    def idle(self, deadline: float) -> bool:
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.queue.all_tasks_done.wait(left)
        return True

    def stop(self, deadline: float) -> None:
        thread = self._thread
        if thread is None:
            return
        try:
            self.queue.put(_STOP, timeout=max(deadline - time.monotonic(), 0.001))
        except queue.Full:
            return
        thread.join(max(deadline - time.monotonic(), 0.0))


class Dispatcher:
    """Delivers alerts to sinks in the background, with retries.

    Args:
        sinks: the background sinks (one lane each).
        policy: attempts and backoff.
        queue_size: alerts waiting per sink before new ones are dropped.
        rng: jitter source in [0, 1) (stub it for reproducible waits).
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        policy: DeliveryPolicy | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.policy = policy or DeliveryPolicy()
        self._rng = rng
        self._closing = threading.Event()
        self._lanes = [_Lane(sink, self, queue_size) for sink in sinks]

    @property
    def sinks(self) -> list[Sink]:
        """The sinks, in the order given."""
        return [lane.sink for lane in self._lanes]

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for every sink; returns at once, never raises for a sink."""
        if self._closing.is_set():
            log.error("alert %s not delivered: the dispatcher is closed", alert.id)
            return
        for lane in self._lanes:
            if not lane.offer(alert):
                log.error(
                    "alert %s (%s, session %s) dropped for %s: %d alerts already waiting",
                    alert.id,
                    alert.kind.value,
                    alert.session_id,
                    lane.sink.describe(),
                    lane.queue.maxsize,
                )

    def deliver(self, sink: Sink, alert: Alert) -> bool:
        """Deliver ``alert`` to ``sink`` now, retrying as the policy allows (in this thread).

        Returns:
            Whether it was delivered.
        """
        attempt = 1
        while True:
            try:
                sink.before_deliver(alert)
                sink.deliver(alert)
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # a sink's bug: report it like a failed delivery
                detail = sink.scrub(str(exc))
                error = DeliveryError(f"{type(exc).__name__}: {detail}", retryable=False)
            else:
                sink.after_deliver(alert)
                return True
            if not error.retryable or attempt >= self.policy.max_attempts:
                log.error(
                    "alert %s (%s, session %s) not delivered to %s after %d attempt(s): %s",
                    alert.id,
                    alert.kind.value,
                    alert.session_id,
                    sink.describe(),
                    attempt,
                    error,
                )
                sink.after_give_up(alert, error)
                return False
            wait = backoff_s(error, attempt, self.policy, rng=self._rng)
            log.warning(
                "alert %s to %s failed (attempt %d of %d), retrying in %.2fs: %s",
                alert.id,
                sink.describe(),
                attempt,
                self.policy.max_attempts,
                wait,
                error,
            )
            if self._closing.wait(wait):
                log.error("alert %s not delivered to %s: shutting down", alert.id, sink.describe())
                sink.after_give_up(alert, error)
                return False
            attempt += 1

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued alert was delivered or given up; false on timeout."""
        deadline = time.monotonic() + timeout_s
        return all(lane.idle(deadline) for lane in self._lanes)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Give queued deliveries ``timeout_s`` seconds, then stop the threads.

        Returns:
            Whether everything queued was delivered or given up in time.
        """
        deadline = time.monotonic() + timeout_s
        flushed = self.flush(timeout_s)
        self._closing.set()
        for lane in self._lanes:
            lane.stop(deadline)
        for lane in self._lanes:
            lane.sink.close()
        return flushed
