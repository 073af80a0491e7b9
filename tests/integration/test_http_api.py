"""The HTTP API as a web app in another language uses it: ``krtc-rec serve`` in a subprocess,
a real worker, the sandbox and the real Redis; plain HTTP requests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from orchestrator.settings import Settings, settings_env
from orchestrator.stack.redis_server import free_port
from orchestrator.state import Phase
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.timeout(120)

TOKEN = "tok-7c1e9a-http-api-test"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def call(
        self, method: str, path: str, *, token: str | None = TOKEN, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _serve(settings: Settings, tmp_path: Path, *args: str, **env: str) -> Server:
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port), *args],
            env={**os.environ, **settings_env(settings), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        assert process.poll() is None, server.log()
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(10)


@pytest.fixture
def server(queue_stack: QueueStack, tmp_path: Path) -> Iterator[Server]:
    running = _serve(queue_stack.settings, tmp_path, KRTC_API_TOKENS=f"other-token,{TOKEN}")
    yield running
    _stop(running)


def test_a_web_app_starts_reads_and_stops_a_recording(
    queue_stack: QueueStack, server: Server
) -> None:
    queue_stack.start_worker()
    body = {**start_body("http-1"), "maxDurationS": 3600}
    # Start: 202 and the session; the same idempotency key again: 200, the same session
    first = server.call("POST", "/v1/recordings", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 202, first.text
    session = first.json()
    assert session["phase"] == "pending" and session["max_duration_s"] == 3600
    again = server.call("POST", "/v1/recordings", json=body, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200 and again.json()["id"] == session["id"]
    recording = queue_stack.wait(session["id"], Phase.RECORDING)
    # Read it: with its sid and history
    read = server.call("GET", f"/v1/recordings/{session['id']}")
    assert read.status_code == 200
    assert read.json()["sid"] == recording.sid and read.json()["history"]
    # Layout: 202
    layout = server.call(
        "POST", f"/v1/recordings/{session['id']}/layout", json={"mixedVideoLayout": 1}
    )
    assert layout.status_code == 202, layout.text
    # Stop: 202, then stopped; a layout now is 409
    stop = server.call("POST", f"/v1/recordings/{session['id']}/stop")
    assert stop.status_code == 202 and stop.json()["id"] == session["id"]
    queue_stack.wait(session["id"], Phase.STOPPED)
    late = server.call(
        "POST", f"/v1/recordings/{session['id']}/layout", json={"mixedVideoLayout": 1}
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "finished"
    assert queue_stack.sandbox.recordings(cname="http-1", active=True) == []


def test_bad_requests_get_one_error_body(server: Server) -> None:
    invalid = start_body("http-bad")
    invalid["clientRequest"]["recordingConfig"]["maxIdleTime"] = -1
    answer = server.call("POST", "/v1/recordings", json={**invalid, "maxDurationS": 0})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["path"] for f in error["fields"]] == ["maxDurationS"]
    answer = server.call("POST", "/v1/recordings", json=invalid)
    assert answer.status_code == 422
    paths = [f["path"] for f in answer.json()["error"]["fields"]]
    assert paths == ["clientRequest.recordingConfig.maxIdleTime"]
    malformed = server.call(
        "POST",
        "/v1/recordings",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "malformed_json"
    huge = server.call("POST", "/v1/recordings", data=b"x" * (64 * 1024 + 1))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
    missing = server.call("GET", "/v1/recordings/no-such-session")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    # Nothing invalid was stored.
    assert server.call("GET", "/v1/recordings").json()["recordings"] == []


def test_without_a_valid_token_every_call_is_401_and_no_token_is_logged(
    server: Server,
) -> None:
    for token in (None, "wrong-token", ""):
        answer = server.call("GET", "/v1/recordings", token=token)
        assert answer.status_code == 401, token
        assert answer.json()["error"]["code"] == "unauthorized"
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    refused = server.call("POST", "/v1/recordings", token=None, json=start_body("http-401"))
    assert refused.status_code == 401
    assert server.call("GET", "/v1/recordings").json()["recordings"] == [], "nothing stored"
    assert server.call("GET", "/healthz", token=None).status_code == 200
    assert "/v1/recordings" in server.call("GET", "/openapi.json", token=None).json()["paths"]
    listed = server.call("GET", "/v1/recordings?appId=x", headers={"X-Request-Id": "req-42"})
    assert listed.status_code == 200 and listed.headers["X-Request-Id"] == "req-42"
    log = server.log()
    assert "req-42 GET /v1/recordings 200" in log
    for secret in (TOKEN, "wrong-token", SENTINEL_SECRET, SENTINEL_STORAGE_SECRET):
        assert secret not in log


def test_list_pages_with_a_cursor_and_filters(queue_stack: QueueStack, server: Server) -> None:
    ids = [
        server.call("POST", "/v1/recordings", json=start_body(f"http-page-{n}")).json()["id"]
        for n in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        query = "/v1/recordings?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = server.call("GET", query).json()
        seen += [r["id"] for r in page["recordings"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ids[::-1], "newest first, each once"
    one = server.call("GET", "/v1/recordings?cname=http-page-3").json()["recordings"]
    assert [r["id"] for r in one] == [ids[3]]
    active = server.call("GET", "/v1/recordings?active=true&limit=500").json()["recordings"]
    assert {r["id"] for r in active} == set(ids)
    bad = server.call("GET", "/v1/recordings?cursor=%%%")
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"] == "cursor"
    assert server.call("GET", "/v1/recordings?limit=0").status_code == 422


def test_ready_only_with_a_worker(queue_stack: QueueStack, server: Server) -> None:
    not_ready = server.call("GET", "/readyz", token=None)
    assert not_ready.status_code == 503 and "no worker" in not_ready.json()["error"]["message"]
    queue_stack.start_worker()
    deadline = time.monotonic() + 20
    while server.call("GET", "/readyz", token=None).status_code != 200:
        assert time.monotonic() < deadline, "never ready with a worker running"
        time.sleep(0.2)
    assert server.call("GET", "/readyz").json()["workers"]


def test_redis_down_is_503_and_says_nothing_was_stored(
    queue_stack: QueueStack, tmp_path: Path
) -> None:
    dead = queue_stack.settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    server = _serve(dead, tmp_path, KRTC_API_TOKENS=TOKEN)
    try:
        answer = server.call("POST", "/v1/recordings", json=start_body("http-down"))
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        error = answer.json()["error"]
        assert error["code"] == "unavailable" and error["stored"] is False
        assert "nothing was stored" in error["message"]
        assert server.call("GET", "/readyz", token=None).status_code == 503
    finally:
        _stop(server)


def test_serve_refuses_to_start_without_tokens(queue_stack: QueueStack) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "serve", "--port", "0"],
        env={**os.environ, **settings_env(queue_stack.settings)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "KRTC_API_TOKENS" in result.stderr and "--insecure-no-auth" in result.stderr
