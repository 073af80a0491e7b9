"""The per-process services of a worker: one :class:`JobContext`, built on first use.

Threads of the pool share it (the HTTP session's pool and the Redis client are thread-safe).
Tests and embedders may install their own with :func:`install`.
"""

from __future__ import annotations

import functools
import threading

from celery import Celery

from orchestrator.jobs.context import JobContext, watch_skew
from orchestrator.settings import Settings, load_settings
from orchestrator.tasking.queues import send_task
from orchestrator.tasking.starts import StartQueue

__all__ = ["context", "install", "reset", "close"]

_lock = threading.Lock()
_context: JobContext | None = None


def context(settings: Settings | None = None, app: Celery | None = None) -> JobContext:
    """The process's job context (built from ``settings`` or the environment the first time).

    With ``app``, the context queues tasks (:meth:`JobContext.send`) through it.
    """
    global _context
    with _lock:
        if _context is None:
            _context = JobContext.from_settings(settings or load_settings())
            watch_skew(_context, "worker")
        if app is not None and _context.enqueue is None:
            _context.enqueue = functools.partial(send_task, app)
            _context.starts = StartQueue(_context.store, app, lane=_context.settings.start_lane)
        return _context


def install(ctx: JobContext) -> None:
    """Use ``ctx`` for every job of this process."""
    global _context
    with _lock:
        _context = ctx


def reset() -> None:
    """Forget the context (the next job builds a new one)."""
    global _context
    with _lock:
        _context = None


def close(timeout_s: float = 5.0) -> None:
    """At worker shutdown: let queued alert deliveries finish, close the HTTP session."""
    global _context
    with _lock:
        ctx, _context = _context, None
    if ctx is not None:
        ctx.close(timeout_s)
