"""Keep the worker's event loop responsive when its prefetch window is full.

With ``acks_late`` and a prefetch of one message per thread, a busy worker stops asking Redis
for messages until a thread is free. A thread that finishes does not wake the event loop,
which then sleeps until its next timer (up to a second), so the pool idles. A cheap repeating
timer bounds that sleep: measured on 2 cores, 2,000 starts went from ~250/s to the figure in
docs/performance.md. It ticks every 10 ms only while tasks run: each tick is an event loop
iteration, and ticking 100 times a second made an idle worker cost about 2 % of a core.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps
from celery.worker import state as worker_state

__all__ = ["WAKEUP_EVERY_S", "connect"]

#: Longest the event loop sleeps while threads may have finished.
WAKEUP_EVERY_S = 0.01
#: The same while no task runs (nothing can finish; an idle worker then costs little CPU).
IDLE_EVERY_S = 0.25


class _Wakeup(bootsteps.StartStopStep):  # type: ignore[misc]  # celery ships no types
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._entry: Any = None
        self._timer: Any = None

    def start(self, parent: Any) -> None:
        if parent.timer is not None:
            self._timer = parent.timer
            self._tick()

    def stop(self, parent: Any) -> None:
        timer, self._timer = self._timer, None
        if self._entry is not None and timer is not None:
            self._entry.cancel()
        self._entry = None

    def _tick(self) -> None:
        # Each tick costs an event loop iteration (kombu's poll bookkeeping): tick fast only
        # while tasks run (one of them may free a thread); an idle pool has nothing to free,
        # and a message that comes wakes the loop by itself.
        if self._timer is None:
            return
        every = WAKEUP_EVERY_S if worker_state.active_requests else IDLE_EVERY_S
        self._entry = self._timer.call_after(every, self._tick)


def connect(app: Celery) -> None:
    """Add the wake-up timer to the consumers of ``app``'s workers."""
    app.steps["consumer"].add(_Wakeup)
