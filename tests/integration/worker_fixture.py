"""A real Celery worker (``krtc-rec worker`` in a subprocess) on the test's Redis prefix.

* ``queue_stack``: the sandbox, a :class:`Recorder` and a worker factory sharing one key prefix,
  with short timeouts and backoff so that retries take fractions of a second. The worker's log
  goes to a file the test can search (for secrets, for example).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.producer import Recorder
from orchestrator.settings import Settings, settings_env
from orchestrator.state import Phase, Session
from tests.conftest import SENTINEL_STORAGE_SECRET
from tests.integration.sandbox_fixture import SandboxHandle

__all__ = ["WorkerProcess", "QueueStack", "queue_stack", "STORAGE_PROFILE", "start_body"]

#: The storage profile every test start uses; its secretKey is the storage sentinel.
STORAGE_PROFILE = "recordings"
_READY_TIMEOUT_S = 30.0


def start_body(
    cname: str, uid: str = "1001", *, mode: str = "mix", **client: Any
) -> dict[str, Any]:
    """A valid start request (wire form) that stores through the test's storage profile."""
    client_request: dict[str, Any] = {
        "recordingConfig": {"maxIdleTime": 30, "streamTypes": 2},
        "recordingFileConfig": {"avFileType": ["hls"]},
        "storageConfig": {"profile": STORAGE_PROFILE},
    }
    client_request.update(client)
    return {
        "appId": "app-test",
        "cname": cname,
        "uid": uid,
        "mode": mode,
        "clientRequest": client_request,
    }


@dataclass
class WorkerProcess:
    """One worker subprocess (its own process group, so a kill takes its children too)."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = _READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        """Warm shutdown (SIGTERM); returns the exit code once every process of the worker's
        group has ended (under ``faketime`` the worker is a child that may outlive it)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if not _group_ended(self.process.pid, timeout):
            self.kill()
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL the worker and its pool at once: no cleanup, no acks."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)
        _group_ended(self.process.pid, 10)


def _group_ended(group: int, timeout_s: float) -> bool:
    """Wait until no process of ``group`` runs (a zombie does not); False if one still does at
    the end."""
    deadline = time.monotonic() + timeout_s
    while _group_runs(group):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _group_runs(group: int) -> bool:
    """Whether a process of ``group`` runs, from ``/proc/*/stat`` (pgrp is field 5, the state
    field 3; both come after the command's closing parenthesis)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


@dataclass
class QueueStack:
    """The sandbox, a producer and workers sharing one key prefix."""

    sandbox: SandboxHandle
    settings: Settings
    env: dict[str, str]
    recorder: Recorder
    tmp_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(self, *args: str, wrapper: Sequence[str] = (), **env: str) -> WorkerProcess:
        """Start ``krtc-rec worker`` and wait until it consumes.

        Args:
            args: more ``krtc-rec worker`` options.
            wrapper: a command to run it under (``["faketime", "-f", "+3s"]``).
            env: more environment variables.
        """
        log_path = self.tmp_path / f"worker-{len(self.workers)}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "orchestrator.cli", "worker", "-c", "8", *args],
            env={**os.environ, **self.env, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()
        worker = WorkerProcess(process, log_path)
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def wait(self, session_id: str, *phases: Phase | str, timeout: float = 15.0) -> Session:
        return self.recorder.wait(session_id, list(phases), timeout=timeout)

    def wait_server_status(self, sid: str, status: int = 5, timeout: float = 5.0) -> None:
        """Wait until the sandbox reports ``status`` for ``sid`` (5: recording, files exist)."""
        deadline = time.monotonic() + timeout
        while self.sandbox.recording(sid)["status"] != status:
            assert time.monotonic() < deadline, f"the sandbox never reported status {status}"
            time.sleep(0.05)

    def logs(self) -> str:
        return "\n".join(w.log() for w in self.workers)


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    """Settings for ``queue_stack`` on top of its own; a test module may override this."""
    return {}


@pytest.fixture
def queue_stack(
    sandbox: SandboxHandle,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
    stack_overrides: dict[str, Any],
) -> Iterator[QueueStack]:
    profiles = tmp_path / "storage-profiles.json"
    profiles.write_text(
        json.dumps(
            {
                STORAGE_PROFILE: {
                    "vendor": 4,
                    "region": 0,
                    "bucket": "meetings",
                    "accessKey": "AKstorage",
                    "secretKey": SENTINEL_STORAGE_SECRET,
                }
            }
        ),
        encoding="utf-8",
    )
    options: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_prefix": key_prefix,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 1.0,
        "visibility_timeout": 15,
        "retry_backoff_base": 0.05,
        "retry_backoff_max": 0.3,
        "storage_profiles": str(profiles),
    }
    settings = sandbox.settings(**{**options, **stack_overrides})
    stack = QueueStack(
        sandbox=sandbox,
        settings=settings,
        env=settings_env(settings),
        recorder=Recorder(settings),
        tmp_path=tmp_path,
    )
    yield stack
    for worker in stack.workers:
        worker.stop()
