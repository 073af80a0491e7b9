"""``krtc-rec repair ID [--release]`` as a person runs it: a subprocess against the real Redis, the
sandbox and a real worker, on records broken by hand."""

from __future__ import annotations

import json

import pytest

from orchestrator.state import CorruptSessionError, Phase, Session
from tests.integration.test_cli_sessions import assert_no_secret, ok, run_cli
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.integration


def _recording(stack: QueueStack, cname: str) -> Session:
    session = stack.recorder.start(start_body(cname))
    return stack.wait(session.id, Phase.RECORDING)


def _hset(stack: QueueStack, session_id: str, field: str, value: str) -> None:
    store = stack.recorder.store
    store.redis.hset(store.keys.session(session_id), field, value)


def _raw(stack: QueueStack, session_id: str) -> dict[str, str]:
    store = stack.recorder.store
    return dict(store.redis.hgetall(store.keys.session(session_id)))


def _identity(stack: QueueStack, cname: str) -> str | None:
    store = stack.recorder.store
    value = store.redis.get(store.keys.identity("app-test", cname, "1001"))
    return None if value is None else str(value)


def _active(stack: QueueStack) -> list[str]:
    return stack.recorder.store.active_ids()


def test_a_corrupt_session_is_shown_released_and_its_channel_recorded_again(
    queue_stack: QueueStack,
) -> None:
    # Given a recording whose stored mode was overwritten: its channel cannot start again
    queue_stack.start_worker()
    session = _recording(queue_stack, "repair-me")
    _hset(queue_stack, session.id, "mode", "stereo")
    with pytest.raises(CorruptSessionError):
        queue_stack.recorder.start(start_body("repair-me"))

    # When a person looks at it
    shown = run_cli(queue_stack, "repair", session.id)
    as_json = json.loads(ok(run_cli(queue_stack, "repair", session.id, "--json")))

    # Then every stored field is shown, with what is wrong
    text = ok(shown)
    assert "corrupt: mode: Input should be 'individual' or 'mix'" in text
    assert "held by this session" in text
    assert "stereo" in text and str(session.sid) in text
    assert as_json["readable"] is False and as_json["active"] is True
    assert as_json["fields"]["mode"] == "stereo" and as_json["identity_holder"] == session.id
    assert len(as_json["history"]) >= 3
    assert_no_secret(shown)

    # When the release is not confirmed, nothing changes
    before = _raw(queue_stack, session.id)
    declined = run_cli(queue_stack, "repair", session.id, "--release", stdin="n\n")
    assert declined.returncode == 1
    assert _raw(queue_stack, session.id) == before
    assert _identity(queue_stack, "repair-me") == session.id

    # When it is released
    released = run_cli(queue_stack, "repair", session.id, "--release", "--yes")

    # Then it is failed, inactive, its identity freed, with a history entry saying why
    assert "marked failed (phase was recording)" in ok(released)
    raw = _raw(queue_stack, session.id)
    assert raw["phase"] == "failed" and raw["mode"] == "stereo", "only phase & co. are written"
    assert json.loads(raw["last_error"])["kind"] == "released"
    assert session.id not in _active(queue_stack)
    assert _identity(queue_stack, "repair-me") is None
    history = json.loads(ok(run_cli(queue_stack, "repair", session.id, "--json")))["history"]
    last = json.loads(history[-1])
    assert last["source"] == "operator" and last["what"].startswith("phase recording -> failed")
    assert "corrupt: mode" in last["why"]
    # And once the old recording has ended on the server (repair does not stop it), a new
    # start of the same channel is a new session, which records
    queue_stack.sandbox.set_status(str(session.sid), 8)
    again = queue_stack.recorder.start(start_body("repair-me"))
    assert again.id != session.id
    queue_stack.wait(again.id, Phase.RECORDING)


def test_a_record_of_a_newer_schema_is_released_without_touching_its_other_fields(
    queue_stack: QueueStack,
) -> None:
    session = queue_stack.recorder.start(start_body("repair-newer"))  # no worker: pending
    _hset(queue_stack, session.id, "schema", "99")
    _hset(queue_stack, session.id, "future_field", "kept")

    shown = ok(run_cli(queue_stack, "repair", session.id))
    assert "from a newer version: schema 99, this version reads up to 1" in shown

    ok(run_cli(queue_stack, "repair", session.id, "--release", "--yes"))
    raw = _raw(queue_stack, session.id)
    assert (raw["schema"], raw["future_field"], raw["phase"]) == ("99", "kept", "failed")
    assert _identity(queue_stack, "repair-newer") is None
    assert session.id not in _active(queue_stack)


def test_a_healthy_unfinished_session_is_released_only_with_force(
    queue_stack: QueueStack,
) -> None:
    session = queue_stack.recorder.start(start_body("repair-healthy"))

    refused = run_cli(queue_stack, "repair", session.id, "--release", "--yes")

    assert refused.returncode == 5, refused.stderr
    assert "readable and pending" in refused.stderr and "--force" in refused.stderr
    assert "readable (pending)" in refused.stdout
    assert queue_stack.recorder.get(session.id).phase == Phase.PENDING
    assert _identity(queue_stack, "repair-healthy") == session.id

    ok(run_cli(queue_stack, "repair", session.id, "--release", "--yes", "--force"))
    assert queue_stack.recorder.get(session.id).phase == Phase.FAILED
    assert _identity(queue_stack, "repair-healthy") is None


def test_an_identity_naming_another_session_is_never_deleted(queue_stack: QueueStack) -> None:
    session = queue_stack.recorder.start(start_body("repair-taken"))
    _hset(queue_stack, session.id, "created_at", "yesterday")
    store = queue_stack.recorder.store
    store.redis.set(store.keys.identity("app-test", "repair-taken", "1001"), "01OTHERSESSION")

    released = ok(run_cli(queue_stack, "repair", session.id, "--release", "--yes"))

    assert "identity left as it is" in released
    assert _identity(queue_stack, "repair-taken") == "01OTHERSESSION"
    assert session.id not in _active(queue_stack)


def test_an_identity_is_found_and_freed_when_the_identity_fields_are_gone(
    queue_stack: QueueStack,
) -> None:
    session = queue_stack.recorder.start(start_body("repair-noid"))
    store = queue_stack.recorder.store
    store.redis.hdel(store.keys.session(session.id), "cname")

    shown = ok(run_cli(queue_stack, "repair", session.id))
    assert "unknown (a field is missing): held by this session" in shown
    ok(run_cli(queue_stack, "repair", session.id, "--release", "--yes"))

    assert _identity(queue_stack, "repair-noid") is None
    assert queue_stack.recorder.start(start_body("repair-noid")).id != session.id


def test_an_unknown_session_exits_4(queue_stack: QueueStack) -> None:
    result = run_cli(queue_stack, "repair", "01NOSUCHSESSION", "--release", "--yes")

    assert result.returncode == 4
    assert "no session" in result.stderr
