"""``krtc-rec api`` as a user runs it: a subprocess against a real HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET, TEST_ACCESS_KEY
from tests.integration.scripted_server import Reply, ScriptedServer, scripted_server
from tests.integration.test_client_http import QUERY, START


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as s:
        yield s


def run_cli(
    server: ScriptedServer | None,
    *args: str,
    body: object = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    full_env.update(
        {
            "KRTC_ACCESS_KEY": TEST_ACCESS_KEY,
            "KRTC_SECRET_KEY": SENTINEL_SECRET,
            "KRTC_READ_TIMEOUT_S": "0.5",
        }
    )
    if server is not None:
        full_env["KRTC_ENDPOINT"] = server.url
    full_env.update(env or {})
    stdin = body if isinstance(body, str) else json.dumps(body) if body is not None else ""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "api", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def assert_no_secret(result: subprocess.CompletedProcess[str]) -> None:
    for secret in (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET):
        assert secret not in result.stdout
        assert secret not in result.stderr


def test_success_prints_response_json(server) -> None:
    server.script(Reply(body='{"sid": "c4pl5e1kereqmo8pac40", "x": 1}'))
    result = run_cli(server, "start", body=START)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"sid": "c4pl5e1kereqmo8pac40", "x": 1}
    assert_no_secret(result)


def test_reads_the_request_from_a_file(server, tmp_path) -> None:
    server.script(Reply(body='{"sid": "s"}'))
    path = tmp_path / "query.json"
    path.write_text(json.dumps(QUERY))
    result = run_cli(server, "query", "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(server.received[0].body) == QUERY


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, 3, "invalid_request"),
        (401, 3, "auth"),
        (403, 3, "auth"),
        (404, 4, "not_found"),
        (409, 5, "conflict"),
        (500, 6, "server_error"),
    ],
)
def test_api_errors_exit_with_documented_codes(server, status, code, kind) -> None:
    server.script(Reply(status=status, body=f'{{"code": {status}, "reason": "why {status}"}}'))
    result = run_cli(server, "start", body=START)
    assert result.returncode == code
    assert json.loads(result.stderr[result.stderr.index("{") :]) == {
        "error": {"kind": kind, "status": status, "code": status, "reason": f"why {status}"}
    }
    assert result.stdout == ""
    assert_no_secret(result)


def test_transient_failures_are_retried_a_few_times(server) -> None:
    server.script(
        Reply(status=500, body="{}"), Reply(status=500, body="{}"), Reply(body='{"sid": "s"}')
    )
    result = run_cli(server, "query", body=QUERY)
    assert result.returncode == 0, result.stderr
    assert len(server.received) == 3
    assert result.stderr.count("retrying") == 2


def test_conflict_after_lost_answer_explains_itself(server) -> None:
    # Given the first start times out after the server applied it, the retry meets a 409.
    server.script(
        Reply(delay_s=1.0), Reply(status=409, body='{"code":409,"reason":"duplicate start"}')
    )
    result = run_cli(server, "start", body=START)
    assert result.returncode == 5
    assert "may have started this recording" in result.stderr


def test_invalid_input_exits_2_and_sends_nothing(server) -> None:
    server.script(Reply())
    bad = json.loads(json.dumps(START))
    bad["clientRequest"]["storageConfig"]["secretKey"] = 12345
    bad["clientRequest"]["recordingConfig"]["maxIdleTime"] = 0
    result = run_cli(server, "start", body=bad)
    assert result.returncode == 2
    assert "clientRequest.recordingConfig.maxIdleTime" in result.stderr
    assert "clientRequest.storageConfig.secretKey" in result.stderr
    assert server.received == []


def test_invalid_json_does_not_echo_secrets(server) -> None:
    server.script(Reply())
    result = run_cli(server, "start", body='{"secretKey": "' + SENTINEL_STORAGE_SECRET + '",')
    assert result.returncode == 2
    assert "not valid JSON" in result.stderr
    assert_no_secret(result)
    assert server.received == []


def test_missing_key_names_the_variable() -> None:
    result = run_cli(None, "query", body=QUERY, env={"KRTC_SECRET_KEY": ""})
    assert result.returncode == 2
    assert "KRTC_SECRET_KEY" in result.stderr


def test_dry_run_sends_nothing_and_redacts(server) -> None:
    server.script(Reply())
    result = run_cli(server, "start", "--dry-run", body=START)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["headers"]["x-action"] == "CloudRecordingStart"
    assert shown["headers"]["Authorization"].endswith("Signature=<redacted>")
    assert shown["body"]["clientRequest"]["storageConfig"]["secretKey"] == "**********"
    assert server.received == []
    assert_no_secret(result)
