"""The examples in examples/ run against the real Redis, a real worker and the sandbox: the
FastAPI app (AsyncRecorder), the Django views (AsyncRecorder and Recorder) under uvicorn, and the
Node client of the HTTP API."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from orchestrator.settings import settings_env
from orchestrator.stack.redis_server import free_port
from orchestrator.state import Phase
from tests.integration.test_http_api import TOKEN, Server, server  # noqa: F401 (fixture)
from tests.integration.worker_fixture import QueueStack

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@contextmanager
def _uvicorn(stack: QueueStack, app: str, log_path: Path) -> Iterator[str]:
    """Serve ``examples/<app>`` with uvicorn; yields its URL."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), app, "--port", str(port)],
            env={**os.environ, **settings_env(stack.settings)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            requests.get(url + "/", timeout=1)
            break
        except requests.RequestException:
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    try:
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


def test_the_fastapi_example_records_a_lesson(queue_stack: QueueStack, tmp_path: Path) -> None:
    queue_stack.start_worker()
    with _uvicorn(queue_stack, "fastapi_app:app", tmp_path / "fastapi.log") as url:
        started = requests.post(f"{url}/lessons/ex-fastapi/recording", timeout=10)
        assert started.status_code == 202, started.text
        again = requests.post(f"{url}/lessons/ex-fastapi/recording", timeout=10)
        session_id = started.json()["session"]
        assert again.json()["session"] == session_id
        queue_stack.wait(session_id, Phase.RECORDING)
        read = requests.get(f"{url}/lessons/ex-fastapi/recording/{session_id}", timeout=10)
        assert read.json()["phase"] == "recording"
        stopped = requests.delete(f"{url}/lessons/ex-fastapi/recording/{session_id}", timeout=10)
        assert stopped.status_code == 202
        queue_stack.wait(session_id, Phase.STOPPED)
        missing = requests.get(f"{url}/lessons/ex-fastapi/recording/nope", timeout=10)
        assert missing.status_code == 404


def test_the_django_example_records_a_lesson(queue_stack: QueueStack, tmp_path: Path) -> None:
    pytest.importorskip("django", reason="Django is a dev dependency (pip install -e '.[dev]')")
    queue_stack.start_worker()
    with _uvicorn(queue_stack, "django_app:application", tmp_path / "django.log") as url:
        started = requests.post(
            f"{url}/lessons/ex-django/recording", headers={"Idempotency-Key": "d-1"}, timeout=10
        )
        assert started.status_code == 202, started.text
        session_id = started.json()["session"]
        queue_stack.wait(session_id, Phase.RECORDING)
        read = requests.get(f"{url}/recordings/{session_id}", timeout=10)
        assert read.status_code == 200 and read.json()["phase"] == "recording"
        stopped = requests.post(f"{url}/recordings/{session_id}/stop", timeout=10)
        assert stopped.status_code == 202, stopped.text
        queue_stack.wait(session_id, Phase.STOPPED)
        assert requests.get(f"{url}/recordings/nope", timeout=10).status_code == 404


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_node_client_starts_and_stops_through_the_http_api(
    queue_stack: QueueStack,
    server: Server,  # noqa: F811
) -> None:
    queue_stack.start_worker()
    result = subprocess.run(
        ["node", str(EXAMPLES / "client.mjs"), "ex-node"],
        env={**os.environ, "KRTC_API_URL": server.url, "KRTC_API_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("started ") and "is recording (sid " in lines[1]
    session_id = lines[0].split()[1]
    assert lines[2] == f"stop requested for {session_id}"
    queue_stack.wait(session_id, Phase.STOPPED)
