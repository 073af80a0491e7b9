"""``krtc-rec flower``: a login is required, and its pages and API show tasks but no secret."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.stack.local import ChildProcess
from orchestrator.state import Phase
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET
from tests.integration.ops_processes import child_env, free_port, spawn, wait_until
from tests.integration.worker_fixture import QueueStack, start_body

LOGIN = ("ops", "flower-login-pw")
SECRETS = (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET)


@pytest.fixture
def flower(queue_stack: QueueStack, tmp_path: Path) -> Iterator[tuple[ChildProcess, str]]:
    """``krtc-rec flower`` on the queue stack's prefix, with a login; yields (process, base URL)."""
    port = free_port()
    env = child_env({**queue_stack.env, "FLOWER_BASIC_AUTH": ":".join(LOGIN)})
    child = spawn(
        "flower", ["flower", "--port", str(port), "--address", "127.0.0.1"], env, tmp_path
    )
    try:
        child.wait_for("Visit me at", 30)
        yield child, f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def test_flower_without_a_login_refuses_to_start_and_says_why(queue_stack: QueueStack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "flower", "--port", str(free_port())],
        env=child_env(queue_stack.env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH=user:password" in result.stderr
    assert "--insecure-no-auth" in result.stderr


def test_flower_refuses_a_login_without_a_password(queue_stack: QueueStack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "flower", "--port", str(free_port())],
        env=child_env({**queue_stack.env, "FLOWER_BASIC_AUTH": "admin:"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "FLOWER_BASIC_AUTH" in result.stderr


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    # Starts as Celery tasks, so that Flower sees them: starts in the start lane (the default)
    # are not Celery tasks; their depth is in krtc_queue_length and `krtc-rec status`.
    return {"start_lane": False}


def test_flower_needs_the_login_and_shows_the_tasks_that_ran_without_a_secret(
    queue_stack: QueueStack, flower: tuple[ChildProcess, str]
) -> None:
    process, base = flower
    # Given anonymous visitors and a wrong password: every page and the API are refused
    for method, path in [
        ("GET", "/"),
        ("GET", "/tasks"),
        ("GET", "/api/tasks"),
        ("GET", "/api/workers"),
        ("POST", "/api/task/async-apply/krtc.start"),
        ("POST", "/api/task/revoke/0"),
    ]:
        for auth in (None, (LOGIN[0], "wrong")):
            response = requests.request(method, base + path, auth=auth, timeout=10)
            assert response.status_code in (401, 403), (method, path, auth, response.status_code)

    # When a worker runs a start and a stop
    queue_stack.start_worker()

    def tasks() -> dict[str, Any]:
        response = requests.get(f"{base}/api/tasks", auth=LOGIN, timeout=10)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def both_succeeded(session_id: str) -> bool:
        states = {(t["name"], t["state"]) for t in tasks().values() if session_id in str(t["args"])}
        return {("krtc.start", "SUCCESS"), ("krtc.stop", "SUCCESS")} <= states

    # (Flower follows task events, which are not kept: on a loaded machine its event receiver
    # may connect after the first tasks ran, so a later round is accepted.)
    session_ids: list[str] = []
    for attempt in range(3):
        session = queue_stack.recorder.start(start_body(f"flower-{attempt}"))
        session_ids.append(session.id)
        queue_stack.wait(session.id, Phase.RECORDING)
        queue_stack.recorder.stop(session.id)
        queue_stack.wait(session.id, Phase.STOPPED)
        try:
            wait_until(partial(both_succeeded, session.id), 10, "Flower to see the tasks")
            break
        except AssertionError:
            if attempt == 2:
                raise

    # Then, logged in, the task API lists krtc.start and krtc.stop with the session id as args
    listed = tasks()
    for task in listed.values():
        if task["name"] in ("krtc.start", "krtc.stop"):
            assert any(i in task["args"] for i in session_ids), task["args"]
    task_id = next(
        i for i, t in listed.items() if t["name"] == "krtc.start" and session.id in t["args"]
    )
    pages = [
        "/",
        "/tasks",
        "/workers",
        "/api/tasks",
        "/api/workers",
        f"/api/task/info/{task_id}",
        f"/task/{task_id}",
        "/tasks/datatable?draw=1&start=0&length=100&search[value]=&order[0][column]=0"
        "&order[0][dir]=asc&columns[0][data]=name",
        "/metrics",
    ]
    for path in pages:
        response = requests.get(base + path, auth=LOGIN, timeout=15)
        assert response.status_code == 200, (path, response.status_code)
        for secret in SECRETS:
            assert secret not in response.text, path
    assert session.id in requests.get(f"{base}/task/{task_id}", auth=LOGIN, timeout=10).text
    for secret in (*SECRETS, LOGIN[1]):
        assert secret not in process.log()
