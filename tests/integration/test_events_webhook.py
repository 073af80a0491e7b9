"""Lifecycle webhooks end to end: a real worker, the sandbox, a real receiver on 127.0.0.1.

Events are recorded by the scripts that change the sessions (so a duplicate delivery of a start
emits once), delivered by the worker's event lane, signed the Standard Webhooks way (checked
here with an independent computation), retried with the same ``webhook-id``, and kept in Redis
while the receiver is down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.events import EventOutbox
from orchestrator.krtc.enums import Mode
from orchestrator.state import Phase
from orchestrator.tasking.message import celery_message
from tests.integration.receiver_fixture import KEY, SECRET, Receiver, standard_signature
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def stack_overrides(receiver: Receiver) -> dict[str, Any]:
    return {"events_webhook_url": receiver.url, "events_webhook_secret": SECRET}


def _eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def _types(receiver: Receiver, session_id: str) -> list[str]:
    accepted = receiver.accepted()
    return [r.json["type"] for r in accepted if r.json["data"].get("session_id") == session_id]


def test_started_then_stopped_with_files_signed_the_standard_webhooks_way(
    queue_stack: QueueStack, receiver: Receiver
) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("ev-basic"))
    recording = queue_stack.wait(session.id, Phase.RECORDING)
    queue_stack.wait_server_status(recording.sid or "")
    queue_stack.recorder.stop(session.id)
    queue_stack.wait(session.id, Phase.STOPPED)
    _eventually(lambda: len(_types(receiver, session.id)) == 2, what="two events")

    ours = [r for r in receiver.accepted() if r.json["data"]["session_id"] == session.id]
    started, stopped = ours
    assert started.json["type"] == "recording.started"
    assert started.json["data"]["sid"] == recording.sid
    assert started.json["data"]["phase"] == "recording"
    assert stopped.json["type"] == "recording.stopped"
    assert stopped.json["data"]["phase"] == "stopped"
    assert stopped.json["data"]["files"], "the stopped event carries the file list"
    assert started.json["timestamp"].endswith("Z")
    for r in (started, stopped):
        assert r.id.startswith("msg_")
        assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60
        expected = standard_signature(KEY, r.id, r.headers["webhook-timestamp"], r.body)
        assert expected in r.headers["webhook-signature"].split()
        assert "request" not in r.json["data"]
        assert "secretKey" not in r.body.decode()


def test_a_receiver_that_answers_500_twice_gets_the_same_webhook_id_again(
    queue_stack: QueueStack, receiver: Receiver
) -> None:
    receiver.fail_next(500, 500)
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("ev-500"))
    queue_stack.wait(session.id, Phase.RECORDING)
    _eventually(lambda: _types(receiver, session.id) == ["recording.started"], what="accepted")
    tries = [r for r in receiver.received if r.json["data"]["session_id"] == session.id]
    assert [r.status for r in tries] == [500, 500, 204]
    assert len({r.id for r in tries}) == 1
    assert len({r.body for r in tries}) == 1
    for r in tries:
        assert standard_signature(KEY, r.id, r.headers["webhook-timestamp"], r.body) in (
            r.headers["webhook-signature"].split()
        )


def test_events_queued_while_the_receiver_is_down_arrive_in_order_once_it_is_back(
    queue_stack: QueueStack, receiver: Receiver
) -> None:
    # Given a receiver that is down while two recordings start and stop
    receiver.down()
    queue_stack.start_worker()
    ids = []
    for cname in ("ev-down-1", "ev-down-2"):
        session = queue_stack.recorder.start(start_body(cname))
        queue_stack.wait(session.id, Phase.RECORDING)
        ids.append(session.id)
    for session_id in ids:
        queue_stack.recorder.stop(session_id)
        queue_stack.wait(session_id, Phase.STOPPED)
    outbox = EventOutbox(queue_stack.recorder.store.redis, keys=queue_stack.recorder.store.keys)
    assert [e.type for e, _ in outbox.list(session=ids[0])] == [
        "recording.stopped",
        "recording.started",
    ]
    assert all(d.state == "pending" for _, d in outbox.list())
    # When it comes back on the same port
    time.sleep(1.0)
    receiver.up()
    # Then every event arrives, each session's in order
    _eventually(
        lambda: all(len(_types(receiver, i)) == 2 for i in ids), timeout=40, what="delivered"
    )
    for session_id in ids:
        assert _types(receiver, session_id) == ["recording.started", "recording.stopped"]
    _eventually(lambda: all(d.state == "delivered" for _, d in outbox.list()), what="acked")


def test_a_duplicate_delivery_of_a_start_message_emits_one_started_event(
    queue_stack: QueueStack, receiver: Receiver
) -> None:
    # Given a pending session whose start message is delivered three times at once
    queue_stack.sandbox.set_faults(latency_ms=500)
    store = queue_stack.recorder.store
    body = start_body("ev-triple")
    session, _ = store.create(
        app_id=body["appId"], cname=body["cname"], uid=body["uid"], mode=Mode.MIX, request=body
    )
    message = celery_message(queue_stack.recorder.celery, "krtc.start", [session.id])
    for _ in range(3):
        store.redis.lpush(message.key, message.payload)
    queue_stack.start_worker()
    queue_stack.wait(session.id, Phase.RECORDING)
    _eventually(lambda: len(_types(receiver, session.id)) >= 1, what="started delivered")
    time.sleep(2.0)
    # Then one recording.started was recorded and delivered
    assert _types(receiver, session.id) == ["recording.started"]
    outbox = EventOutbox(store.redis, keys=store.keys)
    assert [e.type for e, _ in outbox.list(session=session.id)] == ["recording.started"]


def test_a_start_cancelled_before_it_was_sent_is_stopped_for_both_producers(
    queue_stack: QueueStack, receiver: Receiver
) -> None:
    import asyncio

    from orchestrator.async_producer import AsyncRecorder

    # No worker runs: the starts stay pending, and the stops cancel them.
    sync_session = queue_stack.recorder.start(start_body("ev-cancel-sync"))
    queue_stack.recorder.stop(sync_session.id)

    async def cancel() -> str:
        recorder = AsyncRecorder(queue_stack.settings)
        try:
            session = await recorder.start(start_body("ev-cancel-async"))
            await recorder.stop(session.id)
            return session.id
        finally:
            await recorder.close()

    async_id = asyncio.run(cancel())
    queue_stack.start_worker()  # delivers the events
    for session_id in (sync_session.id, async_id):
        _eventually(lambda s=session_id: _types(receiver, s) == ["recording.stopped"])


def test_status_20_with_a_restart_sends_failed_then_restarted(
    queue_stack: QueueStack, receiver: Receiver
) -> None:
    import functools

    from orchestrator.jobs.context import JobContext
    from orchestrator.reconcile.session import reconcile_session
    from orchestrator.tasking.queues import send_task

    queue_stack.start_worker()
    first = queue_stack.recorder.start(start_body("ev-restart"), restart_on_failure=True)
    recording = queue_stack.wait(first.id, Phase.RECORDING)
    queue_stack.wait_server_status(str(recording.sid), 5)
    queue_stack.sandbox.set_faults(abnormal_exit_sids=[recording.sid])
    ctx = JobContext.from_settings(queue_stack.settings)
    ctx.enqueue = functools.partial(send_task, queue_stack.recorder.celery)
    try:
        reconcile_session(ctx, first.id)
    finally:
        ctx.close()
    successor = queue_stack.recorder.get(first.id).restarted_to
    assert successor is not None
    # The failed session's own events, in order; the restart event is about the successor
    # (its fields, restarted_from naming the failed one), queued behind the failure.
    _eventually(
        lambda: (
            _types(receiver, first.id) == ["recording.started", "recording.failed"]
            and "recording.restarted" in _types(receiver, successor)
        ),
        what="failed, then restarted",
    )
    [restarted] = [r for r in receiver.accepted() if r.json["type"] == "recording.restarted"]
    assert restarted.json["data"]["restarted_from"] == first.id
    failed = [r for r in receiver.accepted() if r.json["type"] == "recording.failed"][0]
    assert failed.json["data"]["last_status"] == 20
    assert receiver.accepted().index(failed) < receiver.accepted().index(restarted)
    queue_stack.wait(successor, Phase.RECORDING)
    _eventually(lambda: "recording.started" in _types(receiver, successor))
