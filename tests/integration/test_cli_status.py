"""``krtc-rec status`` as an operator runs it: real Redis servers, a real worker and beat."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from orchestrator.doctor import diagnose
from orchestrator.schedule.store import ScheduleStore
from orchestrator.settings import Settings, settings_env
from orchestrator.stack import EmbeddedRedis
from orchestrator.state import DeadLetter, DeadLetterStore, Keys, SessionStore
from tests.integration.sandbox_fixture import SandboxHandle
from tests.integration.test_cli_sessions import run_cli

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()  # AOF on, noeviction: what production runs
    server.start()
    yield server
    server.stop()


def _status(settings: Settings) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "status", "--json"],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def _checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def _spawn(settings: Settings, tmp_path: Path, name: str, *argv: str) -> subprocess.Popen[bytes]:
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *argv],
            env={**os.environ, **settings_env(settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_status_names_each_problem_and_what_to_do(
    sandbox: SandboxHandle, redis_url: str, key_prefix: str
) -> None:
    # The test Redis runs without AOF, and no worker or beat runs under this prefix.
    settings = sandbox.settings(redis_url=redis_url, redis_prefix=key_prefix)
    store = SessionStore.from_settings(settings)
    DeadLetterStore(store.redis, keys=Keys(key_prefix)).add(
        DeadLetter(
            id="t1",
            task="krtc.stop",
            action="stop",
            session_id="S1",
            args=["S1"],
            error={"kind": "x", "reason": "refused"},
            failed_at=store.clock(),
        )
    )
    code, report, _ = _status(settings)
    assert code == 1 and report["healthy"] is False
    checks = _checks(report)
    assert not checks["redis"]["ok"] and "AOF off" in checks["redis"]["detail"]
    assert "appendonly yes" in checks["redis"]["fix"]
    assert not checks["workers"]["ok"] and "krtc-rec worker" in checks["workers"]["fix"]
    assert not checks["reconciler"]["ok"] and not checks["scheduler"]["ok"]
    assert not checks["dead letters"]["ok"] and "1 waiting" in checks["dead letters"]["detail"]
    assert checks["clock"]["ok"] and checks["queues"]["ok"]
    text = run_cli(None, "status", **settings_env(settings))
    assert text.returncode == 1 and "FAIL  redis" in text.stdout and "->" in text.stdout


def test_status_of_a_running_deployment_is_healthy(
    own_redis: EmbeddedRedis, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    settings = sandbox.settings(
        redis_url=own_redis.url,
        redis_prefix="status",
        reconcile_interval=1.0,
        schedule_tick_interval=1.0,
    )
    processes = [
        _spawn(settings, tmp_path, "worker", "worker", "-c", "4"),
        _spawn(settings, tmp_path, "beat", "beat", "--schedule-file", str(tmp_path / "beat")),
    ]
    try:
        deadline = time.monotonic() + 60
        while True:
            code, report, stderr = _status(settings)
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        assert code == 0, json.dumps(report, indent=1) + stderr
        checks = _checks(report)
        assert "AOF on" in checks["redis"]["detail"]
        assert "1 alive" in checks["workers"]["detail"]
        for queue in ("krtc", "krtc-stop", "krtc-schedule", "krtc-reconcile"):
            assert queue in checks["workers"]["detail"]

        # An eviction policy that can drop sessions is named, with what to set instead.
        client = Redis.from_url(own_redis.url)
        client.config_set("maxmemory-policy", "allkeys-lru")
        code, report, _ = _status(settings)
        redis_check = _checks(report)["redis"]
        assert code == 1 and not redis_check["ok"]
        assert "maxmemory-policy allkeys-lru" in redis_check["detail"]
        assert "noeviction" in redis_check["fix"]
        client.config_set("maxmemory-policy", "noeviction")

        # A stopped worker is named too.
        os.killpg(processes[0].pid, signal.SIGTERM)
        processes[0].wait(20)
        code, report, _ = _status(settings)
        workers = _checks(report)["workers"]
        assert code == 1 and not workers["ok"] and "no worker answered" in workers["detail"]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(20)


def test_a_tick_during_the_workers_check_is_not_shown_in_the_future(store: SessionStore) -> None:
    # The workers' check waits for their answers; a schedule tick recorded meanwhile used to be
    # aged against a "now" taken before it (status printed "last tick -2s ago").
    schedules = ScheduleStore(store.redis, prefix=store.keys.prefix, clock=store.clock)

    class Inspect:
        def active_queues(self) -> dict[str, Any]:
            time.sleep(1.2)
            schedules.record_tick()
            return {}

    class Control:
        def inspect(self, timeout: float) -> Inspect:
            return Inspect()

    class FakeCelery:
        control = Control()

    settings = Settings(redis_prefix=store.keys.prefix)
    checks = {c.name: c for c in diagnose(settings, store, FakeCelery())}  # type: ignore[arg-type]
    assert checks["scheduler"].detail == "last tick 0s ago"
    assert checks["scheduler"].ok
