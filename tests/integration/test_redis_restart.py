"""Redis restarted abruptly while stops are queued: workers survive and every stop lands.

Runs its own redis-server (AOF on, as production should) so that it can shut it down.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.jobs.context import JobContext
from orchestrator.producer import Recorder
from orchestrator.reconcile.runner import run_once
from orchestrator.settings import settings_env
from orchestrator.stack import EmbeddedRedis
from orchestrator.state import Phase
from orchestrator.tasking.queues import send_task
from tests.conftest import SENTINEL_STORAGE_SECRET
from tests.integration.sandbox_fixture import SandboxHandle
from tests.integration.worker_fixture import STORAGE_PROFILE, WorkerProcess, start_body

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server on PATH"
)


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()
    yield server
    server.stop()


def test_stops_survive_a_redis_restart(
    own_redis: EmbeddedRedis, sandbox: SandboxHandle, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles.json"
    profiles.write_text(
        json.dumps(
            {
                STORAGE_PROFILE: {
                    "vendor": 4,
                    "region": 0,
                    "bucket": "b",
                    "accessKey": "AK",
                    "secretKey": SENTINEL_STORAGE_SECRET,
                }
            }
        )
    )
    settings = sandbox.settings(
        redis_url=own_redis.url,
        redis_prefix="restart",
        connect_timeout_s=1.0,
        read_timeout_s=2.0,
        visibility_timeout=15,
        retry_backoff_base=0.1,
        retry_backoff_max=0.5,
        reconcile_interval=1.0,
        storage_profiles=str(profiles),
    )
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "worker", "-c", "8"],
            env={**os.environ, **settings_env(settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(process, log_path)
    try:
        worker.wait_ready()
        recorder = Recorder(settings)
        sessions = [recorder.start(start_body(f"restart-{n}")) for n in range(5)]
        for session in sessions:
            recorder.wait(session.id, Phase.RECORDING, timeout=15)

        # Stops are requested (persisted first, then queued) while the API is slow, so some
        # are queued and some under way when Redis goes down without saving.
        sandbox.set_faults(latency_ms=400)
        for session in sessions:
            recorder.stop(session.id)
        own_redis.shutdown_nosave()
        time.sleep(1.0)
        own_redis.start()
        sandbox.clear_faults()

        # Beat's rounds re-issue any stop the restart lost (run here in the foreground).
        ctx = JobContext.from_settings(settings)
        ctx.enqueue = functools.partial(send_task, Recorder(settings).celery)
        ctx.alert = lambda *_: None
        deadline = time.monotonic() + 45
        recorder = Recorder(settings)
        while time.monotonic() < deadline:
            phases = {recorder.get(s.id).phase for s in sessions}
            if phases == {Phase.STOPPED}:
                break
            run_once(ctx)
            time.sleep(1.0)
        phases = {recorder.get(s.id).phase for s in sessions}
        assert phases == {Phase.STOPPED}, worker.log()[-4000:]
        assert sandbox.recordings(active=True) == []
        assert worker.process.poll() is None, "the worker survived the restart:\n" + worker.log()
    finally:
        worker.stop()
