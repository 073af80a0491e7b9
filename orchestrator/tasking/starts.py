"""The one path that creates a session and queues its start, whoever asks.

The producer (a web app's ``Recorder.start``), the scheduler (a meeting that is due) and the
restart policy (a recording that exited abnormally) all create sessions through
:class:`StartQueue`.

With the start lane (setting ``start_lane``, the default) a start is an entry of the lane in the
store's Redis (:mod:`orchestrator.state.lane`), pushed by the session-create script itself: one
round trip, and the start is queued if and only if the session was created. Workers take lane
entries outside Celery (:mod:`workers.lane`), which costs a fraction of a Celery message.

Without it, a start is a ``krtc.start`` Celery message. When the broker is the store's Redis,
the create script pushes it (:mod:`orchestrator.tasking.message`); otherwise it is sent right
after the create, and a broker error then leaves a stored, pending session that the reconciler
re-queues.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from orchestrator.state import CreateResult, SessionStore, StoredNotQueuedError
from orchestrator.state.aio import AsyncSessionStore
from orchestrator.state.connection import same_server
from orchestrator.state.errors import StateUnavailableError
from orchestrator.state.lane import StartLane, created_entry
from orchestrator.tasking.message import celery_message
from orchestrator.tasking.queues import send_task

__all__ = ["START_TASK", "StartQueue", "not_queued", "same_redis"]

#: The task that starts a session's recording.
START_TASK = "krtc.start"


class StartQueue:
    """Creates sessions and queues their starts, and sends the other tasks.

    Args:
        store: the session store.
        celery: the app that sends (usually :func:`orchestrator.tasking.sending_app`).
        send: sends a task by name instead of ``celery`` (then there is no outbox).
        outbox: push the start message from the create script; by default, when the broker is
            the store's Redis server and database. Starts in the lane always are.
        lane: queue starts in the start lane rather than as Celery messages.

    Raises:
        ValueError: neither ``celery`` nor ``send`` is given.
    """

    def __init__(
        self,
        store: SessionStore,
        celery: Celery | None = None,
        *,
        send: Callable[[str, list[Any]], str] | None = None,
        outbox: bool | None = None,
        lane: bool = False,
    ) -> None:
        if celery is None and send is None:
            raise ValueError("a StartQueue sends through a Celery app or a send function")
        self.store = store
        self.celery = celery
        self._send = send
        self.lane = StartLane(store.redis, keys=store.keys) if lane else None
        if self.lane is not None:
            self.outbox = True
        elif celery is None:
            self.outbox = False
        elif outbox is None:
            transport = celery.conf.broker_transport_options or {}
            self.outbox = same_redis(
                store, str(celery.conf.broker_url), transport.get("master_name")
            )
        else:
            self.outbox = outbox

    def create(self, **create: Any) -> CreateResult:
        """:meth:`SessionStore.create` with ``create``, and the start queued if it created.

        Raises:
            As :meth:`SessionStore.create`; StateUnavailableError also when the session was
            stored but its start could not be sent (the reconciler re-queues it).
        """
        result = self.store.create(**create, outbox=self._message if self.outbox else None)
        if result.created:
            if not self.outbox:
                self.send(START_TASK, [result.session.id])
            # The session and its message (the outbox's) on the replicas before the caller
            # relies on them; a separate broker's message is not covered.
            self.store.replica_acks.confirm("create", [result.session.id])
        return result

    def send(self, task: str, args: list[Any]) -> str:
        """Send ``task`` to its queue; returns the task id.

        Raises:
            StoredNotQueuedError: the broker could not be reached. The caller stored what the
                task is for first, so the reconciler queues it again once the broker is back.
        """
        if task == START_TASK and self.lane is not None:
            try:
                return self.lane.push(str(args[0]))
            except StateUnavailableError as exc:
                raise not_queued(task, args, exc) from None
        if self._send is not None:
            return self._send(task, args)
        assert self.celery is not None
        try:
            return send_task(self.celery, task, args)
        except KombuOperationalError as exc:
            raise not_queued(task, args, exc) from None

    def _message(self, session_id: str) -> tuple[str, str]:
        if self.lane is not None:
            return self.lane.ready_key, created_entry(session_id)
        assert self.celery is not None
        message = celery_message(self.celery, START_TASK, [session_id])
        return message.key, message.payload


def not_queued(task: str, args: list[Any], exc: Exception) -> StoredNotQueuedError:
    """The error when ``task`` (for session ``args[0]``, stored) could not be queued."""
    return StoredNotQueuedError(
        f"{task} for session {args[0]} is stored but could not be queued "
        f"({type(exc).__name__}); the reconciler queues it again once Redis is back"
    )


def same_redis(
    store: SessionStore | AsyncSessionStore, broker_url: str, master_name: str | None = None
) -> bool:
    """Whether the broker is the Redis server (or Sentinel-monitored primary) and database the
    store writes to."""
    return same_server(store.redis, broker_url, master_name)
