"""``krtc-rec start|stop|update|layout|show|list`` as a user runs them: subprocesses against the
real Redis, the sandbox and a real worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from orchestrator.settings import settings_env
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET
from tests.integration.worker_fixture import QueueStack, start_body

__all__ = ["run_cli", "assert_no_secret"]


def run_cli(
    stack: QueueStack | None, *args: str, stdin: object = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``krtc-rec ARGS`` with the stack's settings (and ``env`` on top); ``stdin`` as JSON."""
    full_env = {**os.environ, **(settings_env(stack.settings) if stack else {}), **env}
    text = stdin if isinstance(stdin, str) else "" if stdin is None else json.dumps(stdin)
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        input=text,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def assert_no_secret(*results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        for secret in (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET):
            assert secret not in result.stdout
            assert secret not in result.stderr


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def queued_starts(stack: QueueStack) -> int:
    """Starts waiting in the start lane and the broker (read before any worker takes them)."""
    store = stack.recorder.store
    key = stack.recorder.celery.conf.broker_transport_options["global_keyprefix"] + "krtc"
    return int(store.redis.llen(store.keys.start_lane("ready"))) + int(store.redis.llen(key))


def listed(stack: QueueStack, *args: str) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = json.loads(ok(run_cli(stack, "list", "--json", *args)))
    return sessions


def test_start_show_stop_with_wait(queue_stack: QueueStack) -> None:
    # The worker has the sentinel API secret and the storage profile holding the sentinel
    # storage secret; the CLI gets the same environment.
    assert settings_env(queue_stack.settings)["KRTC_SECRET_KEY"] == SENTINEL_SECRET
    queue_stack.start_worker()

    started = run_cli(queue_stack, "start", "--file", "-", "--wait", stdin=start_body("cli-1"))
    session_id = ok(started).strip()
    assert queue_stack.recorder.get(session_id).phase == "recording"
    assert "already" not in started.stderr

    shown = run_cli(queue_stack, "show", session_id)
    text = ok(shown)
    assert re.search(rf"^session +{session_id}$", text, re.M)
    assert re.search(r"^phase +recording$", text, re.M)
    assert "history" in text and "pending -> starting" in text
    as_json = run_cli(queue_stack, "show", session_id, "--json")
    data = json.loads(ok(as_json))
    assert data["phase"] == "recording" and len(data["sid"]) == 20
    assert data["request"]["clientRequest"]["storageConfig"] == {"profile": "recordings"}
    assert [h["what"] for h in data["history"]][:1] == [
        "created (phase pending, desired recording)"
    ]

    stopped = run_cli(queue_stack, "stop", session_id, "--wait", "--json")
    final = json.loads(ok(stopped))
    assert final["phase"] == "stopped" and final["files"]
    assert queue_stack.sandbox.recording(data["sid"])["active"] is False
    again = run_cli(queue_stack, "stop", session_id)
    assert ok(again).strip() == session_id
    assert "already stopped: nothing to stop" in again.stderr

    listing = run_cli(queue_stack, "list")
    assert session_id in ok(listing) and "stopped" in listing.stdout
    assert_no_secret(started, shown, as_json, stopped, again, listing)


def test_invalid_start_prints_field_errors_and_stores_nothing(queue_stack: QueueStack) -> None:
    bad = start_body(
        "cli-bad",
        recordingConfig={"maxIdleTime": 0},
        recordingFileConfig={"avFileType": ["avi"]},
    )
    result = run_cli(queue_stack, "start", "--file", "-", stdin=bad)
    assert result.returncode == 2
    assert "2 errors" in result.stderr
    assert "clientRequest.recordingConfig.maxIdleTime" in result.stderr
    assert "clientRequest.recordingFileConfig.avFileType" in result.stderr
    assert result.stdout == ""
    assert listed(queue_stack) == []
    assert queued_starts(queue_stack) == 0

    # A storage profile must come alone (an inline secret next to it would be stored).
    bad = start_body("cli-bad")
    bad["clientRequest"]["storageConfig"] = {"profile": "recordings", "secretKey": "x"}
    result = run_cli(queue_stack, "start", "--file", "-", stdin=bad)
    assert result.returncode == 2
    assert "clientRequest.storageConfig: a storage profile is given alone" in result.stderr
    assert listed(queue_stack) == []


def test_inline_storage_secret_is_refused_without_echoing_it(queue_stack: QueueStack) -> None:
    bad = start_body("cli-inline")
    bad["clientRequest"]["storageConfig"] = {
        "vendor": 4,
        "region": 0,
        "bucket": "b",
        "accessKey": "AK",
        "secretKey": SENTINEL_STORAGE_SECRET,
    }
    result = run_cli(queue_stack, "start", "--file", "-", stdin=bad)
    assert result.returncode == 2
    assert "name a storage profile" in result.stderr
    assert_no_secret(result)
    assert listed(queue_stack) == []


def test_json_lines_are_all_validated_before_any_is_queued(
    queue_stack: QueueStack, tmp_path
) -> None:
    path = tmp_path / "starts.jsonl"
    good, bad = start_body("cli-jl-1"), start_body("cli-jl-2", uid="")
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    result = run_cli(queue_stack, "start", "--file", str(path))
    assert result.returncode == 2
    assert "line 2: uid" in result.stderr
    assert listed(queue_stack) == []

    # When every line is valid, one session is printed per line.
    path.write_text(json.dumps(good) + "\n" + json.dumps(start_body("cli-jl-2")) + "\n")
    lines = ok(run_cli(queue_stack, "start", "--file", str(path), "--json")).splitlines()
    assert [json.loads(line)["cname"] for line in lines] == ["cli-jl-1", "cli-jl-2"]


def test_a_second_start_says_it_was_not_queued_again(queue_stack: QueueStack) -> None:
    first = run_cli(queue_stack, "start", "--file", "-", stdin=start_body("cli-dup"))
    session_id = ok(first).strip()
    assert first.stderr == ""
    second = run_cli(queue_stack, "start", "--file", "-", stdin=start_body("cli-dup"))
    assert ok(second).strip() == session_id
    assert f"already recording: session {session_id} (not queued again" in second.stderr
    assert len(listed(queue_stack)) == 1
    assert queued_starts(queue_stack) == 1

    # The same idempotency key gives the same session back, even once it has finished.
    keyed = ["start", "--file", "-", "--idempotency-key", "req-7"]
    made = ok(run_cli(queue_stack, *keyed, stdin=start_body("cli-key"))).strip()
    ok(run_cli(queue_stack, "stop", made))
    replayed = run_cli(queue_stack, *keyed, stdin=start_body("cli-key"))
    assert ok(replayed).strip() == made
    assert "already started with idempotency key 'req-7'" in replayed.stderr
    reused = run_cli(queue_stack, *keyed, stdin=start_body("cli-other"))
    assert reused.returncode == 5
    assert "req-7" in reused.stderr


def test_list_filters_by_activity_phase_and_limit(queue_stack: QueueStack) -> None:
    # Given one pending session and one cancelled (stopped) before any worker ran.
    pending = ok(run_cli(queue_stack, "start", "--file", "-", stdin=start_body("cli-a"))).strip()
    cancelled = ok(run_cli(queue_stack, "start", "--file", "-", stdin=start_body("cli-b"))).strip()
    assert ok(run_cli(queue_stack, "stop", cancelled)).strip() == cancelled

    assert [s["id"] for s in listed(queue_stack)] == [cancelled, pending]
    assert [s["id"] for s in listed(queue_stack, "--active")] == [pending]
    assert [s["id"] for s in listed(queue_stack, "--phase", "stopped")] == [cancelled]
    assert [s["id"] for s in listed(queue_stack, "--phase", "pending")] == [pending]
    both = ["--phase", "pending", "--phase", "stopped"]
    assert [s["id"] for s in listed(queue_stack, *both)] == [cancelled, pending]
    assert listed(queue_stack, "--phase", "recording") == []
    assert [s["id"] for s in listed(queue_stack, "--limit", "1")] == [cancelled]
    table = ok(run_cli(queue_stack, "list", "--active")).splitlines()
    assert table[0].split()[:2] == ["ID", "PHASE"]
    assert table[1].split()[:2] == [pending, "pending"]
    assert len(table) == 2
    # Filters by identity combine with each other and with the phase.
    assert [s["id"] for s in listed(queue_stack, "--cname", "cli-a")] == [pending]
    assert [s["id"] for s in listed(queue_stack, "--app-id", "app-test", "--uid", "1001")] == [
        cancelled,
        pending,
    ]
    assert listed(queue_stack, "--app-id", "other-app") == []
    assert listed(queue_stack, "--cname", "cli-a", "--phase", "stopped") == []


def test_list_finds_a_session_by_its_sid(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("cli-sid"))
    recording = queue_stack.wait(session.id, "recording")
    found = listed(queue_stack, "--sid", str(recording.sid))
    assert [s["id"] for s in found] == [session.id]
    assert listed(queue_stack, "--sid", "no-such-sid") == []


def test_update_and_layout_queue_a_client_request(queue_stack: QueueStack) -> None:
    session_id = ok(run_cli(queue_stack, "start", "--file", "-", stdin=start_body("cli-up")))
    session_id = session_id.strip()
    subscribe = {"streamSubscribe": {"audioUidList": {"subscribeAudioUids": ["#allstream#"]}}}
    assert ok(
        run_cli(queue_stack, "update", session_id, "--file", "-", stdin=subscribe)
    ).strip() == (session_id)
    bad = run_cli(queue_stack, "layout", session_id, "--file", "-", stdin={"mixedVideoLayout": 9})
    assert bad.returncode == 2
    assert "clientRequest.mixedVideoLayout" in bad.stderr

    queue_stack.start_worker()
    recording = queue_stack.wait(session_id, "recording")
    laid = run_cli(queue_stack, "layout", session_id, "--file", "-", stdin={"mixedVideoLayout": 1})
    assert json.loads(ok(run_cli(queue_stack, "show", session_id, "--json")))["id"] == session_id
    assert ok(laid).strip() == session_id
    view: dict[str, Any] = {}
    for _ in range(100):
        view = queue_stack.sandbox.recording(str(recording.sid))
        if view.get("updates") and view.get("layout"):
            break
        time.sleep(0.1)
    assert view.get("updates") and view.get("layout")

    ok(run_cli(queue_stack, "stop", session_id, "--wait"))
    late = run_cli(queue_stack, "update", session_id, "--file", "-", stdin=subscribe)
    assert late.returncode == 5
    assert "cannot be updated" in late.stderr


def test_wait_exits_7_on_timeout_and_8_when_the_start_fails(queue_stack: QueueStack) -> None:
    # Without a worker nothing moves: --wait runs out of time, but the id is printed.
    slow = run_cli(
        queue_stack, "start", "--file", "-", "--wait", "--timeout", "0.3", stdin=start_body("w-1")
    )
    assert slow.returncode == 7
    slow_id = slow.stdout.strip()
    assert slow_id and f"session {slow_id} is still pending after 0.3s" in slow.stderr
    ok(run_cli(queue_stack, "stop", slow_id))  # cancelled: it will not take the 400 below

    queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 400}])
    queue_stack.start_worker()
    refused = run_cli(queue_stack, "start", "--file", "-", "--wait", stdin=start_body("w-2"))
    assert refused.returncode == 8
    assert "is failed, not recording: 400" in refused.stderr


def test_unknown_session_exits_4(queue_stack: QueueStack) -> None:
    for command in (["show", "nope"], ["stop", "nope"]):
        result = run_cli(queue_stack, *command)
        assert result.returncode == 4
        assert "'nope' not found" in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "not-a-url"}, "REDIS_URL: not a Redis URL"),
        ({"KRTC_VISIBILITY_TIMEOUT": "1"}, "KRTC_VISIBILITY_TIMEOUT"),
    ],
)
def test_bad_configuration_exits_2_with_a_clear_message(
    queue_stack: QueueStack, env: dict[str, str], message: str
) -> None:
    result = run_cli(queue_stack, "list", **env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2-pw" not in result.stderr


def test_every_command_exits_6_when_redis_is_unreachable(queue_stack: QueueStack) -> None:
    body = {"mixedVideoLayout": 1}
    for command, stdin in (
        (["start", "--file", "-"], start_body("nr")),
        (["stop", "x"], None),
        (["layout", "x", "--file", "-"], body),
        (["show", "x"], None),
    ):
        result = run_cli(
            queue_stack, *command, stdin=stdin, REDIS_URL="redis://:hunter2-pw@127.0.0.1:1/0"
        )
        assert result.returncode == 6, command
        assert "cannot reach Redis" in result.stderr and "REDIS_URL" in result.stderr
        assert "hunter2-pw" not in result.stderr and "Traceback" not in result.stderr


def test_with_json_errors_are_json_on_stderr(queue_stack: QueueStack) -> None:
    unreachable = run_cli(queue_stack, "show", "x", "--json", REDIS_URL="redis://127.0.0.1:1")
    error = json.loads(unreachable.stderr)["error"]
    assert unreachable.returncode == 6 and error["exit_code"] == 6
    assert error["kind"] == "StateUnavailableError" and "cannot reach Redis" in error["reason"]
    body = start_body("json-errors")
    body["clientRequest"]["recordingConfig"]["maxIdleTime"] = -1
    invalid = run_cli(queue_stack, "start", "--file", "-", "--json", stdin=body)
    error = json.loads(invalid.stderr)["error"]
    assert invalid.returncode == 2 and error["exit_code"] == 2
    assert [e["path"] for e in error["errors"]] == ["clientRequest.recordingConfig.maxIdleTime"]
    missing = run_cli(queue_stack, "show", "nope", "--json")
    assert missing.returncode == 4 and json.loads(missing.stderr)["error"]["exit_code"] == 4
