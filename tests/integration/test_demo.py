"""The demo (the quick start's first command) and the local stack it runs on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis

from orchestrator.stack import EmbeddedRedis, LocalStack, redis_answers
from orchestrator.stack.redis_server import free_port


def _processes_with_prefix(prefix: str) -> list[int]:
    """Processes whose environment names the demo's key prefix (its workers, if any are left)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"KRTC_REDIS_PREFIX={prefix}".encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def test_demo_runs_every_step_and_leaves_nothing_behind(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    env["REDIS_URL"] = redis_url
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "same: True" in out
    assert "started after 4 attempts" in out
    assert "update-layout applied" in out
    assert "start sent +" in out and "stop +" in out, "the scheduled meeting ran on time"
    assert "alerts for it: abnormal_exit\n" in out
    assert "UNEXPECTED" not in out
    assert "sandbox-secret" not in out and "demo-storage-secret" not in out
    prefix = out.split("keys under ", 1)[1].split(":", 1)[0]
    assert _processes_with_prefix(prefix) == [], "the demo left a process running"
    client = Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{prefix}:*")) == []
    finally:
        client.close()


def test_embedded_redis_starts_and_is_removed() -> None:
    server = EmbeddedRedis()
    try:
        url = server.start()
        assert redis_answers(url)
    finally:
        server.stop()
    assert not redis_answers(url, 0.2)


def test_stack_starts_its_own_redis_when_none_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    stack = LocalStack(tmp_path, probe_url=f"redis://127.0.0.1:{free_port()}/0")
    with stack:
        assert stack.redis_source.startswith("embedded redis-server")
        assert stack.settings is not None and redis_answers(stack.settings.redis_url)
        url = stack.settings.redis_url
    assert not redis_answers(url, 0.2)
