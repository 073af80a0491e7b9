"""A lane: one daemon thread that works an outbox in Redis until its owner closes.

Both outboxes (alerts, one lane per sink; lifecycle events, one lane) deliver the same way: a
thread calls ``work()``, which makes at most one attempt and says how long to wait before the
next look; the thread sleeps that long (at most ``poll_s``) unless woken. Retries wait in Redis,
not in the thread, so any process may make the next attempt. The thread starts on first use in
the process that uses it: a forked child starts its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["Lane"]

log = logging.getLogger("orchestrator.lane")


class Lane:
    """One thread that calls ``work`` until ``closing`` is set.

    Args:
        name: the thread's name.
        work: makes one attempt; returns 0 to look again at once, else seconds to wait.
        poll_s: the longest wait between two looks (for entries other processes left).
        closing: set by the owner to stop the thread.
        describe: what the lane delivers to, for the log of an unexpected error.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[], float],
        *,
        poll_s: float,
        closing: threading.Event,
        describe: str,
    ) -> None:
        self.name = name
        self.wakeup = threading.Event()
        self._work = work
        self._poll_s = poll_s
        self._closing = closing
        self._describe = describe
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread, unless it runs in this process already."""
        with self._lock:
            # A forked child inherits the object but not the thread: it starts its own.
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closing.is_set():
            self.wakeup.clear()
            try:
                wait = self._work()
            except Exception:  # a lane must outlive any one entry, and Redis outages
                log.exception("delivery to %s failed", self._describe)
                wait = self._poll_s
            if wait > 0:
                self.wakeup.wait(min(wait, self._poll_s))

    def join(self, deadline: float) -> None:
        """Wait for the thread (started in this process) until ``deadline`` (monotonic)."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            thread.join(max(deadline - time.monotonic(), 0.0))
