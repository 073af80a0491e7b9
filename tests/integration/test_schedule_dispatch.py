"""The dispatch tick against the real Redis with a fake clock: claims, outcomes, exactly once.

Tasks are recorded instead of queued; the worker and beat processes are in test_schedule_e2e.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from orchestrator.schedule import (
    Outcome,
    ScheduleConflictError,
    ScheduleState,
    idempotency_key,
)
from orchestrator.state import Desired, Phase
from tests.integration.schedule_fixture import T0, SchedHarness, sched, template

__all__ = ["sched"]  # the fixture, imported for pytest


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_a_due_start_creates_one_session_queues_its_start_and_plans_its_stop(
    sched: SchedHarness,
) -> None:
    schedule = sched.scheduler.add(template(), start_at=at(T0 + 60), duration_s=600)
    dispatcher = sched.dispatcher()

    assert str(dispatcher.tick()) == "nothing due", "not due yet"
    sched.clock.advance(60)
    report = dispatcher.tick()

    occurrence = sched.schedules.occurrence_or_raise(f"{schedule.id}-1")
    assert report.started == [occurrence.id]
    assert occurrence.outcome == Outcome.STARTED
    assert occurrence.start_lag_s == 0
    session = sched.sessions.get_or_raise(occurrence.session_id or "")
    assert session.idempotency_key == idempotency_key(occurrence.id)
    assert session.request == schedule.template
    assert sched.sent == [("krtc.start", [session.id])]
    assert sched.schedules.get_or_raise(schedule.id).state == ScheduleState.FINISHED

    sched.clock.advance(599)
    assert str(dispatcher.tick()) == "nothing due"
    sched.clock.advance(1)
    assert dispatcher.tick().stopped == [occurrence.id]
    assert sched.sessions.get_or_raise(session.id).phase == Phase.STOPPED, "cancelled: never sent"
    done = sched.schedules.occurrence_or_raise(occurrence.id)
    assert (done.outcome, done.stop_lag_s) == (Outcome.COMPLETED, 0)


def test_concurrent_ticks_start_each_occurrence_exactly_once(sched: SchedHarness) -> None:
    for n in range(60):
        sched.scheduler.add(template(f"room-{n}"), start_at=at(T0 + 10), duration_s=60)
    sched.clock.advance(10)
    dispatchers = [sched.dispatcher(claim_batch=7, concurrency=4) for _ in range(6)]
    barrier = threading.Barrier(len(dispatchers))

    def run(index: int) -> None:
        barrier.wait()
        dispatchers[index].tick()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(dispatchers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    starts = sched.sent_of("krtc.start")
    assert len(starts) == len(set(starts)) == 60
    assert len(sched.sessions.active_ids()) == 60
    assert sched.schedules.claimed_count() == 0
    assert sched.schedules.due_count() == 60, "one stop due per started occurrence"


def test_a_tick_that_dies_after_creating_the_session_is_taken_over_after_the_lease(
    sched: SchedHarness,
) -> None:
    # Given a tick that claimed a start and created its session, then died before recording it
    schedule = sched.scheduler.add(template(), start_at=at(T0), duration_s=600)
    dying = sched.dispatcher(lease_s=30)
    [(action, occurrence_id)] = sched.schedules.claim(lease_s=30, limit=10)
    occurrence = sched.schedules.occurrence_or_raise(occurrence_id)
    sched.sessions.create(
        app_id="app-test", cname="weekly-review", uid="1001", mode=schedule.template["mode"],
        request=schedule.template, idempotency_key=idempotency_key(occurrence.id),
    )  # fmt: skip
    # When other ticks run, first within the lease, then after it
    assert str(dying.tick()) == "nothing due", "the claim is still leased"
    sched.clock.advance(31)
    report = sched.dispatcher(lease_s=30).tick()
    # Then the same session is used (not a second one) and its start queued once
    assert (action, report.started) == ("start", [occurrence_id])
    [session_id] = sched.sessions.active_ids()
    assert sched.schedules.occurrence_or_raise(occurrence_id).session_id == session_id
    assert sched.sent == [("krtc.start", [session_id])]


def test_a_start_later_than_its_grace_is_missed_alerted_and_the_series_goes_on(
    sched: SchedHarness,
) -> None:
    schedule = sched.scheduler.add(
        template(), start_at=at(T0 + 60), duration_s=600, cron="*/5 * * * *",
        timezone="UTC", misfire_grace_s=30,
    )  # fmt: skip
    first = sched.schedules.occurrences(schedule.id)[0]
    assert first.start == T0 + 300, "the first cron time at or after start_at"

    sched.clock.now = first.start + 31
    report = sched.dispatcher().tick()

    assert report.missed == [first.id]
    assert sched.sent == [] and sched.sessions.active_ids() == []
    missed = sched.schedules.occurrence_or_raise(first.id)
    assert missed.outcome == Outcome.MISSED and "misfire grace of 30s" in (missed.reason or "")
    [(kind, target, reason)] = sched.alerts
    assert (kind, target) == ("missed", first.id) and "weekly-review" in reason
    [upcoming] = sched.schedules.occurrences(schedule.id, live_only=True)
    assert (upcoming.index, upcoming.start) == (2, T0 + 600)


def test_a_start_late_within_its_grace_starts_and_keeps_its_planned_end(
    sched: SchedHarness,
) -> None:
    schedule = sched.scheduler.add(template(), start_at=at(T0), duration_s=600, misfire_grace_s=30)
    sched.clock.advance(29)

    assert len(sched.dispatcher().tick().started) == 1

    [occurrence] = sched.schedules.occurrences(schedule.id)
    assert occurrence.start_lag_s == 29
    assert occurrence.end == T0 + 600
    lag = sched.sessions.redis.hgetall(sched.sessions.keys.metrics_schedule_lag())
    assert lag, "the dispatch lag feeds krtc_schedule_lag_seconds"
    assert any(float(v) == 29 for k, v in lag.items() if "sum" in str(k)), lag


def test_after_a_long_outage_only_one_occurrence_is_missed(sched: SchedHarness) -> None:
    schedule = sched.scheduler.add(
        template(), start_at=at(T0), duration_s=60, cron="* * * * *", timezone="UTC",
        misfire_grace_s=10,
    )  # fmt: skip
    sched.clock.advance(3600)

    report = sched.dispatcher().tick()

    assert len(report.missed) == 1 and len(sched.alerts) == 1
    [upcoming] = sched.schedules.occurrences(schedule.id, live_only=True)
    assert upcoming.start == T0 + 3600, "the next time not in the past"


def test_the_stop_ends_the_session_the_occurrence_started_following_restarts(
    sched: SchedHarness,
) -> None:
    # Given an occurrence that started, and a session on another channel recording too
    schedule = sched.scheduler.add(template(), start_at=at(T0), duration_s=60)
    other, _ = sched.sessions.create(app_id="app-test", cname="other", uid="1", mode="mix")
    dispatcher = sched.dispatcher()
    dispatcher.tick()
    [occurrence] = sched.schedules.occurrences(schedule.id)
    first = occurrence.session_id or ""
    for session_id in (first, other.id):
        sched.sessions.transition(session_id, to=Phase.STARTING)
        sched.sessions.transition(session_id, to=Phase.RECORDING, sid=f"sid-{session_id}")
    # and its session failed and was restarted as a new session
    sched.sessions.transition(first, to=Phase.FAILED)
    restart, _ = sched.sessions.create(
        app_id="app-test", cname="weekly-review", uid="1001", mode="mix", restarted_from=first
    )
    sched.sessions.transition(first, restarted_to=restart.id)
    sched.sessions.transition(restart.id, to=Phase.STARTING)
    sched.sessions.transition(restart.id, to=Phase.RECORDING, sid="sid-restart")
    # When the end comes
    sched.clock.advance(60)
    assert len(dispatcher.tick().stopped) == 1
    # Then the restarted session is stopped, and nothing else
    assert sched.sent_of("krtc.stop") == [restart.id]
    assert sched.sessions.get_or_raise(restart.id).desired == Desired.STOPPED
    assert sched.sessions.get_or_raise(other.id).desired == Desired.RECORDING


def test_a_channel_already_recording_elsewhere_fails_the_occurrence_and_is_not_stopped(
    sched: SchedHarness,
) -> None:
    manual, _ = sched.sessions.create(
        app_id="app-test", cname="weekly-review", uid="1001", mode="mix"
    )
    schedule = sched.scheduler.add(template(), start_at=at(T0), duration_s=60)

    report = sched.dispatcher().tick()

    [occurrence] = sched.schedules.occurrences(schedule.id)
    assert report.failed == [occurrence.id]
    assert occurrence.outcome == Outcome.FAILED and manual.id in (occurrence.reason or "")
    assert occurrence.session_id is None
    assert [a[0] for a in sched.alerts] == ["schedule_failed"]
    sched.clock.advance(120)
    sched.dispatcher().tick()
    assert sched.sent == [], "no start for it, and no stop of the session it did not start"


def test_cancelling_an_occurrence_before_it_starts_keeps_the_series(sched: SchedHarness) -> None:
    schedule = sched.scheduler.add(
        template(), start_at=at(T0), duration_s=60, weekly="sun@13:00", timezone="Europe/Paris"
    )
    [first] = sched.schedules.occurrences(schedule.id)

    result = sched.scheduler.cancel(first.id)

    assert result.cancelled == [first.id]
    live = sched.schedules.occurrences(schedule.id, live_only=True)
    assert [(o.index, o.start - first.start) for o in live] == [(2, 7 * 86400)]
    sched.clock.now = first.start
    assert str(sched.dispatcher().tick()) == "nothing due"
    with pytest.raises(ScheduleConflictError, match="cancelled"):
        sched.scheduler.cancel(first.id)


def test_cancelling_a_schedule_cancels_its_upcoming_occurrence_and_plans_no_more(
    sched: SchedHarness,
) -> None:
    schedule = sched.scheduler.add(
        template(), start_at=at(T0), duration_s=60, cron="0 * * * *", timezone="UTC"
    )

    result = sched.scheduler.cancel(schedule.id)

    assert result.schedule is not None and result.schedule.state == ScheduleState.CANCELLED
    assert len(result.cancelled) == 1
    sched.clock.advance(7200)
    assert str(sched.dispatcher().tick()) == "nothing due"
    assert sched.sent == []
    assert [s.schedule.id for s in sched.scheduler.list()] == []
    assert [o.outcome for o in sched.scheduler.list(include_past=True)[0].occurrences] == [
        Outcome.CANCELLED
    ]


def test_cancelling_a_recording_occurrence_stops_it_now(sched: SchedHarness) -> None:
    schedule = sched.scheduler.add(template(), start_at=at(T0), duration_s=3600)
    dispatcher = sched.dispatcher()
    dispatcher.tick()
    [occurrence] = sched.schedules.occurrences(schedule.id)

    assert sched.scheduler.cancel(occurrence.id).stopping == [occurrence.id]
    assert dispatcher.tick().stopped == [occurrence.id]
    assert sched.sessions.get_or_raise(occurrence.session_id or "").is_finished


def test_rescheduling_an_occurrence_moves_its_start_and_end(sched: SchedHarness) -> None:
    schedule = sched.scheduler.add(template(), start_at=at(T0 + 60), duration_s=600)
    [occurrence] = sched.schedules.occurrences(schedule.id)

    moved = sched.scheduler.reschedule(occurrence.id, start_at=at(T0 + 3600))

    assert (moved.start, moved.end) == (T0 + 3600, T0 + 4200)
    sched.clock.advance(60)
    assert str(sched.dispatcher().tick()) == "nothing due"
    sched.clock.now = T0 + 3600
    assert len(sched.dispatcher().tick().started) == 1


def test_rescheduling_a_recording_occurrence_moves_its_end(sched: SchedHarness) -> None:
    schedule = sched.scheduler.add(template(), start_at=at(T0), duration_s=600)
    dispatcher = sched.dispatcher()
    dispatcher.tick()
    [occurrence] = sched.schedules.occurrences(schedule.id)

    sched.scheduler.reschedule(occurrence.id, end_at=at(T0 + 900))

    sched.clock.now = T0 + 600
    assert str(dispatcher.tick()) == "nothing due"
    sched.clock.now = T0 + 900
    assert dispatcher.tick().stopped == [occurrence.id]


def test_rescheduling_a_series_replans_its_upcoming_occurrence(sched: SchedHarness) -> None:
    schedule = sched.scheduler.add(
        template(), start_at=at(T0), duration_s=600, weekly="mon@10:00", timezone="Asia/Shanghai"
    )
    [first] = sched.schedules.occurrences(schedule.id)

    sched.scheduler.reschedule(schedule.id, weekly="tue@09:30", duration_s=1800)

    occurrences = sched.schedules.occurrences(schedule.id)
    assert [(o.index, o.outcome) for o in occurrences] == [
        (1, Outcome.CANCELLED), (2, Outcome.SCHEDULED),
    ]  # fmt: skip
    upcoming = occurrences[1]
    local = at(upcoming.start).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert (local.weekday(), local.hour, local.minute) == (1, 9, 30)
    assert upcoming.end - upcoming.start == 1800
    assert first.start != upcoming.start


def test_count_bounds_a_recurring_schedule(sched: SchedHarness) -> None:
    schedule = sched.scheduler.add(
        template(), start_at=at(T0), duration_s=30, cron="* * * * *", timezone="UTC", count=2
    )
    dispatcher = sched.dispatcher()
    for _ in range(4):
        dispatcher.tick()
        sched.clock.advance(60)

    assert [o.outcome for o in sched.schedules.occurrences(schedule.id)] == [
        Outcome.COMPLETED, Outcome.COMPLETED,
    ]  # fmt: skip
    assert sched.schedules.get_or_raise(schedule.id).state == ScheduleState.FINISHED
