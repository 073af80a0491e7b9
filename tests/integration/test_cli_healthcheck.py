"""``krtc-rec healthcheck`` as a container engine runs it: a real Redis, worker and beat."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.settings import Settings, settings_env
from orchestrator.stack import EmbeddedRedis
from tests.integration.sandbox_fixture import SandboxHandle

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    # A Redis of its own: the worker answers to Celery's default name, celery@HOST, which a
    # worker of another test on a shared Redis could answer too.
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


def _healthcheck(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "healthcheck", *args],
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _wait_for(settings: Settings, code: int, *args: str) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 60
    while True:
        result = _healthcheck(settings, *args)
        if result.returncode == code or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def _spawn(settings: Settings, tmp_path: Path, name: str, *argv: str) -> subprocess.Popen[bytes]:
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *argv],
            env={**os.environ, **settings_env(settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_worker_and_beat_are_healthy_while_they_run_and_unhealthy_once_stopped(
    own_redis: EmbeddedRedis, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    # Given a worker under its default name (what the image runs) and beat, a round a second
    settings = sandbox.settings(
        redis_url=own_redis.url, redis_prefix="health", reconcile_interval=1.0
    )
    worker = _spawn(settings, tmp_path, "worker", "worker", "-c", "2")
    beat = _spawn(settings, tmp_path, "beat", "beat", "--schedule-file", str(tmp_path / "beat"))
    try:
        # When they are up, both checks pass, each in one line
        alive = _wait_for(settings, 0, "worker")
        assert alive.returncode == 0, alive.stdout + alive.stderr
        assert alive.stdout.startswith("healthy: celery@") and alive.stdout.count("\n") == 1
        rounds = _wait_for(settings, 0, "beat", "--max-age", "5")
        assert rounds.returncode == 0, rounds.stdout + rounds.stderr
        assert "last reconcile round began" in rounds.stdout
        # ...and another worker's name is not answered for by this one
        other = _healthcheck(settings, "worker", "--hostname", "celery@elsewhere", "--timeout", "1")
        assert other.returncode == 1 and "celery@elsewhere did not answer" in other.stdout

        # When the worker stops, its check fails; with beat stopped too, rounds age past the limit
        _stop(worker)
        dead = _healthcheck(settings, "worker", "--timeout", "1")
        assert dead.returncode == 1 and dead.stdout.startswith("unhealthy: celery@"), dead.stdout
        _stop(beat)
        stale = _wait_for(settings, 1, "beat", "--max-age", "3")
        assert stale.returncode == 1, stale.stdout
        assert stale.stdout.startswith("unhealthy: last reconcile round began")
    finally:
        _stop(worker)
        _stop(beat)


def test_healthcheck_fails_in_one_line_when_redis_is_unreachable(sandbox: SandboxHandle) -> None:
    settings = sandbox.settings(
        redis_url="redis://127.0.0.1:1/0", redis_connect_timeout_s=0.5, redis_read_retries=0
    )

    for role in ("worker", "beat"):
        result = _healthcheck(settings, role, "--timeout", "1")
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stdout.startswith("unhealthy: ") and result.stdout.count("\n") == 1
