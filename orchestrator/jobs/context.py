"""What a job needs, built once per worker process, and how a job asks for another try."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.alerts import Alerter
from orchestrator.errors import OrchestratorError
from orchestrator.events import EventDispatcher, EventOutbox
from orchestrator.krtc.client import KrtcClient
from orchestrator.krtc.errors import KrtcApiError
from orchestrator.krtc.retry import RetryPolicy
from orchestrator.metrics import MetricsRecorder
from orchestrator.metrics.recorder import DEFAULT_FLUSH_EVERY_S
from orchestrator.metrics.skew import SkewReporter, process_name
from orchestrator.ratelimit import RateLimiter
from orchestrator.settings import Settings
from orchestrator.state import (
    DeadLetterStore,
    RedisClock,
    RunBudgets,
    Session,
    SessionLeases,
    SessionStore,
    UpdateSequences,
)
from orchestrator.state.flights import StartFlights
from orchestrator.storage_profiles import StorageProfiles
from orchestrator.tasking.starts import START_TASK, StartQueue

__all__ = [
    "Retry",
    "JobFailedError",
    "JobContext",
    "AlertHook",
    "error_record",
    "recording_ref",
    "SHORT_WAIT_S",
    "watch_skew",
]

#: Seconds between looks at a session whose sid is not known yet (a start still under way).
SHORT_WAIT_S = 2.0

log = logging.getLogger("orchestrator.jobs")

#: ``(kind, session_id, reason)``: how jobs raise alerts (the alerting subsystem plugs in here).
AlertHook = Callable[[str, str, str], None]


class Retry(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """Ask the task runner to run the job again after ``delay_s`` seconds.

    Attributes:
        delay_s: seconds to wait.
        reason: why, for logs and the task's state.
    """

    def __init__(self, delay_s: float, reason: str) -> None:
        self.delay_s = delay_s
        self.reason = reason
        super().__init__(f"retry in {delay_s:.1f}s: {reason}")


class JobFailedError(OrchestratorError):
    """A job gave up: it goes to the dead letters.

    Attributes:
        action: the job's action (``start``, ``stop``, ``update``, ``update-layout``).
        session_id: the session it worked on.
        error: the error record (``kind``, ``status``, ``code``, ``reason``), safe to store.
    """

    def __init__(self, action: str, session_id: str, error: dict[str, Any]) -> None:
        self.action = action
        self.session_id = session_id
        self.error = error
        super().__init__(f"{action} of session {session_id} failed: {error.get('reason')}")


def error_record(error: BaseException, at: float) -> dict[str, Any]:
    """A storable description of ``error``; never holds a secret."""
    if isinstance(error, KrtcApiError):
        record: dict[str, Any] = error.to_dict()
        maybe_applied = getattr(error, "maybe_applied", None)
        if maybe_applied is not None:
            record["maybe_applied"] = maybe_applied
    else:
        record = {"kind": type(error).__name__, "status": None, "code": None, "reason": str(error)}
    record["at"] = at
    return record


def _log_alert(kind: str, session_id: str, reason: str) -> None:
    log.warning("alert %s for session %s: %s", kind, session_id, reason)


@dataclass
class JobContext:
    """The services of the jobs.

    Attributes:
        settings: the configuration.
        store: the session store.
        client: the API client (shared by every thread of the worker).
        profiles: the storage profiles.
        alert: called for conditions a person must see.
        clock: unix time on the deployment's one clock (Redis' ``TIME``; see
            :mod:`orchestrator.state.clock`).
        throttle: called with an appId before each API call; returns seconds to wait first
            (0 when the call may go now).
        enqueue: sends a task by name with its arguments, returns its id.
        starts: creates sessions and queues their starts (the one path, with the outbox when
            the worker's app is set; see :meth:`start_queue`).
        alerter: the alerter behind ``alert`` when built from settings (closed by :meth:`close`).
        limiter: the per-appId rate limit when one is set (``None``: calls are not limited);
            :meth:`try_pace` asks it directly, with the caller's own longest wait.
        events: delivers lifecycle events when ``KRTC_EVENTS_WEBHOOK_URL`` is set (workers
            start it: :meth:`EventDispatcher.start`).
        metrics: the API call counters behind the client's observer (:meth:`close` writes
            what they hold).
    """

    settings: Settings
    store: SessionStore
    client: KrtcClient
    profiles: StorageProfiles
    dead_letters: DeadLetterStore
    alert: AlertHook = _log_alert
    alerter: Alerter | None = None
    clock: Callable[[], float] = time.time
    throttle: Callable[[str], float] = field(default=lambda app_id: 0.0)
    enqueue: Callable[[str, list[Any]], str] | None = None
    starts: StartQueue | None = None
    limiter: RateLimiter | None = None
    events: EventDispatcher | None = None
    metrics: MetricsRecorder | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> JobContext:
        """Everything built from ``settings``."""
        store = SessionStore.from_settings(settings)
        metrics = MetricsRecorder.from_settings(settings, flush_every_s=DEFAULT_FLUSH_EVERY_S)
        ctx = cls(
            settings=settings,
            store=store,
            # One clock for every decision shared with other processes: Redis' (see
            # orchestrator.state.clock); the store writes its times with the same one.
            clock=store.clock,
            # Every API call is counted into Redis for `krtc-rec metrics` (cluster-wide),
            # added up in memory and written once a second.
            client=KrtcClient(settings, observer=metrics.observe_call),
            metrics=metrics,
            profiles=StorageProfiles.from_setting(settings.storage_profiles),
            dead_letters=DeadLetterStore(store.redis, keys=store.keys, clock=store.clock),
        )
        if settings.rate_limit_per_app > 0:
            limiter = RateLimiter.from_settings(settings, store.redis)
            # pace() sleeps waits up to 1 s and turns longer ones into a Retry: a wait it will
            # not sleep must not hold a slot, or every retried job would waste one.
            ctx.throttle = functools.partial(limiter.acquire, max_wait_s=1.0)
            ctx.limiter = limiter
        ctx.alerter = Alerter.from_settings(settings, store)
        ctx.alert = ctx.alerter.hook
        ctx.events = EventDispatcher.from_settings(
            settings,
            EventOutbox(store.redis, keys=store.keys),
            alert=ctx.alert,
            clock=store.clock,
        )
        return ctx

    @functools.cached_property
    def runs(self) -> RunBudgets:
        """The per-run attempt counters and wait times (:mod:`orchestrator.state.runs`)."""
        return RunBudgets(self.store.redis, keys=self.store.keys)

    @functools.cached_property
    def leases(self) -> SessionLeases:
        """The single-flight leases of (session, action) (:mod:`orchestrator.state.leases`)."""
        return SessionLeases(self.store.redis, keys=self.store.keys)

    @functools.cached_property
    def flights(self) -> StartFlights:
        """The start's lease, phase and budget steps in one (:mod:`orchestrator.state.flights`)."""
        return StartFlights(
            self.store.redis,
            keys=self.store.keys,
            history_limit=self.store.history_limit,
            retention_s=self.store.retention_s,
            events=self.store.events,
        )

    @functools.cached_property
    def sequences(self) -> UpdateSequences:
        """The update sequence numbers (:mod:`orchestrator.state.sequences`)."""
        return UpdateSequences(self.store.redis, keys=self.store.keys)

    def close(self, timeout_s: float = 5.0) -> None:
        """Give queued alert deliveries ``timeout_s`` seconds, then close the HTTP session."""
        if self.metrics is not None:
            self.metrics.close()
        if self.events is not None:
            self.events.close(timeout_s)
        if self.alerter is not None:
            self.alerter.close(timeout_s)
        self.client.close()

    def send(self, task: str, args: list[Any]) -> str:
        """Queue task ``task`` (the reconciler re-issues starts and stops this way)."""
        if task == START_TASK and self.settings.start_lane:
            return self.start_queue().send(task, args)
        if self.enqueue is None:
            raise RuntimeError("this job context cannot queue tasks (no enqueue function set)")
        return self.enqueue(task, args)

    def start_queue(self) -> StartQueue:
        """Where sessions are created and their starts queued (the scheduler, restarts)."""
        if self.starts is None:
            self.starts = StartQueue(self.store, send=self.send, lane=self.settings.start_lane)
        return self.starts

    def pace(self, app_id: str) -> None:
        """Wait for the per-appId rate limit; a long wait becomes a :class:`Retry`."""
        wait = self.throttle(app_id)
        if wait > 1.0:
            raise Retry(wait, f"rate limit of appId {app_id}")
        if wait > 0:
            time.sleep(wait)

    def try_pace(self, app_id: str, *, max_wait_s: float) -> bool:
        """Wait for the per-appId rate limit, but only if the wait is at most ``max_wait_s``.

        For callers that would rather skip a call than hold a thread (the reconciler).

        Returns:
            True when the call may go now (after the wait); False when the wait would be
            longer: then nothing was reserved and nothing slept.

        Raises:
            StateUnavailableError: Redis, which holds the limit, cannot be reached.
        """
        if self.limiter is None:
            return True
        longest = max(0.0, max_wait_s)
        wait = self.limiter.acquire(app_id, max_wait_s=longest)
        if wait > longest:
            return False
        if wait > 0:
            time.sleep(wait)
        return True

    def policy(self, action: str) -> RetryPolicy:
        """The retry policy of an action (spec D13: stops try far longer)."""
        attempts = {
            "start": self.settings.start_max_attempts,
            "stop": self.settings.stop_max_attempts,
        }.get(action, self.settings.update_max_attempts)
        return RetryPolicy(
            max_attempts=attempts,
            base_s=self.settings.retry_backoff_base,
            max_s=self.settings.retry_backoff_max,
        )


def recording_ref(session: Session) -> dict[str, Any]:
    """``{appId, cname, sid, mode}``: how the calls after a start name the recording."""
    return {
        "appId": session.app_id,
        "cname": session.cname,
        "sid": session.sid,
        "mode": session.mode.value,
    }


def watch_skew(ctx: JobContext, role: str, *, thread: bool = False) -> SkewReporter | None:
    """Compare this process's clock with Redis now and at every later sync of the context's
    clock (about once a minute while it is used; from a thread as well with ``thread``), and
    report skew past 1 s (:mod:`orchestrator.metrics.skew`). ``None`` for an injected clock."""
    clock = ctx.store.clock
    if not isinstance(clock, RedisClock):
        return None
    reporter = SkewReporter(
        ctx.store.redis, ctx.store.keys, clock, process_name(role), alert=ctx.alert
    )
    return reporter.watch() if thread else reporter.install()
