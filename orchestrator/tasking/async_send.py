"""Sending tasks from asyncio code: the same messages as :mod:`orchestrator.tasking.starts`,
pushed with ``redis.asyncio``.

kombu's publish blocks, so an async producer never calls it: every task message is built by
:func:`~orchestrator.tasking.message.celery_message` (Celery's own protocol, the outbox's
message) and pushed with one awaited ``LPUSH`` onto the broker's Redis. A start goes to the
start lane (:mod:`orchestrator.state.lane`) when it is on; the create script pushes it, as in
:class:`StartQueue`, and also pushes a start message when the broker is the store's Redis.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from redis.asyncio import Redis as AsyncRedis

from orchestrator.state import CreateResult, StateUnavailableError
from orchestrator.state.aio import AsyncSessionStore
from orchestrator.state.backend import redis_errors
from orchestrator.state.connection import RedisOptions, connect_async
from orchestrator.state.lane import created_entry, lane_entry
from orchestrator.tasking.message import celery_message
from orchestrator.tasking.starts import START_TASK, not_queued, same_redis

__all__ = ["AsyncStartQueue"]


class AsyncStartQueue:
    """Creates sessions and queues their starts, and sends the other tasks, awaited.

    Args:
        store: the async session store.
        celery: the app whose configuration the messages follow (nothing is sent through it).
        options: the Redis options of a broker client (when the broker is another Redis).
        lane: queue starts in the start lane rather than as Celery messages.
    """

    def __init__(
        self,
        store: AsyncSessionStore,
        celery: Celery,
        options: RedisOptions | None = None,
        *,
        lane: bool = False,
    ) -> None:
        self.store = store
        self.celery = celery
        self.lane_key = store.keys.start_lane("ready") if lane else None
        broker_url = str(celery.conf.broker_url)
        transport = celery.conf.broker_transport_options or {}
        same = same_redis(store, broker_url, transport.get("master_name"))
        self.outbox = same or self.lane_key is not None
        self.broker: AsyncRedis = store.redis if same else connect_async(broker_url, options)

    async def create(self, **create: Any) -> CreateResult:
        """:meth:`AsyncSessionStore.create` with ``create``, and the start queued if it created.

        Raises:
            As :meth:`StartQueue.create`.
        """
        outbox = self._message if self.outbox else None
        result = await self.store.create(**create, outbox=outbox)
        if result.created:
            if not self.outbox:
                await self.send(START_TASK, [result.session.id])
            # As StartQueue.create: the session and its message on the replicas first.
            await self.store.replica_acks.confirm("create", [result.session.id])
        return result

    async def send(self, task: str, args: list[Any]) -> str:
        """Push ``task`` onto its queue; returns the task id.

        Raises:
            StoredNotQueuedError: the broker could not be reached (see :meth:`StartQueue.send`).
        """
        if task == START_TASK and self.lane_key is not None:
            entry = lane_entry(str(args[0]))
            try:
                with redis_errors(self.store.redis):
                    await self.store.redis.lpush(self.lane_key, entry)  # type: ignore[misc]
            except StateUnavailableError as exc:
                raise not_queued(task, args, exc) from None
            return entry.partition(" ")[0]
        message = celery_message(self.celery, task, args)
        try:
            with redis_errors(self.broker):
                await self.broker.lpush(message.key, message.payload)  # type: ignore[misc]
        except StateUnavailableError as exc:
            raise not_queued(task, args, exc) from None
        return message.task_id

    def _message(self, session_id: str) -> tuple[str, str]:
        if self.lane_key is not None:
            return self.lane_key, created_entry(session_id)
        message = celery_message(self.celery, START_TASK, [session_id])
        return message.key, message.payload
