"""AsyncRecorder with the real Redis, a real worker and the sandbox: the same sessions, outbox,
deduplication, errors and stop chain as the sync Recorder, awaited on redis.asyncio."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from orchestrator import AsyncRecorder
from orchestrator.jobs.context import JobContext
from orchestrator.krtc.validation import RequestValidationError
from orchestrator.producer import SessionFinishedError
from orchestrator.reconcile.session import reconcile_session
from orchestrator.state import Phase, SessionNotFoundError
from orchestrator.tasking.queues import send_task
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.timeout(90)

T = TypeVar("T")


def _run(stack: QueueStack, scenario: Callable[[AsyncRecorder], Awaitable[T]]) -> T:
    """Run ``scenario`` with an AsyncRecorder of the stack in a fresh event loop."""

    async def main() -> T:
        recorder = AsyncRecorder(stack.settings)
        try:
            return await scenario(recorder)
        finally:
            await recorder.close()

    return asyncio.run(main())


def test_an_async_start_records_dedupes_and_stops(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()

    async def scenario(recorder: AsyncRecorder) -> tuple[Any, ...]:
        # Given a start, when the same idempotency key and the same channel come again...
        first = await recorder.start_once(start_body("aio-1"), idempotency_key="aio-k1")
        again = await recorder.start_once(start_body("aio-1"), idempotency_key="aio-k1")
        same_channel = await recorder.start(start_body("aio-1"))
        recording = await recorder.wait(first.session.id, "recording", timeout=20)
        # Files exist from the server's status 5 on: a stop before it would find none.
        await asyncio.to_thread(queue_stack.wait_server_status, str(recording.sid))
        await recorder.update_layout(first.session.id, {"mixedVideoLayout": 1})
        stopped = await recorder.stop(first.session.id)
        ended = await recorder.wait(first.session.id, [Phase.STOPPED], timeout=20)
        listed = await recorder.list(limit=10)
        return first, again, same_channel, recording, stopped, ended, listed

    first, again, same_channel, recording, stopped, ended, listed = _run(queue_stack, scenario)
    # ...then one session was created and queued (by the create script), and it recorded.
    assert first.created and not again.created
    assert again.session.id == same_channel.id == first.session.id
    assert recording.sid and stopped.id == first.session.id
    assert ended.phase == Phase.STOPPED and ended.files
    assert [s.id for s in listed] == [first.session.id]
    # The sync recorder reads the same session (same keys, same encoding).
    assert queue_stack.recorder.get(first.session.id).sid == recording.sid
    assert queue_stack.sandbox.recordings(cname="aio-1", active=True) == []


def test_concurrent_async_starts_for_one_channel_create_one_session(
    queue_stack: QueueStack,
) -> None:
    async def scenario(recorder: AsyncRecorder) -> list[Any]:
        body = start_body("aio-race")
        return list(await asyncio.gather(*(recorder.start_once(body) for _ in range(40))))

    results = _run(queue_stack, scenario)
    assert len({r.session.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert len(queue_stack.recorder.list(active_only=True)) == 1


def test_async_errors_are_the_sync_ones_and_nothing_invalid_is_stored(
    queue_stack: QueueStack,
) -> None:
    invalid = start_body("aio-bad")
    invalid["clientRequest"]["recordingConfig"]["maxIdleTime"] = -1

    async def scenario(recorder: AsyncRecorder) -> list[Exception]:
        errors: list[Exception] = []
        calls: list[Callable[[], Awaitable[Any]]] = [
            functools.partial(recorder.start, invalid),
            functools.partial(recorder.get, "no-such-session"),
            functools.partial(recorder.stop, "no-such-session"),
            functools.partial(recorder.replay, "no-such-letter"),
        ]
        for call in calls:
            try:
                await call()
            except Exception as exc:
                errors.append(exc)
        session = await recorder.start(start_body("aio-fin"))
        await recorder.stop(session.id)  # never sent: cancelled at once
        try:
            await recorder.update_layout(session.id, {"mixedVideoLayout": 1})
        except Exception as exc:
            errors.append(exc)
        return errors

    bad, missing, missing_stop, no_letter, finished = _run(queue_stack, scenario)
    with pytest.raises(RequestValidationError) as sync_error:
        queue_stack.recorder.start(invalid)
    assert isinstance(bad, RequestValidationError) and bad.errors == sync_error.value.errors
    assert isinstance(missing, SessionNotFoundError)
    assert isinstance(missing_stop, SessionNotFoundError)
    assert isinstance(no_letter, KeyError)
    assert isinstance(finished, SessionFinishedError)
    assert [s.cname for s in queue_stack.recorder.list()] == ["aio-fin"]


def test_an_async_stop_follows_the_restart_chain(queue_stack: QueueStack) -> None:
    queue_stack.start_worker()
    ctx = JobContext.from_settings(queue_stack.settings)
    ctx.enqueue = functools.partial(send_task, queue_stack.recorder.celery)
    first = _run(
        queue_stack,
        lambda r: r.start(start_body("aio-chain"), restart_on_failure=True, max_restarts=1),
    )
    # Given a recording that exited abnormally and was restarted as a new session...
    recording = queue_stack.wait(first.id, Phase.RECORDING)
    queue_stack.wait_server_status(str(recording.sid), 5)
    queue_stack.sandbox.set_faults(abnormal_exit_sids=[recording.sid])
    reconcile_session(ctx, first.id)
    successor_id = queue_stack.recorder.get(first.id).restarted_to
    assert successor_id is not None
    queue_stack.wait(successor_id, Phase.RECORDING)

    # ...when the app stops the session it knows, then the live successor is stopped.
    stopped = _run(queue_stack, lambda r: r.stop(first.id))
    assert stopped.id == successor_id
    queue_stack.wait(successor_id, Phase.STOPPED, timeout=20)
    assert queue_stack.sandbox.recordings(cname="aio-chain", active=True) == []
