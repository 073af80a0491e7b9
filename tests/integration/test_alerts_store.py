"""Alerts in the real Redis: exactly one per (session, kind), reminders, the recent list and the
per-kind counters (orchestrator/alerts/store.py, alerter.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from redis import Redis

from orchestrator.alerts import Alert, Alerter, AlertKind, AlertStore, Sink
from orchestrator.krtc.enums import Mode
from orchestrator.settings import Settings
from orchestrator.state import SessionStore
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET
from tests.integration.state_fixture import FakeClock

pytestmark = pytest.mark.integration


class Collect(Sink):
    """A background sink that keeps what it is given."""

    name = "collect"

    def __init__(self) -> None:
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()

    def deliver(self, alert: Alert) -> None:
        with self._lock:
            self.alerts.append(alert)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_alerter(store: SessionStore, clock: FakeClock) -> Iterator[Callable[..., Alerter]]:
    made: list[Alerter] = []

    def make(**options: Any) -> Alerter:
        options.setdefault("clock", clock)
        options.setdefault("sessions", store)
        alerter = Alerter(AlertStore(store.redis, keys=store.keys), **options)
        made.append(alerter)
        return alerter

    yield make
    for alerter in made:
        alerter.close(2)


def new_session(store: SessionStore, **fields: Any) -> str:
    result = store.create(app_id="app-1", cname="room:1", uid="42", mode=Mode.INDIVIDUAL, **fields)
    return result.session.id


def test_twenty_threads_raising_one_alert_raise_it_exactly_once(
    store: SessionStore, make_alerter: Callable[..., Alerter], redis_client: Redis
) -> None:
    # Given 20 threads (workers, reconcilers) that see the same status 20 at once
    sink = Collect()
    alerter = make_alerter(sinks=[sink])
    session_id = new_session(store)
    barrier = threading.Barrier(20)
    results: list[Alert | None] = []
    lock = threading.Lock()

    def raise_it() -> None:
        barrier.wait()
        alert = alerter.raise_alert("abnormal_exit", session_id, "status 20")
        with lock:
            results.append(alert)

    # When they all raise it
    threads = [threading.Thread(target=raise_it) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    # Then exactly one got an alert, stored, counted and delivered once
    raised = [r for r in results if r is not None]
    assert len(results) == 20
    assert len(raised) == 1
    assert alerter.flush(5)
    assert [a.id for a in sink.alerts] == [raised[0].id]
    assert [a.id for a in alerter.store.recent()] == [raised[0].id]
    assert alerter.store.counts()["abnormal_exit"] == 1
    assert redis_client.llen(store.keys.alerts()) == 1


def test_each_kind_and_each_session_alerts_on_its_own(
    store: SessionStore, make_alerter: Callable[..., Alerter]
) -> None:
    alerter = make_alerter()
    one = new_session(store)

    assert alerter.raise_alert("stuck", one, "starting for 301 s")
    assert alerter.raise_alert("stop_failing", one, "stop: HTTP 500")
    assert alerter.raise_alert("stuck", "other-session", "starting for 301 s")
    assert alerter.raise_alert("stuck", one, "again") is None

    assert alerter.store.is_raised(one, "stuck")
    assert not alerter.store.is_raised(one, "lost")


def test_without_a_reminder_interval_an_alert_is_raised_once_for_ever(
    store: SessionStore, make_alerter: Callable[..., Alerter], clock: FakeClock
) -> None:
    alerter = make_alerter()
    session_id = new_session(store)

    assert alerter.raise_alert("lost", session_id, "404 from query")
    clock.advance(30 * 86400)

    assert alerter.raise_alert("lost", session_id, "404 from query") is None


def test_a_reminder_is_raised_once_the_interval_has_passed(
    store: SessionStore, make_alerter: Callable[..., Alerter], clock: FakeClock
) -> None:
    # Given reminders every 600 s
    alerter = make_alerter(remind_after_s=600)
    session_id = new_session(store)
    first = alerter.raise_alert("stuck", session_id, "starting for 301 s")
    assert first is not None and first.reminder == 0

    # When the condition persists, polled every 30 s
    raised = []
    for _ in range(45):
        clock.advance(30)
        alert = alerter.raise_alert("stuck", session_id, "still starting")
        if alert is not None:
            raised.append(alert)

    # Then reminders come every 600 s (at 600 and 1200 s), not every poll
    assert [a.at - first.at for a in raised] == [600, 1200]
    assert [a.reminder for a in raised] == [1, 2]
    assert all(a.first_at == first.at for a in raised)
    assert all(a.is_reminder and a.id != first.id for a in raised)
    assert alerter.store.counts()["stuck"] == 3


def test_just_short_of_the_interval_is_no_reminder(
    store: SessionStore, make_alerter: Callable[..., Alerter], clock: FakeClock
) -> None:
    alerter = make_alerter(remind_after_s=600)
    session_id = new_session(store)
    assert alerter.raise_alert("orphaned", session_id, "409 without sid")

    clock.advance(599.9)
    assert alerter.raise_alert("orphaned", session_id, "409 without sid") is None
    clock.advance(0.1)
    assert alerter.raise_alert("orphaned", session_id, "409 without sid") is not None


def test_a_resolved_condition_alerts_again_when_it_returns(
    store: SessionStore, make_alerter: Callable[..., Alerter]
) -> None:
    alerter = make_alerter()
    session_id = new_session(store)
    assert alerter.raise_alert("stuck", session_id, "stuck")

    assert alerter.resolve("stuck", session_id)
    assert not alerter.resolve("stuck", session_id)

    again = alerter.raise_alert("stuck", session_id, "stuck again")
    assert again is not None and again.reminder == 0


def test_the_marker_expires_after_its_ttl(
    store: SessionStore, redis_client: Redis, clock: FakeClock
) -> None:
    alerts = AlertStore(redis_client, keys=store.keys, marker_ttl_s=60)
    alerter = Alerter(alerts, clock=clock)

    assert alerter.raise_alert("lost", "s-1", "404")

    ttl = redis_client.ttl(store.keys.alert("s-1", "lost"))
    assert 0 < ttl <= 60


def test_recent_alerts_are_newest_first_and_capped(
    store: SessionStore, redis_client: Redis, clock: FakeClock
) -> None:
    alerter = Alerter(AlertStore(redis_client, keys=store.keys, recent_limit=5), clock=clock)

    for n in range(8):
        clock.advance(1)
        alerter.raise_alert("dead_letter", f"s-{n}", f"task {n} failed")

    recent = alerter.store.recent()
    assert [a.session_id for a in recent] == ["s-7", "s-6", "s-5", "s-4", "s-3"]
    assert [a.session_id for a in alerter.store.recent(limit=2)] == ["s-7", "s-6"]
    assert alerter.store.counts()["dead_letter"] == 8
    with pytest.raises(ValueError):
        alerter.store.recent(limit=0)


def test_counters_count_per_kind_and_list_every_kind(
    store: SessionStore, make_alerter: Callable[..., Alerter]
) -> None:
    alerter = make_alerter()
    for n in range(3):
        alerter.raise_alert("start_failed", f"s-{n}", "400")
    alerter.raise_alert("lost", "s-0", "404")
    alerter.raise_alert("lost", "s-0", "404")  # deduplicated: not counted

    counts = alerter.store.counts()

    assert counts == {kind.value: 0 for kind in AlertKind} | {"start_failed": 3, "lost": 1}


def test_an_alert_carries_the_session_identity_sid_and_status(
    store: SessionStore, make_alerter: Callable[..., Alerter]
) -> None:
    alerter = make_alerter()
    session_id = new_session(store)
    store.transition(session_id, to="starting", why="test")
    store.transition(session_id, to="recording", why="test", sid="sid-9", last_status=5)

    alert = alerter.raise_alert("abnormal_exit", session_id, "status 20", server_status=20)

    assert alert is not None
    assert (alert.app_id, alert.cname, alert.uid, alert.sid) == ("app-1", "room:1", "42", "sid-9")
    assert alert.server_status == 20  # the raiser's value wins over the stored one
    assert alert.severity == "critical"
    assert alerter.store.recent()[0] == alert


def test_an_unknown_session_still_alerts(make_alerter: Callable[..., Alerter]) -> None:
    alert = make_alerter().raise_alert("dead_letter", "?", "task without args failed")

    assert alert is not None and alert.app_id is None and alert.session_id == "?"


def test_times_survive_the_script_exactly(
    store: SessionStore, make_alerter: Callable[..., Alerter], clock: FakeClock
) -> None:
    clock.now = 1_700_000_000.123456
    alerter = make_alerter(remind_after_s=1)
    first = alerter.raise_alert("lost", "s-1", "404")
    clock.advance(1.000001)
    second = alerter.raise_alert("lost", "s-1", "404")

    assert first is not None and second is not None
    assert first.at == first.first_at == 1_700_000_000.123456
    assert second.first_at == first.at and second.at == clock.now


def test_no_secret_reaches_an_alert(store: SessionStore, redis_client: Redis) -> None:
    # Given settings with the API secret and a session whose stored request names storage
    settings = Settings(
        access_key="AK",
        secret_key=SecretStr(SENTINEL_SECRET),
        alert_webhook_secret=SecretStr("hmac-" + SENTINEL_SECRET),
    )
    sink = Collect()
    alerter = Alerter.from_settings(settings, store, secrets=[SENTINEL_STORAGE_SECRET])
    alerter.dispatcher = type(alerter.dispatcher)([sink], outbox=alerter.store.outbox)
    session_id = new_session(
        store, request={"storageConfig": {"secretKey": SENTINEL_STORAGE_SECRET}}
    )

    # When reasons quote the secrets (an error message that should never have)
    for kind in AlertKind:
        alerter.raise_alert(
            kind,
            session_id,
            f"boom {SENTINEL_SECRET} {SENTINEL_STORAGE_SECRET} hmac-{SENTINEL_SECRET}",
        )
    assert alerter.flush(5)

    # Then no stored, listed or delivered alert holds one
    stored = json.dumps(redis_client.lrange(store.keys.alerts(), 0, -1))
    delivered = json.dumps([a.model_dump(mode="json") for a in sink.alerts])
    for text in (stored, delivered):
        assert SENTINEL_SECRET not in text
        assert SENTINEL_STORAGE_SECRET not in text
    assert len(sink.alerts) == len(AlertKind)
    alerter.close(1)


def test_the_hook_never_raises_and_logs_when_redis_is_gone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    alerter = Alerter(AlertStore(dead, keys=SessionStore(dead).keys))

    alerter.hook("lost", "s-1", "404 from query")

    assert "could not raise alert lost for session s-1" in caplog.text
    dead.close()


def test_the_hook_matches_what_the_jobs_call(make_alerter: Callable[..., Alerter]) -> None:
    from orchestrator.jobs.context import AlertHook

    alerter = make_alerter()
    hook: AlertHook = alerter.hook

    hook("dead_letter", "s-1", "krtc.start failed for good")

    assert alerter.store.recent()[0].kind == AlertKind.DEAD_LETTER
