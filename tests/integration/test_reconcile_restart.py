"""The restart policy on status 20 (spec D14), with the sandbox, the real Redis and a worker."""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.jobs.context import JobContext
from orchestrator.reconcile.restart import restart_failed
from orchestrator.reconcile.session import Outcome, reconcile_session
from orchestrator.state import Phase, Session, Source
from orchestrator.tasking.queues import send_task
from tests.integration.test_cli_sessions import run_cli
from tests.integration.worker_fixture import QueueStack, start_body


@pytest.fixture
def ctx(queue_stack: QueueStack) -> JobContext:
    context = JobContext.from_settings(queue_stack.settings)
    context.enqueue = functools.partial(send_task, queue_stack.recorder.celery)
    return context


def _exit_abnormally(stack: QueueStack, session: Session) -> None:
    """Wait until the server records ``session``, then make it exit with status 20."""
    recording = stack.wait(session.id, Phase.RECORDING)
    stack.wait_server_status(str(recording.sid), 5)
    stack.sandbox.set_faults(abnormal_exit_sids=[recording.sid])


def _reconcile_concurrently(ctx: JobContext, session_id: str, pollers: int = 4) -> list[Outcome]:
    with ThreadPoolExecutor(pollers) as pool:
        return list(pool.map(lambda _: reconcile_session(ctx, session_id), range(pollers)))


def test_status_20_restarts_once_as_a_linked_session_and_the_chain_stops_at_max_restarts(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    queue_stack.start_worker()
    body = start_body("rs-chain")
    first = queue_stack.recorder.start(body, restart_on_failure=True, max_restarts=1)
    assert (first.restart_on_failure, first.max_restarts, first.restarts) == (True, 1, 0)

    # Given a recording that exits abnormally, when four pollers see it at once...
    _exit_abnormally(queue_stack, first)
    outcomes = _reconcile_concurrently(ctx, first.id)

    # ...then it fails, and exactly one new session for the same channel is started.
    failed = queue_stack.recorder.get(first.id, with_history=True)
    assert failed.phase == Phase.FAILED and failed.last_status == 20
    assert failed.restarted_to is not None
    restarts = [c for o in outcomes for c in o.changes if c.startswith("restarted as")]
    assert restarts == [f"restarted as session {failed.restarted_to} (1 of 1)"]
    second = queue_stack.wait(failed.restarted_to, Phase.RECORDING)
    assert second.restarted_from == first.id
    assert (second.app_id, second.cname, second.uid, second.mode) == (
        first.app_id,
        first.cname,
        first.uid,
        first.mode,
    )
    assert second.request == first.request and second.sid != failed.sid
    assert (second.restart_on_failure, second.max_restarts, second.restarts) == (True, 1, 1)
    active = queue_stack.sandbox.recordings(cname="rs-chain", active=True)
    assert [r["sid"] for r in active] == [second.sid]

    # Both histories say so, as changes of the reconciler.
    link = [e for e in failed.history if "restarted_to" in e.what]
    assert len(link) == 1 and second.id in link[0].why and link[0].source == Source.POLL
    created = queue_stack.recorder.get(second.id, with_history=True).history[0]
    assert created.what.startswith("created") and first.id in created.why
    assert created.source == Source.POLL and "restart 1 of 1" in created.why

    # When the restarted recording exits abnormally too, the chain has spent its restarts.
    _exit_abnormally(queue_stack, second)
    reconcile_session(ctx, second.id)
    ended = queue_stack.recorder.get(second.id, with_history=True)
    assert ended.phase == Phase.FAILED and ended.restarted_to is None
    assert ended.history[-1].what == "not restarted"
    assert "1 of 1 restarts" in ended.history[-1].why
    assert queue_stack.sandbox.recordings(cname="rs-chain", active=True) == []
    assert queue_stack.recorder.store.find_active("app-test", "rs-chain", "1001") is None


def test_without_the_policy_status_20_is_not_restarted(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("rs-off"))
    assert session.restart_on_failure is False
    _exit_abnormally(queue_stack, session)
    outcome = reconcile_session(ctx, session.id)
    failed = queue_stack.recorder.get(session.id)
    assert failed.phase == Phase.FAILED and failed.restarted_to is None
    assert not any("restart" in c for c in outcome.changes)
    assert queue_stack.recorder.store.find_active("app-test", "rs-off", "1001") is None
    assert len(queue_stack.sandbox.recordings(cname="rs-off")) == 1


def test_a_channel_started_again_before_the_restart_keeps_its_own_session(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    # Given a session that failed (which frees its identity) and a producer that started the
    # channel again before the reconciler restarted it...
    store = queue_stack.recorder.store
    session = queue_stack.recorder.start(start_body("rs-taken"), restart_on_failure=True)
    store.transition(session.id, to=Phase.FAILED, why="test: exited abnormally")
    other = queue_stack.recorder.start(start_body("rs-taken"))
    # ...when the restart runs, it leaves that session alone and says why.
    outcome = Outcome(session.id)
    assert restart_failed(ctx, session, outcome) is None
    failed = store.get_or_raise(session.id, with_history=True)
    assert failed.restarted_to is None
    assert failed.history[-1].what == "not restarted" and other.id in failed.history[-1].why
    assert outcome.changes == [f"not restarted: session {other.id} holds the identity"]
    assert store.find_active("app-test", "rs-taken", "1001") == store.get(other.id)


def test_a_stop_of_the_original_id_stops_the_restarted_recording(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    # Given a web app that keeps the id of the session it started, restarted after status 20
    queue_stack.start_worker()
    first = queue_stack.recorder.start(start_body("rs-stop-chain"), restart_on_failure=True)
    _exit_abnormally(queue_stack, first)
    reconcile_session(ctx, first.id)
    successor_id = queue_stack.recorder.get(first.id).restarted_to
    assert successor_id is not None
    live = queue_stack.wait(successor_id, Phase.RECORDING)
    # When it stops the original id (here as an operator does, with the CLI)
    result = run_cli(queue_stack, "stop", first.id, "--wait", "--json")
    # Then the answer names the successor, and the live recording ends
    assert result.returncode == 0, result.stderr
    stopped = json.loads(result.stdout)
    assert stopped["id"] == live.id and stopped["restarted_from"] == first.id
    assert f"restarted as session {live.id}" in result.stderr
    assert stopped["phase"] == "stopped"
    assert queue_stack.sandbox.recordings(cname="rs-stop-chain", active=True) == []
    # And the producer API says the same for the original id
    assert queue_stack.recorder.stop(first.id).id == live.id


def test_a_stop_requested_after_the_query_saw_status_20_means_no_restart(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    # Given a reconciler that saw status 20 and failed the session (its snapshot says
    # "desired: recording")...
    store = queue_stack.recorder.store
    session = queue_stack.recorder.start(start_body("rs-stop-race"), restart_on_failure=True)
    store.transition(session.id, to=Phase.FAILED, why="test: exited abnormally (status 20)")
    # ...and a stop requested by the web app before the restart step runs
    queue_stack.recorder.stop(session.id)
    # When the restart step runs with the stale snapshot
    outcome = Outcome(session.id)
    assert restart_failed(ctx, session, outcome) is None
    # Then nothing is restarted: the step read the desired state at that moment
    failed = store.get_or_raise(session.id, with_history=True)
    assert failed.restarted_to is None and failed.desired.value == "stopped"
    assert outcome.changes == ["not restarted: stop requested"]
    assert store.find_active("app-test", "rs-stop-race", "1001") is None


def test_the_successor_is_created_linked_and_queued_in_one_step(
    queue_stack: QueueStack, ctx: JobContext
) -> None:
    store = queue_stack.recorder.store
    session = queue_stack.recorder.start(start_body("rs-atomic"), restart_on_failure=True)
    store.transition(session.id, to=Phase.FAILED, why="test: exited abnormally (status 20)")
    ctx.starts = queue_stack.recorder.starts  # the outbox: the start is pushed by the script
    assert ctx.starts.outbox
    new_id = restart_failed(ctx, session, Outcome(session.id))
    assert new_id is not None
    # Running the step again (a redelivered batch) restarts nothing more.
    assert restart_failed(ctx, session, Outcome(session.id)) == new_id
    assert store.get_or_raise(session.id).restarted_to == new_id
    assert store.get_or_raise(new_id).restarted_from == session.id
    # The successor's start was queued by the same script: a worker started now records it.
    queue_stack.start_worker()
    queue_stack.wait(new_id, Phase.RECORDING)
    assert len(queue_stack.sandbox.recordings(cname="rs-atomic")) == 1
