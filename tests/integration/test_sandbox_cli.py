"""``krtc-rec sandbox``: what it prints, the flags it applies, and a clean exit on signals."""

from __future__ import annotations

import signal

import pytest
import requests
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.cli.sandbox import parse_apply_then_fail, parse_fail_next, parse_rate_for
from tests.conftest import SENTINEL_SECRET, TEST_ACCESS_KEY
from tests.integration.sandbox_fixture import botocore_post, sandbox_process

pytestmark = pytest.mark.integration

QUERY = {"appId": "app1", "cname": "room", "sid": "c4pl5e1kereqmo8pac40", "mode": "mix"}


def test_prints_where_it_listens_and_the_access_key_never_the_secret() -> None:
    env = {"KRTC_ACCESS_KEY": TEST_ACCESS_KEY, "KRTC_SECRET_KEY": SENTINEL_SECRET}
    with sandbox_process(env=env) as proc:
        # A refused and an accepted request, so that the log has lines of both kinds
        wrong = botocore_post(
            proc.url, "CloudRecordingQuery", QUERY, access_key=TEST_ACCESS_KEY, secret_key="x"
        )
        right = botocore_post(
            proc.url,
            "CloudRecordingQuery",
            QUERY,
            access_key=TEST_ACCESS_KEY,
            secret_key=SENTINEL_SECRET,
        )
        code, out, err = proc.stop(signal.SIGINT)

    assert (wrong.status_code, right.status_code) == (403, 404)
    assert code == 0
    assert f"listening on {proc.base_url}/cloud" in out
    assert f"access key:   {TEST_ACCESS_KEY}" in out
    assert "secret key:   sE********" in out
    assert "sandbox stopped" in out
    assert "CloudRecordingQuery -> 404 not_found" in err
    for text in (out, err, wrong.text, right.text):
        assert SENTINEL_SECRET not in text


def test_flags_set_behaviour_and_faults_and_sigterm_stops_it() -> None:
    args = [
        "--latency-ms=5",
        "--jitter-ms=1",
        "--error-rate=0.1",
        "--error-rate-for=query=0.5",
        "--fail-next=start=503x2",
        "--apply-then-fail=stop=hang",
        "--abnormal-exit-rate=0.25",
        "--stuck",
        "--start-duration=0.3",
        "--retention=7",
        "--allow-app-id=app1",
        "--channel-users=a,b",
        "--seed=42",
        "--log-level=warning",
    ]
    with sandbox_process(*args) as proc:
        info = requests.get(f"{proc.control_url}/", timeout=5).json()
        code, out, err = proc.stop(signal.SIGTERM)

    faults, behaviour = info["faults"], info["behaviour"]
    assert code == 0
    assert "access key:   AKSANDBOX (the default sandbox pair)" in out
    assert info["seed"] == 42
    assert (faults["latency_ms"], faults["jitter_ms"], faults["error_rate"]) == (5, 1, 0.1)
    assert faults["error_rates"] == {"query": 0.5}
    assert faults["fail_next"][0] | {"reason": None} == {
        "action": "start",
        "status": 503,
        "count": 2,
        "reason": None,
        "retry_after_s": None,
    }
    assert faults["apply_then_fail"] == [{"action": "stop", "how": "hang", "count": 1}]
    assert faults["abnormal_exit_rate"] == 0.25 and faults["stuck_new"] is True
    assert behaviour["start_duration_s"] == 0.3 and behaviour["retention_s"] == 7
    assert behaviour["allow_app_ids"] == ["app1"]
    assert behaviour["default_channel_users"] == ["a", "b"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-next", "start"], "expected ACTION=STATUS"),
        (["--fail-next", "start=abc"], "HTTP status"),
        (["--fail-next", "pause=500"], "unknown action"),
        (["--error-rate", "2"], "error_rate"),
        (["--apply-then-fail", "start=explode"], "apply_then_fail"),
        (["--error-rate-for", "query=lots"], "number"),
        (["--start-duration", "-1"], "start_duration_s"),
        (["--access-key", "AK"], "--secret-key"),
    ],
)
def test_bad_flags_are_usage_errors(args: list[str], message: str) -> None:
    no_keys = {"KRTC_ACCESS_KEY": "", "KRTC_SECRET_KEY": ""}
    result = CliRunner().invoke(main, ["sandbox", "--port", "0", *args], env=no_keys)

    assert result.exit_code == 2, result.output
    assert message in result.output


def test_busy_port_is_a_clear_error() -> None:
    with sandbox_process() as proc:
        port = proc.base_url.rsplit(":", 1)[1]
        result = CliRunner().invoke(main, ["sandbox", "--port", port])
        proc.stop()

    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_flag_parsers() -> None:
    assert parse_fail_next("query=429x3") == {"action": "query", "status": 429, "count": 3}
    assert parse_apply_then_fail("start=close") == {"action": "start", "how": "close", "count": 1}
    assert parse_rate_for("update-layout=0.25") == ("update-layout", 0.25)
