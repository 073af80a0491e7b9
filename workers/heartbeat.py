"""A worker's heartbeat: once ready, it notes every few seconds that it is alive.

``GET /readyz`` and health checks read the heartbeats (:mod:`orchestrator.state.heartbeat`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from orchestrator.state.heartbeat import HEARTBEAT_EVERY_S, WorkerHeartbeats
from workers import runtime

__all__ = ["connect"]

log = logging.getLogger("workers.heartbeat")


def connect(app: Celery) -> None:
    """Beat for ``app``'s worker from the moment it is ready until it shuts down."""
    stop = threading.Event()

    def loop(name: str) -> None:
        ctx = runtime.context(app.conf.krtc_settings, app)
        beats = WorkerHeartbeats(ctx.store.redis, ctx.store.keys)
        while True:
            try:
                beats.beat(name)
            except Exception:  # Redis down: the next beat tries again
                log.debug("heartbeat of %s failed", name)
            if stop.wait(HEARTBEAT_EVERY_S):
                return

    def on_ready(sender: Any = None, **_: Any) -> None:
        if sender is None or sender.app is not app:
            return
        threading.Thread(
            target=loop, args=(str(sender.hostname),), name="heartbeat", daemon=True
        ).start()

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(lambda **_: stop.set(), weak=False)
