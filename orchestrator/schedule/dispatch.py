"""The dispatch tick: claim due starts and stops, and carry each out exactly once.

Beat sends ``krtc.schedule_tick`` every ``KRTC_SCHEDULE_TICK_INTERVAL`` seconds (1 s by
default); any number of beats and workers may run ticks at once. Each tick claims due members
atomically (:meth:`ScheduleStore.claim`), so no two ticks carry out the same one:

- a **start** creates the session with the idempotency key ``schedule:{occurrence id}`` and queues
  ``krtc.start``, then records ``started`` with the session id, makes the stop due at the planned
  end and releases the claim (one script). A tick that dies in between leaves the claim to run
  out; the next tick that claims it gets the same session back from the key, never a second one,
  and queues the start again only if the session is still pending well after its creation.
- a start claimed later than its misfire grace is ``missed`` (and alerted), never sent late.
- a **stop** requests the stop of the session the occurrence started, following restarts
  (``restarted_to``) to the session recording now, then records ``completed``.

After a start is claimed (started, missed or failed) the schedule's next occurrence is planned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.krtc.enums import Mode
from orchestrator.metrics import record_schedule_lag
from orchestrator.schedule.model import Occurrence, Outcome, Schedule
from orchestrator.schedule.planner import plan_next
from orchestrator.schedule.store import START, STOP, ScheduleStore
from orchestrator.state import Phase, Session, SessionNotFoundError, SessionStore, Source
from orchestrator.state.errors import StateUnavailableError
from orchestrator.state.events import EventType
from orchestrator.tasking.starts import StartQueue
from orchestrator.tasking.stops import stop_chain

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_CLAIM_BATCH",
    "DEFAULT_CONCURRENCY",
    "TickReport",
    "Dispatcher",
    "idempotency_key",
]

#: Seconds a claim is held before another tick may take the work over (its tick died).
DEFAULT_LEASE_S = 30.0
#: Members claimed per script call.
DEFAULT_CLAIM_BATCH = 200
#: Claimed members carried out at once by one tick (each is a few Redis round trips).
DEFAULT_CONCURRENCY = 16

log = logging.getLogger("orchestrator.schedule")

Send = Callable[[str, list[Any]], str]
Alert = Callable[[str, str, str], None]


def idempotency_key(occurrence_id: str) -> str:
    """The idempotency key of the session an occurrence starts."""
    return f"schedule:{occurrence_id}"


@dataclass
class TickReport:
    """What one tick did: occurrence ids per outcome."""

    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: Left claimed for a later tick (Redis unavailable mid-way).
    retried: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [
            f"{len(getattr(self, name))} {name}"
            for name in ("started", "stopped", "missed", "failed", "skipped", "retried")
            if getattr(self, name)
        ]
        return ", ".join(parts) or "nothing due"


class Dispatcher:
    """Carries out due scheduled starts and stops.

    Args:
        schedules: the schedule store.
        sessions: the session store (sessions are created and stopped through it).
        send: queues a task by name with its arguments (``krtc.start``, ``krtc.stop``).
        alert: ``(kind, id, reason)``: raises the ``missed`` and ``schedule_failed`` alerts.
        lease_s: seconds a claim is held.
        claim_batch: members claimed per script call.
        concurrency: members carried out at once.
        clock: unix time.
        starts: where sessions are created and their starts queued (default: through
            ``sessions`` and ``send``).
    """

    def __init__(
        self,
        schedules: ScheduleStore,
        sessions: SessionStore,
        send: Send,
        alert: Alert,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        claim_batch: int = DEFAULT_CLAIM_BATCH,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: Callable[[], float] = time.time,
        starts: StartQueue | None = None,
    ) -> None:
        self.schedules = schedules
        self.sessions = sessions
        self.send = send
        self.starts = starts or StartQueue(sessions, send=send)
        self.alert = alert
        self.lease_s = lease_s
        self.claim_batch = claim_batch
        self.concurrency = concurrency
        self._clock = clock

    def tick(self, *, max_rounds: int = 50) -> TickReport:
        """Claim and carry out due work until none is due (at most ``max_rounds`` claims)."""
        report = TickReport()
        self.schedules.record_tick()
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for _ in range(max_rounds):
                claimed = self.schedules.claim(lease_s=self.lease_s, limit=self.claim_batch)
                if not claimed:
                    break
                for action, occurrence_id, outcome in pool.map(self._safe, claimed):
                    getattr(report, outcome).append(occurrence_id)
                    log.info("scheduled %s of occurrence %s: %s", action, occurrence_id, outcome)
                if len(claimed) < self.claim_batch:
                    break
        return report

    def _safe(self, member: tuple[str, str]) -> tuple[str, str, str]:
        action, occurrence_id = member
        try:
            if action == START:
                outcome = self.run_start(occurrence_id)
            elif action == STOP:
                outcome = self.run_stop(occurrence_id)
            else:
                outcome = "skipped"
        except StateUnavailableError:
            log.warning("Redis unavailable: %s of %s left for a later tick", action, occurrence_id)
            outcome = "retried"
        except Exception:
            # Left claimed: a later tick takes it over when the lease runs out.
            log.exception("scheduled %s of occurrence %s failed", action, occurrence_id)
            outcome = "retried"
        return action, occurrence_id, outcome

    # -- starts --------------------------------------------------------------------------------

    def run_start(self, occurrence_id: str) -> str:
        """Carry out a claimed start; returns the report's bucket for it."""
        occurrence = self.schedules.occurrence(occurrence_id)
        schedule = self.schedules.get(occurrence.schedule_id) if occurrence is not None else None
        if occurrence is None or schedule is None or occurrence.outcome != Outcome.SCHEDULED:
            self.schedules.finish(START, occurrence_id, expect=None, fields={})
            return "skipped"
        now = self._clock()
        late = now - occurrence.start
        if late > schedule.misfire_grace_s or now >= occurrence.end:
            reason = (
                f"not started: the dispatch ran {late:.0f}s after the planned start, beyond the "
                f"misfire grace of {schedule.misfire_grace_s}s"
            )
            self._close(occurrence, Outcome.MISSED, reason, schedule, now)
            self.alert("missed", occurrence.id, f"{self._describe(schedule)}: {reason}")
            return "missed"
        try:
            session, ours = self._create(occurrence, schedule, now)
        except StateUnavailableError:
            raise
        except OrchestratorError as exc:
            reason = f"the session could not be created: {exc}"
            self._close(occurrence, Outcome.FAILED, reason, schedule, now)
            self.alert("schedule_failed", occurrence.id, f"{self._describe(schedule)}: {reason}")
            return "failed"
        if not ours:
            reason = (
                f"channel {session.app_id}/{session.cname}/{session.uid} is already recording "
                f"in session {session.id}, which this schedule did not start"
            )
            self._close(occurrence, Outcome.FAILED, reason, schedule, now)
            self.alert("schedule_failed", occurrence.id, f"{self._describe(schedule)}: {reason}")
            return "failed"
        applied = self.schedules.finish(
            START,
            occurrence.id,
            expect=Outcome.SCHEDULED,
            fields={
                "outcome": Outcome.STARTED,
                "session_id": session.id,
                "dispatched_at": now,
            },
            then_due=(STOP, occurrence.end),
        )
        if applied:
            record_schedule_lag(self.sessions.redis, self.sessions.keys, max(0.0, late))
            self._plan_after(occurrence, schedule)
        return "started" if applied else "skipped"

    def _create(
        self, occurrence: Occurrence, schedule: Schedule, now: float
    ) -> tuple[Session, bool]:
        """The occurrence's session, created unless a retried claim created it before."""
        body = schedule.template
        key = idempotency_key(occurrence.id)
        session, created = self.starts.create(
            app_id=body["appId"],
            cname=body["cname"],
            uid=body["uid"],
            mode=Mode(body["mode"]),
            request=body,
            idempotency_key=key,
            source=Source.PRODUCER,
            why=f"scheduled start of occurrence {occurrence.id}",
        )
        if created:
            return session, True
        if session.idempotency_key != key:
            return session, False
        # A tick died between creating the session and recording the start: queue the start
        # again only if nothing has picked it up since (a pending session well past a lease).
        if session.phase == Phase.PENDING and now - session.created_at >= self.lease_s:
            self.send("krtc.start", [session.id])
        return session, True

    def _close(
        self,
        occurrence: Occurrence,
        outcome: Outcome,
        reason: str,
        schedule: Schedule,
        now: float,
    ) -> None:
        applied = self.schedules.finish(
            START,
            occurrence.id,
            expect=Outcome.SCHEDULED,
            fields={"outcome": outcome, "reason": reason},
            emit=EventType.SCHEDULE_MISSED if outcome == Outcome.MISSED else None,
        )
        log.warning("occurrence %s %s: %s", occurrence.id, outcome.value, reason)
        if applied:
            self._plan_after(occurrence, schedule)

    def _plan_after(self, occurrence: Occurrence, schedule: Schedule) -> None:
        # The schedule read at the claim is enough: planning re-checks in Redis that it is
        # still active (a cancel in between wins).
        plan_next(
            self.schedules,
            schedule,
            after=occurrence.slot,
            index=occurrence.index,
            now=self._clock(),
        )

    @staticmethod
    def _describe(schedule: Schedule) -> str:
        body = schedule.template
        return f"schedule {schedule.id} ({body.get('appId')}/{body.get('cname')})"

    # -- stops ---------------------------------------------------------------------------------

    def run_stop(self, occurrence_id: str) -> str:
        """Carry out a claimed stop; returns the report's bucket for it."""
        occurrence = self.schedules.occurrence(occurrence_id)
        if occurrence is None or occurrence.outcome != Outcome.STARTED:
            self.schedules.finish(STOP, occurrence_id, expect=None, fields={})
            return "skipped"
        if occurrence.session_id:
            self._stop_chain(occurrence)
        now = self._clock()
        applied = self.schedules.finish(
            STOP,
            occurrence.id,
            expect=Outcome.STARTED,
            fields={"outcome": Outcome.COMPLETED, "stopped_at": now},
        )
        if applied:
            lag = max(0.0, now - occurrence.end)
            record_schedule_lag(self.sessions.redis, self.sessions.keys, lag)
        return "stopped"

    def _stop_chain(self, occurrence: Occurrence) -> None:
        """Stop the occurrence's session, or the session that restarted it, and so on."""
        assert occurrence.session_id is not None
        why = f"scheduled end of occurrence {occurrence.id}"
        try:
            stop_chain(self.sessions, self.send, occurrence.session_id, why=why)
        except SessionNotFoundError:
            log.warning("occurrence %s: session %s is gone", occurrence.id, occurrence.session_id)
