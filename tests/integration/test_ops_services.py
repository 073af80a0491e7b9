"""The monitoring profile's Alertmanager and Redis' health check, run as local processes.

No container engine here: each service runs as the compose file would start it, its program
found on this machine (Debian's ``prometheus-alertmanager`` and ``redis-server``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from orchestrator.stack.redis_server import free_port
from tests.integration.ops_processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = ROOT / "ops" / "alertmanager"

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Webhook", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts?token=a&b=c", received
    server.shutdown()
    server.server_close()


def test_alertmanager_posts_a_critical_alert_to_the_alert_webhook(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.skip(
            "Alertmanager is not installed (Debian: apt-get install prometheus-alertmanager)"
        )
    url, received = webhook
    port = free_port()
    # Given Alertmanager started through the compose service's entrypoint
    with (tmp_path / "alertmanager.log").open("wb") as log:
        process = _start_alertmanager(binary, url, port, tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/-/ready"), 30, "Alertmanager to be ready")
        rules = yaml.safe_load((ROOT / "ops" / "prometheus" / "alerts.yml").read_text())
        rule = next(
            r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "KrtcMetricsDown"
        )
        # When Prometheus fires KrtcMetricsDown (sent as Prometheus sends it)
        now = datetime.now(UTC)
        alert = {
            "labels": {"alertname": "KrtcMetricsDown", **rule["labels"]},
            "annotations": {"summary": "krtc-rec metrics is down"},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
        response = requests.post(f"{base}/api/v2/alerts", json=[alert], timeout=5)
        assert response.status_code == 200, response.text
        # Then the webhook gets it, after the critical route's group wait (10 s)
        wait_until(lambda: bool(received), 60, "the webhook to be notified")
    finally:
        process.terminate()
        process.wait(10)
    (payload,) = received[:1]
    assert payload["receiver"] == "krtc-webhook" and payload["status"] == "firing"
    assert payload["alerts"][0]["labels"]["alertname"] == "KrtcMetricsDown"


def _start_alertmanager(
    binary: str, url: str, port: int, tmp_path: Path, log: Any
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "sh",
            str(ALERTMANAGER / "entrypoint.sh"),
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "KRTC_ALERT_WEBHOOK_URL": url,
            "ALERTMANAGER_TEMPLATE": str(ALERTMANAGER / "alertmanager.yml"),
            "ALERTMANAGER_CONFIG": str(tmp_path / "am.yml"),
            "ALERTMANAGER_BIN": binary,
        },
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_the_redis_health_check_logs_in_with_the_stack_password(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("needs redis-server and redis-cli")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (kind, command) = compose["services"]["redis"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    port = free_port()
    # The container's redis-cli talks to its own Redis on the default port; here, another one.
    command = command.replace("redis-cli", f"redis-cli -p {port}")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--requirepass", "s3cret"],
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        wait_until(lambda: _check(command, {"REDISCLI_AUTH": "s3cret"}) == 0, 20, "Redis to answer")
        assert _check(command, {}) != 0, "without the password the check must fail"
        assert _check(command, {"REDISCLI_AUTH": "wrong"}) != 0
    finally:
        server.terminate()
        server.wait(10)


def _check(command: str, env: dict[str, str]) -> int:
    return subprocess.run(
        ["sh", "-c", command],
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **env},
        capture_output=True,
        timeout=10,
        check=False,
    ).returncode
