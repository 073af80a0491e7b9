"""Fixtures for scheduled recordings on the real Redis, with a fake clock and no worker.

* ``sched``: a :class:`SchedHarness`: a Scheduler, a ScheduleStore and a SessionStore on the
  test's prefix sharing one :class:`FakeClock`, plus dispatchers whose sent tasks and alerts are
  recorded instead of queued.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis import Redis

from orchestrator.schedule import Dispatcher, Scheduler, ScheduleStore
from orchestrator.settings import Settings
from orchestrator.state import SessionStore
from tests.integration.state_fixture import FakeClock

__all__ = ["SchedHarness", "sched", "template"]

#: 2025-06-15T12:00:00Z
T0 = 1_749_988_800.0


def template(cname: str = "weekly-review", uid: str = "1001") -> dict[str, Any]:
    return {
        "appId": "app-test",
        "cname": cname,
        "uid": uid,
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 30, "streamTypes": 2},
            "recordingFileConfig": {"avFileType": ["hls"]},
            "storageConfig": {"profile": "recordings"},
        },
    }


@dataclass
class SchedHarness:
    clock: FakeClock
    schedules: ScheduleStore
    sessions: SessionStore
    scheduler: Scheduler
    sent: list[tuple[str, list[Any]]] = field(default_factory=list)
    alerts: list[tuple[str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, task: str, args: list[Any]) -> str:
        with self._lock:
            self.sent.append((task, list(args)))
            return f"task-{len(self.sent)}"

    def alert(self, kind: str, target: str, reason: str) -> None:
        with self._lock:
            self.alerts.append((kind, target, reason))

    def dispatcher(self, **options: Any) -> Dispatcher:
        return Dispatcher(
            self.schedules, self.sessions, self.send, self.alert, clock=self.clock, **options
        )

    def sent_of(self, task: str) -> list[str]:
        return [args[0] for name, args in self.sent if name == task]


@pytest.fixture
def sched(
    redis_client: Redis, key_prefix: str, make_store: Callable[..., SessionStore]
) -> SchedHarness:
    clock = FakeClock(T0)
    schedules = ScheduleStore(redis_client, prefix=key_prefix, clock=clock)
    return SchedHarness(
        clock=clock,
        schedules=schedules,
        sessions=make_store(clock=clock),
        scheduler=Scheduler(Settings(redis_prefix=key_prefix), store=schedules, clock=clock),
    )
