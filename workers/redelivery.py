"""A faster sweep of unacknowledged messages, so that a killed worker's task comes back soon.

With ``acks_late`` a task whose worker was SIGKILLed stays in the broker's "unacked" set. kombu
puts it back on its queue only in a sweep that it runs every tenth tick of ten seconds (about
every 100 s), for messages older than ``visibility_timeout``. Each worker here runs its own sweep
every :func:`sweep_interval_s` seconds instead (kombu's mutex keeps concurrent sweeps apart), so a
lost stop is redelivered within about ``visibility_timeout`` plus that interval.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

__all__ = ["sweep_interval_s", "sweep_once", "connect"]

log = logging.getLogger("workers.redelivery")


def sweep_interval_s(visibility_timeout: float) -> float:
    """Seconds between sweeps: a third of the visibility timeout, at most 10 s."""
    return max(1.0, min(10.0, visibility_timeout / 3))


def sweep_once(app: Celery) -> None:
    """Put back on their queues the unacked messages older than the visibility timeout."""
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel
        qos = channel.qos
        qos.restore_visible(num=channel.unacked_restore_limit, interval=1)


def connect(app: Celery) -> None:
    """Run the sweep in a daemon thread of each worker of ``app``, from ready to shutdown."""
    stop = threading.Event()
    interval = sweep_interval_s(app.conf.broker_transport_options["visibility_timeout"])

    def loop() -> None:
        while not stop.wait(interval):
            try:
                sweep_once(app)
            except Exception as exc:  # a broker outage: try again at the next tick
                log.warning("unacked sweep failed: %s", exc)

    def on_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            threading.Thread(target=loop, name="krtc-unacked-sweep", daemon=True).start()

    def on_shutdown(**_: Any) -> None:
        stop.set()

    worker_ready.connect(on_ready, weak=False)
    worker_shutdown.connect(on_shutdown, weak=False)
