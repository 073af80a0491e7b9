"""Queued recordings end to end: producer -> Redis -> real worker -> sandbox."""

from __future__ import annotations

from redis import Redis

from orchestrator.alerts.store import AlertStore
from orchestrator.state import Phase
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET
from tests.integration.worker_fixture import QueueStack, start_body


def _calls(stack: QueueStack, action: str) -> int:
    by_action = stack.sandbox.stats()["byAction"].get(f"CloudRecording{action}", {})
    return sum(by_action.values())


def test_start_then_stop_records_and_keeps_the_files(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    recorder = queue_stack.recorder
    session = recorder.start(start_body("flow-1"))
    assert session.phase == Phase.PENDING

    recording = queue_stack.wait(session.id, Phase.RECORDING)
    assert recording.sid and len(recording.sid) == 20
    assert queue_stack.sandbox.recording(recording.sid)["active"] is True
    queue_stack.wait_server_status(recording.sid, 5)  # files exist from status 5 on

    recorder.stop(session.id)
    stopped = queue_stack.wait(session.id, Phase.STOPPED)
    assert stopped.last_status == 8
    assert stopped.files, "the final file list is kept"
    assert queue_stack.sandbox.recording(recording.sid)["active"] is False
    whats = [h.what for h in recorder.get(session.id, with_history=True).history]
    assert any("pending -> starting" in w for w in whats)
    assert any("-> stopped" in w for w in whats)


def test_duplicate_start_returns_the_same_session_and_sends_one_start(
    queue_stack: QueueStack,
) -> None:
    queue_stack.start_worker()
    first = queue_stack.recorder.start(start_body("flow-dup"))
    second = queue_stack.recorder.start(start_body("flow-dup"))
    assert second.id == first.id
    queue_stack.wait(first.id, Phase.RECORDING)
    assert _calls(queue_stack, "Start") == 1


def test_transient_500s_are_retried_until_the_start_succeeds(queue_stack: QueueStack) -> None:
    queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 500, "count": 2}])
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-500"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    assert recording.attempts["start"] == 3
    assert _calls(queue_stack, "Start") == 3


def test_a_lost_start_answer_then_409_without_a_sid_is_orphaned_never_guessed(
    queue_stack: QueueStack,
) -> None:
    # The start takes effect but its answer is a 500; the retry meets 409, whose body (as the
    # real service's) names no sid: the session is orphaned with no sid (spec D12).
    queue_stack.sandbox.set_faults(apply_then_fail=[{"action": "start", "how": "error"}])
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-409"))
    orphaned = queue_stack.wait(session.id, Phase.ORPHANED)
    assert orphaned.sid is None
    assert orphaned.last_error and orphaned.last_error["status"] == 409
    assert len(queue_stack.sandbox.recordings(cname="flow-409", active=True)) == 1
    assert _calls(queue_stack, "Start") == 2, "one applied start, one retry: no third"
    store = queue_stack.recorder.store
    alerts = AlertStore(store.redis, keys=store.keys).recent(20)
    assert [(a.kind.value, a.session_id) for a in alerts] == [("orphaned", session.id)]


def test_a_lost_start_answer_then_409_naming_the_sid_records_with_it(
    queue_stack: QueueStack,
) -> None:
    queue_stack.sandbox.configure(conflict_sid_in_body=True)
    queue_stack.sandbox.set_faults(apply_then_fail=[{"action": "start", "how": "error"}])
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-409-sid"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    (active,) = queue_stack.sandbox.recordings(cname="flow-409-sid", active=True)
    assert recording.sid == active["sid"]


def test_a_stop_through_500s_lands(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-stop-500"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    queue_stack.sandbox.set_faults(fail_next=[{"action": "stop", "status": 500, "count": 4}])
    queue_stack.recorder.stop(session.id)
    stopped = queue_stack.wait(session.id, Phase.STOPPED)
    assert stopped.attempts["stop"] >= 5
    assert queue_stack.sandbox.recording(str(recording.sid))["active"] is False


def test_permanent_refusal_fails_the_session_once_with_one_dead_letter(
    queue_stack: QueueStack,
) -> None:
    queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 400, "count": 5}])
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-400"))
    failed = queue_stack.wait(session.id, Phase.FAILED)
    assert failed.last_error and failed.last_error["status"] == 400
    assert _calls(queue_stack, "Start") == 1
    letters = _wait_for_letters(queue_stack, 1)
    assert [(x.action, x.session_id) for x in letters] == [("start", session.id)]


def test_always_500_spends_the_budget_then_dead_letters(queue_stack: QueueStack) -> None:
    queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 500, "count": 50}])
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-budget"))
    queue_stack.wait(session.id, Phase.FAILED, timeout=30)
    budget = queue_stack.settings.start_max_attempts
    assert _calls(queue_stack, "Start") == budget
    assert len(_wait_for_letters(queue_stack, 1)) == 1


def test_stop_before_the_worker_runs_cancels_without_any_call(queue_stack: QueueStack) -> None:
    session = queue_stack.recorder.start(start_body("flow-cancel"))
    stopped = queue_stack.recorder.stop(session.id)
    assert stopped.phase == Phase.STOPPED
    queue_stack.start_worker()
    # The queued start is consumed and does nothing.
    import time

    time.sleep(1.0)
    assert _calls(queue_stack, "Start") == 0
    assert queue_stack.recorder.get(session.id).phase == Phase.STOPPED


def test_stop_while_the_start_is_retrying_ends_with_nothing_running(
    queue_stack: QueueStack,
) -> None:
    queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 503, "count": 5}])
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-race"))
    seen = queue_stack.wait(session.id, Phase.STARTING, Phase.RECORDING)
    queue_stack.recorder.stop(session.id)
    queue_stack.wait(session.id, Phase.STOPPED, timeout=20)
    assert queue_stack.sandbox.recordings(cname="flow-race", active=True) == []
    if seen.phase == Phase.STARTING:
        # The stop came while the start was retrying: it waited for the sid, then stopped.
        assert _calls(queue_stack, "Stop") >= 1


def test_update_and_layout_reach_the_server(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-update"))
    queue_stack.recorder.update_layout(session.id, {"mixedVideoLayout": 1})
    queue_stack.recorder.update(
        session.id, {"streamSubscribe": {"audioUidList": {"subscribeAudioUids": ["#allstream#"]}}}
    )
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        view = queue_stack.sandbox.recording(str(recording.sid))
        if view.get("updates") and view.get("layout"):
            break
        time.sleep(0.1)
    assert view["updates"] and view["layout"]


def test_no_secret_reaches_redis_or_the_worker_log(
    queue_stack: QueueStack, redis_url: str, key_prefix: str
) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("flow-secret"))
    queue_stack.wait(session.id, Phase.RECORDING)
    queue_stack.recorder.stop(session.id)
    queue_stack.wait(session.id, Phase.STOPPED)
    client = Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{key_prefix}:*"):
            kind = client.type(key).decode()
            if kind == "none":
                continue  # gone since the scan (a released lease, an expired run's counters)
            dump = repr(
                {
                    "string": client.get,
                    "hash": client.hgetall,
                    "list": lambda k: client.lrange(k, 0, -1),
                    "zset": lambda k: client.zrange(k, 0, -1),
                    "set": client.smembers,
                }[kind](key)
            )
            for secret in (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET):
                assert secret not in dump, key
    finally:
        client.close()
    log = queue_stack.logs()
    assert "krtc.start" in log
    assert SENTINEL_SECRET not in log and SENTINEL_STORAGE_SECRET not in log


def _wait_for_letters(stack: QueueStack, count: int, timeout: float = 10.0) -> list:  # type: ignore[type-arg]
    import time

    deadline = time.monotonic() + timeout
    letters = stack.recorder.dead_letters.list()
    while len(letters) < count and time.monotonic() < deadline:
        time.sleep(0.1)
        letters = stack.recorder.dead_letters.list()
    return letters
