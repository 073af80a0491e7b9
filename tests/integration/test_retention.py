"""Retention against the real Redis: each kind is deleted after its time, kept before it; an
active session never is; two collectors delete each record once; no index keeps a dangling id."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from redis import Redis

from orchestrator.alerts import Alerter
from orchestrator.alerts.store import AlertStore
from orchestrator.krtc.enums import Mode
from orchestrator.retention import Collector, RetentionPolicy
from orchestrator.schedule.model import Occurrence, Outcome, Schedule, ScheduleState
from orchestrator.schedule.store import ScheduleStore
from orchestrator.state import DeadLetter, DeadLetterStore, Phase, SessionStore
from tests.integration.state_fixture import FakeClock

DAY = 86400
POLICY = RetentionPolicy(
    session_s=30 * DAY, dead_letter_s=14 * DAY, alert_s=30 * DAY, schedule_s=30 * DAY, batch=7
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sessions(make_store: Callable[..., SessionStore], clock: FakeClock) -> SessionStore:
    return make_store(clock=clock, retention_s=POLICY.session_s, idempotency_ttl_s=POLICY.session_s)


@pytest.fixture
def make_collector(sessions: SessionStore, clock: FakeClock) -> Callable[..., Collector]:
    def make(**policy: Any) -> Collector:
        return Collector(
            sessions.redis,
            sessions.keys,
            policy=RetentionPolicy(**{**POLICY.__dict__, **policy}),
            clock=clock,
        )

    return make


@pytest.fixture
def collector(make_collector: Callable[..., Collector]) -> Collector:
    return make_collector()


@pytest.fixture
def alerter(sessions: SessionStore, clock: FakeClock) -> Iterator[Alerter]:
    made = Alerter(AlertStore(sessions.redis, keys=sessions.keys), clock=clock, sessions=sessions)
    yield made
    made.close(2)


def start(store: SessionStore, n: int = 0, **options: Any) -> str:
    result = store.create(app_id="app", cname=f"room-{n}", uid="rec", mode=Mode.MIX, **options)
    assert result.created
    return result.session.id


def finish(store: SessionStore, session_id: str, phase: Phase = Phase.STOPPED) -> None:
    store.transition(session_id, to=Phase.RECORDING, why="test")
    assert store.transition(session_id, to=phase, why="test").applied


def members(client: Redis, key: str) -> set[str]:
    kind = client.type(key)
    if kind == "zset":
        return set(cast("list[str]", client.zrange(key, 0, -1)))
    if kind == "set":
        return set(cast("set[str]", client.smembers(key)))
    return set()


def assert_no_dangling_ids(store: SessionStore) -> None:
    client = store.redis
    for index in (store.keys.sessions(), store.keys.finished(), store.keys.active()):
        for session_id in members(client, index):
            assert client.exists(store.keys.session(session_id)), (index, session_id)
    for letter_id in members(client, store.keys.dead_letters()):
        assert client.exists(store.keys.dead_letter(letter_id)), letter_id


# --- sessions -------------------------------------------------------------------------------


def test_a_finished_session_is_kept_before_its_retention_and_deleted_after_it(
    sessions: SessionStore, collector: Collector, clock: FakeClock, alerter: Alerter
) -> None:
    # Given a session that finished, with an idempotency key and an alert
    session_id = start(sessions, idempotency_key="web-1")
    alerter.raise_alert("stuck", session_id, "starting for 301 s")
    finish(sessions, session_id)
    keys = sessions.keys
    client = sessions.redis

    # When its retention has not quite passed, it stays
    clock.advance(POLICY.session_s - 1)
    assert collector.run().deleted["sessions"] == 0
    assert sessions.get(session_id) is not None

    # When it has, it is deleted with its history, index entries, key and alert marker
    clock.advance(2)
    report = collector.run()

    assert report.deleted["sessions"] == 1
    assert sessions.get(session_id) is None
    assert not client.exists(keys.history(session_id))
    assert session_id not in members(client, keys.sessions())
    assert session_id not in members(client, keys.finished())
    assert not client.exists(keys.idempotency("web-1"))
    assert not client.exists(keys.alert(session_id, "stuck"))
    assert sessions.list() == []
    assert_no_dangling_ids(sessions)


def test_after_retention_the_identity_and_the_idempotency_key_start_new_sessions(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    old = start(sessions, idempotency_key="web-2")
    finish(sessions, old, Phase.FAILED)
    clock.advance(POLICY.session_s + 1)
    collector.run()

    again = sessions.create(
        app_id="app", cname="room-0", uid="rec", mode=Mode.MIX, idempotency_key="web-2"
    )

    assert again.created and again.session.id != old


def test_an_active_session_is_never_deleted_however_old(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    pending = start(sessions, 1)
    recording = start(sessions, 2)
    sessions.transition(recording, to=Phase.RECORDING, why="test")
    orphaned = start(sessions, 3)
    sessions.transition(orphaned, to=Phase.ORPHANED, why="test")

    clock.advance(10 * POLICY.session_s)
    report = collector.run()

    assert report.deleted["sessions"] == 0 and report.deleted["dangling"] == 0
    for session_id in (pending, recording, orphaned):
        assert sessions.get(session_id) is not None


def test_an_orphan_the_reconciler_gives_up_counts_as_finished_from_then(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    orphan = start(sessions)
    sessions.transition(orphan, to=Phase.ORPHANED, why="test")
    clock.advance(5 * DAY)
    sessions.transition(orphan, to=Phase.FAILED, why="past its maxIdleTime horizon")

    clock.advance(POLICY.session_s - 10)
    collector.run()
    assert sessions.get(orphan) is not None
    clock.advance(20)
    collector.run()
    assert sessions.get(orphan) is None


def test_a_cancelled_start_is_finished_and_collected(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    session_id = start(sessions)
    sessions.request_stop(session_id)  # pending: cancelled before the start was sent
    clock.advance(POLICY.session_s + 1)

    assert collector.run().deleted["sessions"] == 1
    assert sessions.get(session_id) is None


def test_ids_whose_session_is_gone_are_swept_from_the_sessions_index(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    # Given sessions whose hash vanished (the EXPIRE safety net, or an older version's data)
    gone = [start(sessions, n) for n in range(10)]
    for session_id in gone:
        finish(sessions, session_id)
        sessions.redis.delete(sessions.keys.session(session_id))
        sessions.redis.zrem(sessions.keys.finished(), session_id)
    kept = start(sessions, 99)

    clock.advance(POLICY.session_s + 1)
    report = collector.run()

    assert report.deleted["dangling"] == 10
    assert members(sessions.redis, sessions.keys.sessions()) == {kept}


def test_a_dry_run_counts_and_deletes_nothing(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    ids = [start(sessions, n) for n in range(20)]
    for session_id in ids:
        finish(sessions, session_id)
    clock.advance(POLICY.session_s + 1)

    dry = collector.run(dry_run=True)

    assert dry.dry_run and dry.deleted["sessions"] == 20
    assert all(sessions.get(i) is not None for i in ids)
    assert collector.run().deleted["sessions"] == 20
    assert collector.deleted_counts()["sessions"] == 20


def test_two_collectors_at_once_delete_each_session_once_without_error(
    sessions: SessionStore, make_collector: Callable[..., Collector], clock: FakeClock
) -> None:
    ids = [start(sessions, n) for n in range(300)]
    for session_id in ids:
        finish(sessions, session_id)
    live = start(sessions, 1000)
    clock.advance(POLICY.session_s + 1)
    collectors = [make_collector(batch=25), make_collector(batch=25)]
    totals: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(collector: Collector) -> None:
        barrier.wait()
        try:
            totals.append(collector.run().deleted["sessions"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in collectors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert sum(totals) == 300
    assert sessions.get(live) is not None
    assert members(sessions.redis, sessions.keys.sessions()) == {live}
    assert_no_dangling_ids(sessions)


def test_a_second_beat_within_the_interval_is_gated(collector: Collector) -> None:
    assert collector.run_gated() is not None
    assert collector.run_gated() is None


# --- dead letters ---------------------------------------------------------------------------


def letter(letter_id: str, session_id: str, at: float) -> DeadLetter:
    return DeadLetter(
        id=letter_id, task="krtc.stop", action="stop", session_id=session_id, failed_at=at
    )


def test_dead_letters_are_deleted_after_their_retention_since_the_latest_failure(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    letters = DeadLetterStore(sessions.redis, keys=sessions.keys, clock=clock)
    letters.add(letter("t-1", "s-1", clock.now))
    letters.add(letter("t-2", "s-2", clock.now))
    clock.advance(POLICY.dead_letter_s - 5)
    # s-2's stop keeps failing: its live letter is refreshed and stays
    letters.add(letter("t-3", "s-2", clock.now))

    assert collector.run().deleted["dead_letters"] == 0
    clock.advance(10)
    assert collector.run().deleted["dead_letters"] == 1

    assert letters.get("t-1") is None
    assert not sessions.redis.exists(sessions.keys.dead_letter_live("s-1", "stop"))
    assert letters.get("t-2") is not None and letters.get("t-2").failures == 2  # type: ignore[union-attr]
    # A new failure of s-1 files a new letter (the live pointer went with the old one)
    letters.add(letter("t-4", "s-1", clock.now))
    assert letters.get("t-4") is not None
    assert_no_dangling_ids(sessions)


# --- alerts ---------------------------------------------------------------------------------


def test_alerts_are_dropped_after_their_retention_and_live_sessions_stay_deduplicated(
    sessions: SessionStore, collector: Collector, clock: FakeClock, alerter: Alerter
) -> None:
    live = start(sessions, 1)
    assert alerter.raise_alert("stuck", live, "stuck")
    clock.advance(10 * DAY)
    other = start(sessions, 2)
    assert alerter.raise_alert("lost", other, "404")
    clock.advance(POLICY.alert_s - 10 * DAY + 1)

    report = collector.run()

    assert report.deleted["alerts"] == 1
    assert [a.session_id for a in alerter.store.recent()] == [other]
    # The live session's condition is still seen: still one alert, however long it lasts
    assert alerter.raise_alert("stuck", live, "still stuck") is None
    ttl = int(cast(int, sessions.redis.ttl(sessions.keys.alert(live, "stuck"))))
    assert ttl > 0


# --- schedules ------------------------------------------------------------------------------


def add_schedule(
    store: ScheduleStore, schedule_id: str, at: float, state: ScheduleState, outcome: Outcome
) -> str:
    schedule = Schedule(
        id=schedule_id,
        template={"appId": "app"},
        start_at=datetime.fromtimestamp(at, UTC),
        duration_s=60,
        state=state,
        planned=1,
        created_at=at,
        updated_at=at,
    )
    occurrence = Occurrence(
        id=f"{schedule_id}-1",
        schedule_id=schedule_id,
        index=1,
        slot=at,
        start=at,
        end=at + 60,
        outcome=outcome,
        created_at=at,
        updated_at=at + 60,
    )
    store.add(schedule, occurrence)
    store.redis.zrem(store.keys.schedule_due(), f"start|{occurrence.id}")
    return occurrence.id


def test_past_occurrences_and_ended_schedules_are_deleted_after_their_retention(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    schedules = ScheduleStore(sessions.redis, prefix=sessions.keys.prefix, clock=clock)
    t = clock.now
    done = add_schedule(schedules, "one-off", t, ScheduleState.FINISHED, Outcome.COMPLETED)
    add_schedule(schedules, "cancelled", t, ScheduleState.CANCELLED, Outcome.CANCELLED)
    weekly = add_schedule(schedules, "weekly", t, ScheduleState.ACTIVE, Outcome.COMPLETED)
    running = add_schedule(schedules, "running", t, ScheduleState.CANCELLED, Outcome.STARTED)

    clock.advance(POLICY.schedule_s)
    report = collector.run()
    assert report.deleted["schedules"] == 0 and report.deleted["occurrences"] == 0

    clock.advance(61)
    report = collector.run()

    assert report.deleted["schedules"] == 2
    assert schedules.get("one-off") is None and schedules.occurrence(done) is None
    assert schedules.get("cancelled") is None
    # An active schedule stays; its past occurrence goes
    assert schedules.get("weekly") is not None and schedules.occurrence(weekly) is None
    # A recording still under way keeps its schedule and occurrence
    assert schedules.get("running") is not None and schedules.occurrence(running) is not None
    assert set(schedules.ids()) == {"weekly", "running"}


# --- metrics --------------------------------------------------------------------------------


def test_metrics_show_memory_records_by_kind_and_deletions(
    sessions: SessionStore, collector: Collector, clock: FakeClock
) -> None:
    from orchestrator.metrics.collector import RedisCollector

    finish(sessions, start(sessions, 1))
    start(sessions, 2)
    clock.advance(POLICY.session_s + 1)
    collector.run()
    start(sessions, 3)

    families = {m.name: m for m in RedisCollector(sessions.redis, sessions.keys).collect()}

    [used] = families["krtc_redis_used_memory_bytes"].samples
    assert used.value > 0
    records = {s.labels["kind"]: s.value for s in families["krtc_records"].samples}
    assert records["sessions_active"] == 2 and records["sessions_finished"] == 0
    deleted = {
        s.labels["kind"]: s.value
        for s in families["krtc_gc_deleted"].samples
        if s.name == "krtc_gc_deleted_total"
    }
    assert deleted["sessions"] == 1 and deleted["dead_letters"] == 0
