"""Recording metrics into Redis, from any process on any machine.

Workers count every API call (by action and outcome) and its latency into hashes under the
project's key prefix (:mod:`orchestrator.state.keys`); ``krtc-rec metrics`` reads them back, so
one scrape sees the whole cluster whatever the number of workers.

Recording never fails or stalls a job: the :class:`MetricsRecorder` writes with a short socket
timeout, keeps what it could not write in memory (a few dozen counters at most) and tries again
only after a pause, logging one warning per outage. A worker's recorder adds calls up in memory
and writes them once a second from a thread of its own (``flush_every_s``): one round trip a
second instead of one per call; what a killed worker had not written yet is lost (counters only).

Other subsystems record with the module functions; the scheduler, when it dispatches work that
was due at ``due_at``::

    from orchestrator.metrics import record_schedule_lag

    record_schedule_lag(store.redis, store.keys, max(0.0, store.clock() - due_at))
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping

from redis import Redis
from redis.exceptions import RedisError

from orchestrator.krtc.enums import Action
from orchestrator.krtc.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from orchestrator.metrics.histograms import API_SECONDS, SCHEDULE_LAG_SECONDS, HistogramSpec
from orchestrator.settings import Settings
from orchestrator.state import Keys
from orchestrator.state.connection import RedisOptions, connect

__all__ = [
    "OUTCOMES",
    "MetricsRecorder",
    "outcome_of",
    "record_histogram",
    "record_schedule_lag",
]

log = logging.getLogger("orchestrator.metrics")

#: The ``outcome`` label of ``krtc_api_requests_total``: ``ok``, or what kind of failure.
#: ``transient`` (5xx, 429, timeouts, connection errors: retried), ``permanent`` (400, 401,
#: 403: never retried), ``not_found`` (404), ``conflict`` (409), ``error`` (anything else).
OUTCOMES = ("ok", "transient", "permanent", "not_found", "conflict", "error")

#: Seconds a metrics write may take before it is given up (the job goes on without it).
DEFAULT_WRITE_TIMEOUT_S = 0.5
#: Seconds without a write attempt after one failed (observations are kept meanwhile).
DEFAULT_RETRY_AFTER_S = 5.0
#: Seconds a worker's recorder adds calls up before it writes them.
DEFAULT_FLUSH_EVERY_S = 1.0

_Increments = dict[tuple[str, str], int | float]


def outcome_of(error: BaseException | None) -> str:
    """The ``outcome`` label of a call that raised ``error`` (``None``: it succeeded)."""
    if error is None:
        return "ok"
    if isinstance(error, TransientError):
        return "transient"
    if isinstance(error, PermanentError):
        return "permanent"
    if isinstance(error, NotFoundError):
        return "not_found"
    if isinstance(error, ConflictError):
        return "conflict"
    return "error"


def _write(redis: Redis, increments: Mapping[tuple[str, str], int | float]) -> None:
    pipe = redis.pipeline(transaction=False)
    for (key, field), amount in increments.items():
        if isinstance(amount, float):
            pipe.hincrbyfloat(key, field, amount)
        else:
            pipe.hincrby(key, field, amount)
    pipe.execute()


def record_histogram(
    redis: Redis, key: str, spec: HistogramSpec, value: float, labels: tuple[str, ...] = ()
) -> bool:
    """Add one observation to the histogram hash ``key``, in one round trip.

    Returns:
        Whether it was written; a Redis error is logged, never raised.
    """
    increments = {(key, f): v for f, v in spec.increments(value, labels).items()}
    try:
        _write(redis, increments)
    except RedisError as exc:
        log.warning("metrics: could not record into %s: %s", key, type(exc).__name__)
        return False
    return True


def record_schedule_lag(redis: Redis, keys: Keys, seconds: float) -> bool:
    """Record how late scheduled work was dispatched (``krtc_schedule_lag_seconds``).

    Call it once per dispatched start or stop with ``now - due time`` (0 when on time).

    Args:
        redis: a client of the project's Redis (e.g. ``store.redis``).
        keys: the key names (e.g. ``store.keys``).
        seconds: the lag; negative values count as 0.

    Returns:
        Whether it was written; a Redis error is logged, never raised.
    """
    return record_histogram(
        redis, keys.metrics_schedule_lag(), SCHEDULE_LAG_SECONDS, max(0.0, seconds)
    )


class MetricsRecorder:
    """Counts API calls into Redis; its :meth:`observe_call` is the API client's observer.

    Thread-safe and fork-safe (a forked pool child starts with an empty buffer).

    Args:
        redis: a client of the project's Redis, ideally with short timeouts
            (:meth:`from_settings` builds one).
        keys: the key names.
        clock: monotonic seconds (injectable for tests).
        retry_after_s: seconds between write attempts while Redis fails.
        flush_every_s: 0 writes each call at once; otherwise calls are added up in memory and
            a daemon thread writes them this often (:meth:`close` writes the rest).
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_after_s: float = DEFAULT_RETRY_AFTER_S,
        flush_every_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self._clock = clock
        self.retry_after_s = retry_after_s
        self.flush_every_s = flush_every_s
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._pending: _Increments = {}
        self._retry_at = 0.0
        self._failing = False
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        timeout_s: float = DEFAULT_WRITE_TIMEOUT_S,
        flush_every_s: float = 0.0,
    ) -> MetricsRecorder:
        """A recorder on its own client of ``settings.redis_url`` with ``timeout_s`` timeouts
        (shorter than the other clients': a job never waits long for its metrics)."""
        options = RedisOptions.from_settings(settings).with_timeouts(timeout_s)
        return cls(
            connect(settings.redis_url, options),
            Keys(settings.redis_prefix),
            flush_every_s=flush_every_s,
        )

    def observe_call(self, action: Action, seconds: float, error: BaseException | None) -> None:
        """Record one API call (the signature of the client's ``observer``)."""
        self.record_call(action.short_name, outcome_of(error), seconds)

    def record_call(self, action: str, outcome: str, seconds: float) -> None:
        """Count a call of ``action`` (``start``, ``stop``, ...) that ended in ``outcome``."""
        increments: _Increments = {(self.keys.metrics_api_requests(), f"{action}|{outcome}"): 1}
        key = self.keys.metrics_api_seconds()
        for field, amount in API_SECONDS.increments(seconds, (action,)).items():
            increments[(key, field)] = amount
        self._add(increments)
        if self.flush_every_s <= 0:
            self.flush()
            return
        if self._flusher is None:
            self._start_flusher()

    def close(self) -> None:
        """Stop the writing thread and write what is pending (once more if Redis fails)."""
        self._closed.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(self.flush_every_s + 1.0)
        self.flush(force=True)

    def _start_flusher(self) -> None:
        with self._lock:
            if self._flusher is not None:
                return
            self._flusher = threading.Thread(
                target=self._flush_loop, name="metrics-flush", daemon=True
            )
        self._flusher.start()

    def _flush_loop(self) -> None:
        while not self._closed.wait(self.flush_every_s):
            try:
                self.flush()
            except Exception:  # never let the thread die: the next second tries again
                log.exception("metrics: writing the API call counters failed")

    def pending(self) -> int:
        """How many counters wait to be written (after Redis failed)."""
        with self._lock:
            return len(self._pending)

    def flush(self, *, force: bool = False) -> bool:
        """Write what is pending, unless a recent failure says to wait (``force`` ignores it).

        Returns:
            Whether nothing is left pending.
        """
        self._check_fork()
        with self._lock:
            if not self._pending:
                return True
            if not force and self._clock() < self._retry_at:
                return False
            batch, self._pending = self._pending, {}
        try:
            _write(self.redis, batch)
        except RedisError as exc:
            with self._lock:
                for item, amount in batch.items():
                    self._pending[item] = self._pending.get(item, 0) + amount
                self._retry_at = self._clock() + self.retry_after_s
                first = not self._failing
                self._failing = True
            if first:
                log.warning(
                    "metrics: Redis refused the API call counters (%s); they are kept in memory "
                    "and written when it answers again",
                    type(exc).__name__,
                )
            return False
        with self._lock:
            recovered, self._failing = self._failing, False
        if recovered:
            log.info("metrics: Redis answers again; the API call counters are written")
        return True

    def _add(self, increments: _Increments) -> None:
        self._check_fork()
        with self._lock:
            for item, amount in increments.items():
                self._pending[item] = self._pending.get(item, 0) + amount

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            self._reset()
