"""Background delivery from the outbox: raising an alert never waits for a network.

Each background sink gets its own lane: one daemon thread that leases the sink's entries from
the Redis outbox (:mod:`orchestrator.alerts.outbox`) one at a time, makes one attempt, and then
acknowledges the entry, makes it due again after capped, fully jittered exponential backoff (a
receiver's ``Retry-After`` as a floor), or gives it up once the policy's attempts are spent or
the error is permanent. Retries wait in Redis, not in a thread, so any process can make the next
attempt. A hung or failing receiver delays only its own sink.

A lane wakes when this process raises an alert and polls its outbox every ``poll_s`` seconds, so
it also delivers what other processes queued and could not deliver (a lease that expired because
its process died). Threads start on the first alert or on :meth:`Dispatcher.start`, so a process
that never asks (a CLI command, a prefork parent before it forks) starts none; a forked child
starts its own.

Chosen over a Celery task so that alerts raised by the reconciler, the CLI and the workers all
deliver the same way, without depending on the queue whose trouble they may be reporting.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.alerts.model import Alert
from orchestrator.alerts.outbox import DEFAULT_LEASE_S, AlertOutbox, Lease
from orchestrator.alerts.sinks.base import DeliveryError, Sink
from orchestrator.lane import Lane

__all__ = [
    "DEFAULT_DELIVERY_ATTEMPTS",
    "DEFAULT_BACKOFF_BASE_S",
    "DEFAULT_BACKOFF_MAX_S",
    "DEFAULT_POLL_S",
    "DeliveryPolicy",
    "backoff_s",
    "Dispatcher",
]

DEFAULT_DELIVERY_ATTEMPTS = 6
DEFAULT_BACKOFF_BASE_S = 1.0
#: Cap of one wait between attempts, seconds (six attempts span about a minute at most).
DEFAULT_BACKOFF_MAX_S = 30.0
#: Seconds between looks at an idle sink's outbox (for entries other processes left).
DEFAULT_POLL_S = 5.0

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


class _SinkLane(Lane):
    """One sink's lane (in the process that started it)."""

    def __init__(self, sink: Sink, dispatcher: Dispatcher) -> None:
        super().__init__(
            f"krtc-alerts-{sink.name}",
            lambda: dispatcher.work(sink),
            poll_s=dispatcher.poll_s,
            closing=dispatcher._closing,
            describe=f"alert sink {sink.describe()}",
        )
        self.sink = sink


class Dispatcher:
    """Delivers the outbox's alerts to sinks in the background, with retries.

    Args:
        sinks: the background sinks (one lane each; names must differ: a name is an outbox).
        outbox: where the entries wait (``None``: only :meth:`deliver` works, for tests).
        policy: attempts and backoff.
        lease_s: seconds an entry is held per attempt (above the longest attempt).
        poll_s: seconds between looks at an idle outbox.
        rng: jitter source in [0, 1) (stub it for reproducible waits).

    Raises:
        ValueError: two sinks share a name, or a duration is not positive.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        outbox: AlertOutbox | None = None,
        policy: DeliveryPolicy | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        poll_s: float = DEFAULT_POLL_S,
        rng: Callable[[], float] = random.random,
    ) -> None:
        names = [s.name for s in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"background sinks need distinct names, got {names}")
        if lease_s <= 0 or poll_s <= 0:
            raise ValueError("lease_s and poll_s must be positive")
        self.outbox = outbox
        self.policy = policy or DeliveryPolicy()
        self.lease_s = lease_s
        self.poll_s = poll_s
        self._rng = rng
        self._closing = threading.Event()
        self._lanes = [_SinkLane(sink, self) for sink in sinks]

    @property
    def sinks(self) -> list[Sink]:
        """The sinks, in the order given."""
        return [lane.sink for lane in self._lanes]

    @property
    def is_closing(self) -> bool:
        """Whether :meth:`close` was called (the lanes stop)."""
        return self._closing.is_set()

    def start(self) -> None:
        """Start the lanes (if not yet in this process): they deliver what is due, and poll."""
        if self._closing.is_set() or not self._lanes:
            return
        if self.outbox is None:
            raise RuntimeError("a dispatcher without an outbox cannot deliver in the background")
        for lane in self._lanes:
            lane.start()

    def submit(self, alert: Alert) -> None:
        """Wake the lanes for ``alert`` (already in the outbox); returns at once."""
        if self._closing.is_set():
            log.info("alert %s stays in the outbox: this dispatcher is closed", alert.id)
            return
        self.start()
        for lane in self._lanes:
            lane.wakeup.set()

    def work(self, sink: Sink) -> float:
        """Make one attempt on the entry of ``sink`` due longest ago, if any.

        Returns:
            0 after an attempt (look again at once), else seconds until something may be due.
        """
        assert self.outbox is not None
        taken = self.outbox.lease(sink.name, self.lease_s)
        if not isinstance(taken, Lease):
            return self.poll_s if taken is None else max(taken, 0.001)
        alert, attempt = taken.alert, taken.attempts + 1
        error = self.attempt(sink, alert)
        if error is None:
            self.outbox.ack(taken)
            sink.after_deliver(alert)
            return 0.0
        if error.retryable and attempt < self.policy.max_attempts:
            wait = backoff_s(error, attempt, self.policy, rng=self._rng)
            self._log_retry(sink, alert, attempt, wait, error)
            self.outbox.retry(taken, str(error), wait)
            return 0.0
        _log_given_up(sink, alert, attempt, error)
        if self.outbox.give_up(taken, str(error)):
            sink.after_give_up(alert, error)
        return 0.0

    def _log_retry(
        self, sink: Sink, alert: Alert, attempt: int, wait: float, error: DeliveryError
    ) -> None:
        log.warning(
            "alert %s to %s failed (attempt %d of %d), retrying in %.2fs: %s",
            alert.id,
            sink.describe(),
            attempt,
            self.policy.max_attempts,
            wait,
            error,
        )

    @staticmethod
    def attempt(sink: Sink, alert: Alert) -> DeliveryError | None:
        """One attempt to deliver ``alert`` to ``sink``: ``None`` if it was accepted."""
        try:
            sink.before_deliver(alert)
            sink.deliver(alert)
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a sink's bug: report it like a failed delivery
            detail = sink.scrub(str(exc))
            return DeliveryError(f"{type(exc).__name__}: {detail}", retryable=False)
        return None

    def deliver(self, sink: Sink, alert: Alert) -> bool:
        """Deliver ``alert`` to ``sink`` now, retrying in this thread (no outbox involved).

        Returns:
            Whether it was delivered.
        """
        attempt = 1
        while True:
            error = self.attempt(sink, alert)
            if error is None:
                sink.after_deliver(alert)
                return True
            if not error.retryable or attempt >= self.policy.max_attempts:
                _log_given_up(sink, alert, attempt, error)
                sink.after_give_up(alert, error)
                return False
            wait = backoff_s(error, attempt, self.policy, rng=self._rng)
            self._log_retry(sink, alert, attempt, wait, error)
            if self._closing.wait(wait):
                sink.after_give_up(alert, error)
                return False
            attempt += 1

    def pending(self) -> int:
        """Entries waiting in the outboxes of this dispatcher's sinks (any process's)."""
        if self.outbox is None:
            return 0
        return sum(self.outbox.pending(lane.sink.name) for lane in self._lanes)

    def flush(self, timeout_s: float) -> bool:
        """Deliver until the sinks' outboxes are empty; false on timeout (entries stay queued)."""
        if not self._lanes or self.outbox is None:
            return True
        deadline = time.monotonic() + timeout_s
        self.start()
        while True:
            for lane in self._lanes:
                lane.wakeup.set()
            if self.pending() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def close(self, timeout_s: float = 5.0) -> bool:
        """Give the outboxes ``timeout_s`` seconds to empty, then stop the threads.

        What is left stays in the outbox, for another process (or this one, restarted).

        Returns:
            Whether the outboxes were empty in time.
        """
        deadline = time.monotonic() + timeout_s
        flushed = self.flush(timeout_s) if not self._closing.is_set() else True
        self._closing.set()
        for lane in self._lanes:
            lane.wakeup.set()
        for lane in self._lanes:
            lane.join(deadline)
        for lane in self._lanes:
            lane.sink.close()
        return flushed


def _log_given_up(sink: Sink, alert: Alert, attempts: int, error: DeliveryError) -> None:
    log.error(
        "alert %s (%s, session %s) not delivered to %s after %d attempt(s): %s",
        alert.id,
        alert.kind.value,
        alert.session_id,
        sink.describe(),
        attempts,
        error,
    )
