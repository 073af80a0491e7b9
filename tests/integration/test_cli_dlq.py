"""``krtc-rec dlq list|show|replay|purge`` as a user runs them, with dead letters made by a real
worker refused by the sandbox."""

from __future__ import annotations

import json
import time
from typing import Any

from orchestrator.state import DeadLetter
from tests.integration.test_cli_sessions import assert_no_secret, ok, run_cli
from tests.integration.worker_fixture import QueueStack, start_body


def letters(stack: QueueStack, *, at_least: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
    """``dlq list --json``, polled until it holds ``at_least`` letters."""
    deadline = time.monotonic() + timeout
    while True:
        found: list[dict[str, Any]] = json.loads(ok(run_cli(stack, "dlq", "list", "--json")))
        if len(found) >= at_least or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def worker_log_when(stack: QueueStack, text: str, timeout: float = 10.0) -> str:
    """The workers' log once it contains ``text`` (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while text not in (log := stack.logs()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return log


def start_calls(stack: QueueStack) -> int:
    return sum(stack.sandbox.stats()["byAction"].get("CloudRecordingStart", {}).values())


def test_a_refused_start_is_listed_shown_and_replayed_to_no_effect(queue_stack: QueueStack) -> None:
    # Given a start refused for good (400): the session fails and its job is a dead letter.
    queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 400}])
    queue_stack.start_worker()
    started = run_cli(queue_stack, "start", "--file", "-", "--wait", stdin=start_body("dlq-1"))
    assert started.returncode == 8
    session_id = started.stdout.strip()
    [letter] = letters(queue_stack, at_least=1)
    assert (letter["action"], letter["task"], letter["session_id"]) == (
        "start",
        "krtc.start",
        session_id,
    )
    assert letter["error"]["status"] == 400 and letter["args"] == [session_id]

    table = run_cli(queue_stack, "dlq", "list")
    rows = ok(table).splitlines()
    assert rows[0].split()[:3] == ["ID", "FAILED", "ACTION"]
    assert rows[1].startswith(letter["id"]) and " start " in rows[1] and session_id in rows[1]
    shown = run_cli(queue_stack, "dlq", "show", letter["id"])
    assert json.loads(ok(shown)) == letter

    # When it is replayed once the API accepts starts again...
    queue_stack.sandbox.clear_faults()
    replayed = run_cli(queue_stack, "dlq", "replay", letter["id"])
    task_id = ok(replayed).strip()
    assert f"replayed krtc.start for session {session_id} as task {task_id}" in replayed.stderr
    # ...then the start is delivered again but does nothing: the session has failed for good,
    # and a new recording is a new start (a new session).
    done = f"krtc.start[{task_id}] succeeded"
    [line] = {x for x in worker_log_when(queue_stack, done).splitlines() if done in x}
    assert line.endswith(": 'nothing to do: session is failed'")
    assert start_calls(queue_stack) == 1
    assert queue_stack.recorder.get(session_id).phase == "failed"
    assert json.loads(ok(run_cli(queue_stack, "dlq", "show", letter["id"])))["replays"] == [task_id]
    assert_no_secret(started, table, shown, replayed)


def test_a_refused_stop_replayed_after_the_fault_stops_the_recording(
    queue_stack: QueueStack,
) -> None:
    queue_stack.start_worker()
    session_id = ok(
        run_cli(queue_stack, "start", "--file", "-", "--wait", stdin=start_body("dlq-stop"))
    ).strip()
    sid = str(queue_stack.recorder.get(session_id).sid)

    # Given a stop refused for good: the session stays stopping and the job is a dead letter.
    queue_stack.sandbox.set_faults(fail_next=[{"action": "stop", "status": 400}])
    refused = run_cli(queue_stack, "stop", session_id, "--wait", "--timeout", "2")
    assert refused.returncode == 7
    assert "still stopping" in refused.stderr
    [letter] = letters(queue_stack, at_least=1)
    assert (letter["action"], letter["session_id"]) == ("stop", session_id)
    assert queue_stack.sandbox.recording(sid)["active"] is True

    # When the fault is gone and the letter replayed, the recording stops.
    queue_stack.sandbox.clear_faults()
    task_id = ok(run_cli(queue_stack, "dlq", "replay", letter["id"])).strip()
    stopped = queue_stack.wait(session_id, "stopped")
    assert stopped.files
    assert queue_stack.sandbox.recording(sid)["active"] is False
    assert letters(queue_stack)[0]["replays"] == [task_id]


def test_purge_by_id_age_or_all(queue_stack: QueueStack) -> None:
    store = queue_stack.recorder.dead_letters
    now = time.time()
    for letter_id, age_s in (("old-1", 7200), ("old-2", 3700), ("new-1", 60), ("new-2", 10)):
        store.add(
            DeadLetter(
                id=letter_id,
                task="krtc.stop",
                action="stop",
                session_id=f"s-{letter_id}",
                failed_at=now - age_s,
            )
        )

    assert run_cli(queue_stack, "dlq", "purge").returncode == 2
    assert run_cli(queue_stack, "dlq", "purge", "--all", "new-1").returncode == 2

    by_id = run_cli(queue_stack, "dlq", "purge", "old-1", "gone")
    assert by_id.returncode == 4
    assert by_id.stdout.strip() == "purged 1 dead letter"
    assert "no dead letter 'gone'" in by_id.stderr

    assert ok(run_cli(queue_stack, "dlq", "purge", "--older-than", "3600")).strip() == (
        "purged 1 dead letter"
    )
    assert [x["id"] for x in letters(queue_stack)] == ["new-2", "new-1"]
    declined = run_cli(queue_stack, "dlq", "purge", "--all", stdin="n\n")
    assert declined.returncode == 1 and "delete all 2 dead letters?" in declined.stderr
    assert len(letters(queue_stack)) == 2, "a declined --all deletes nothing"
    purged = run_cli(queue_stack, "dlq", "purge", "--all", "--yes", "--json")
    assert json.loads(ok(purged)) == {"purged": 2, "missing": []}
    assert letters(queue_stack) == []
    assert "no dead letters" in run_cli(queue_stack, "dlq", "list").stderr


def test_unknown_letters_exit_4(queue_stack: QueueStack) -> None:
    for command in ("show", "replay"):
        result = run_cli(queue_stack, "dlq", command, "nope")
        assert result.returncode == 4
        assert "no dead letter 'nope'" in result.stderr


def test_an_unreachable_redis_exits_6(queue_stack: QueueStack) -> None:
    for command in (["list"], ["show", "x"], ["replay", "x"], ["purge", "--all", "--yes"]):
        result = run_cli(queue_stack, "dlq", *command, REDIS_URL="redis://:pw-x9@127.0.0.1:1/0")
        assert result.returncode == 6
        assert "cannot reach Redis" in result.stderr and "REDIS_URL" in result.stderr
        assert "pw-x9" not in result.stderr
