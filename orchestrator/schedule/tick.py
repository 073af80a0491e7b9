"""The ``krtc.schedule_tick`` job: a :class:`Dispatcher` built from the worker's job context."""

from __future__ import annotations

import threading

from orchestrator.jobs.context import JobContext
from orchestrator.schedule.dispatch import Dispatcher, TickReport
from orchestrator.schedule.store import ScheduleStore

__all__ = ["dispatcher_for", "run_tick"]

_lock = threading.Lock()
_dispatchers: dict[int, Dispatcher] = {}


def dispatcher_for(ctx: JobContext) -> Dispatcher:
    """The dispatcher of a job context (one per context: its scripts are registered once)."""
    with _lock:
        found = _dispatchers.get(id(ctx))
        if found is None or found.sessions is not ctx.store:
            found = Dispatcher(
                ScheduleStore(
                    ctx.store.redis,
                    prefix=ctx.store.keys.prefix,
                    clock=ctx.clock,
                    events=ctx.store.events,
                ),
                ctx.store,
                ctx.send,
                ctx.alert,
                lease_s=ctx.settings.schedule_lease,
                clock=ctx.clock,
                starts=ctx.start_queue(),
            )
            _dispatchers[id(ctx)] = found
        return found


def run_tick(ctx: JobContext) -> TickReport:
    """Claim and carry out every scheduled start and stop that is due."""
    return dispatcher_for(ctx).tick()
