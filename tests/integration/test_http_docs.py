"""The API's page at /docs in a real browser (headless Chromium): Swagger UI is served by the
process itself (no CDN: this may run without internet access) and lists every endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.integration.test_http_api import Server, server  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("chromium") is None and not os.environ.get("CI"),
        reason="chromium is not installed (scripts/ensure-tools installs it; CI requires it)",
    ),
]


def _rendered(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (Chromium's virtual time: no fixed sleep)."""
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",  # tests run as root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_docs_page_renders_every_endpoint_without_a_cdn(
    server: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The page names only local files, served without a token.
    page = requests.get(server.url + "/docs", timeout=10)
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        answer = requests.get(f"{server.url}/docs/assets/{asset}", timeout=10)
        assert answer.status_code == 200 and len(answer.content) > 10_000
    # In the browser, Swagger UI has rendered the schema: every operation is listed.
    dom = _rendered(server.url + "/docs", tmp_path / "chromium-profile")
    assert 'class="swagger-ui' in dom and "KRTC recording orchestrator" in dom
    for path in (
        "/v1/recordings",
        "/v1/recordings/{session_id}/stop",
        "/v1/schedules",
        "/v1/schedules/{schedule_id}",
        "/readyz",
    ):
        assert f'data-path="{path}"' in dom, path
    for summary in ("Start a recording", "Add a schedule", "Cancel a schedule or an occurrence"):
        assert summary in dom, summary
