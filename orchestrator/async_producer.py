"""The producer API for asyncio web apps (FastAPI, Starlette, aiohttp, Django async views).

::

    from orchestrator import AsyncRecorder

    recorder = AsyncRecorder.from_env()
    session = await recorder.start(body)           # validated, stored, queued; returns at once
    await recorder.wait(session.id, "recording", timeout=30)
    await recorder.stop(session.id)
    await recorder.close()

Every method of :class:`~orchestrator.producer.Recorder`, as a coroutine on ``redis.asyncio``:
the event loop never waits on Redis. The validation, the arguments and the errors are the
sync recorder's own functions; the session-create script (which also pushes the start message,
the outbox) and the key names are the sync store's; only the round trips are awaited.

``REDIS_URL`` may name Sentinels (``sentinel://...``): the client then follows the primary
through a failover (calls raise ``StateUnavailableError`` until the Sentinels name the new one).
A create with its queued start and a stop request wait for the replicas afterwards, as the sync
recorder's do (:class:`~orchestrator.state.replication.AsyncReplicaAcks`).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Iterable, Mapping
from typing import Any

from celery import Celery

from orchestrator.krtc.enums import Action
from orchestrator.producer import (
    _SEQUENCE_ACTIONS,
    SessionFinishedError,
    start_options,
    update_args,
    waited,
    wanted_phases,
)
from orchestrator.settings import Settings, load_settings
from orchestrator.state import (
    CreateResult,
    Phase,
    Session,
    SessionNotFoundError,
    Source,
    StopRequestResult,
)
from orchestrator.state.aio import AsyncSessionStore
from orchestrator.state.connection import RedisOptions, close_async
from orchestrator.state.session import DEFAULT_MAX_RESTARTS
from orchestrator.tasking.app import sending_app
from orchestrator.tasking.async_send import AsyncStartQueue
from orchestrator.tasking.stops import STOP_TASK, stop_steps

__all__ = ["AsyncRecorder"]


class AsyncRecorder:
    """Queue recording jobs and read their sessions, awaited (see the module's description).

    Args:
        settings: the configuration (``REDIS_URL``, ``KRTC_REDIS_PREFIX``...).
        store: the async session store (default: on ``settings.redis_url``).
        celery: the app whose configuration the task messages follow (nothing is sent through
            it: messages are pushed with ``redis.asyncio``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: AsyncSessionStore | None = None,
        celery: Celery | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or AsyncSessionStore.from_settings(settings)
        self.celery = celery or sending_app(settings)
        #: Creates sessions and queues their starts (the one path, awaited).
        self.starts = AsyncStartQueue(
            self.store,
            self.celery,
            RedisOptions.from_settings(settings),
            lane=settings.start_lane,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> AsyncRecorder:
        """A recorder configured from the environment (``overrides`` win)."""
        return cls(load_settings(**overrides))

    async def close(self) -> None:
        """Close the Redis connections (call it when the app shuts down)."""
        if self.starts.broker is not self.store.redis:
            await close_async(self.starts.broker)
        await self.store.close()

    # -- jobs ----------------------------------------------------------------------------------

    async def start(
        self,
        request: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        max_duration_s: int | None = None,
        restart_on_failure: bool = False,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
    ) -> Session:
        """:meth:`Recorder.start`, awaited (same validation, deduplication and errors)."""
        result = await self.start_once(
            request,
            idempotency_key=idempotency_key,
            max_duration_s=max_duration_s,
            restart_on_failure=restart_on_failure,
            max_restarts=max_restarts,
        )
        return result.session

    async def start_once(
        self,
        request: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        max_duration_s: int | None = None,
        restart_on_failure: bool = False,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
    ) -> CreateResult:
        """:meth:`Recorder.start_once`, awaited: ``(session, created)``."""
        return await self.starts.create(
            **start_options(
                request,
                idempotency_key=idempotency_key,
                max_duration_s=max_duration_s,
                restart_on_failure=restart_on_failure,
                max_restarts=max_restarts,
            )
        )

    async def stop(self, session_id: str, *, why: str = "stop requested") -> Session:
        """:meth:`Recorder.stop`, awaited: the stop follows the restart chain.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        chain = stop_steps(session_id, why)
        step = next(chain)
        stopped: builtins.list[str] = []
        try:
            while True:
                reply: StopRequestResult | SessionNotFoundError
                try:
                    reply = await self.store.request_stop(
                        step.session_id, why=step.why, source=Source.PRODUCER
                    )
                    stopped.append(reply.session.id)
                except SessionNotFoundError as exc:
                    reply = exc
                if isinstance(reply, StopRequestResult) and reply.needs_stop_call:
                    await self.starts.send(STOP_TASK, [reply.session.id])
                try:
                    step = chain.send(reply)
                except StopIteration as done:
                    last: StopRequestResult = done.value
                    return last.session
        finally:
            if stopped:
                # As stop_chain: the stop requests and their messages on the replicas before
                # the caller relies on them.
                await self.store.replica_acks.confirm("stop", stopped)

    async def update(self, session_id: str, client_request: Mapping[str, Any]) -> Session:
        """:meth:`Recorder.update`, awaited."""
        return await self._queue_update(Action.UPDATE, "krtc.update", session_id, client_request)

    async def update_layout(self, session_id: str, client_request: Mapping[str, Any]) -> Session:
        """:meth:`Recorder.update_layout`, awaited."""
        return await self._queue_update(
            Action.UPDATE_LAYOUT, "krtc.update_layout", session_id, client_request
        )

    # -- reading -------------------------------------------------------------------------------

    async def get(self, session_id: str, *, with_history: bool = False) -> Session:
        """:meth:`Recorder.get`, awaited.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        return await self.store.get_or_raise(session_id, with_history=with_history)

    async def list(self, *, active_only: bool = False, limit: int = 100) -> builtins.list[Session]:
        """Sessions, newest first."""
        return await self.store.list(active_only=active_only, limit=limit)

    async def wait(
        self,
        session_id: str,
        phase: Phase | str | Iterable[Phase | str],
        timeout: float = 30.0,
        *,
        poll_s: float = 0.1,
    ) -> Session:
        """:meth:`Recorder.wait`, awaited (``asyncio.sleep`` between reads).

        Raises:
            WaitTimeoutError: not reached in ``timeout`` seconds.
            SessionNotFoundError: there is no such session.
        """
        phases = wanted_phases(phase)
        deadline = time.monotonic() + timeout
        while True:
            session = await self.get(session_id)
            if waited(session, phases, deadline, timeout):
                return session
            await asyncio.sleep(poll_s)

    # -- dead letters --------------------------------------------------------------------------

    async def replay(self, letter_id: str) -> str:
        """:meth:`Recorder.replay`, awaited; returns the new task id.

        Raises:
            KeyError: there is no such letter.
        """
        letter = await self.store.dead_letter(letter_id)
        if letter is None:
            raise KeyError(f"no dead letter {letter_id!r}")
        task_id = await self.starts.send(letter.task, list(letter.args))
        await self.store.mark_replayed(letter, task_id)
        return task_id

    # -- helpers -------------------------------------------------------------------------------

    async def _queue_update(
        self, action: Action, task: str, session_id: str, client_request: Mapping[str, Any]
    ) -> Session:
        session = await self.get(session_id)
        update = update_args(action, session, client_request)
        numbered = await self.store.next_sequence(session_id, _SEQUENCE_ACTIONS[action])
        if numbered.is_refused:
            raise SessionFinishedError(await self.get(session_id))
        await self.starts.send(task, [*update, numbered.sequence])
        return session
