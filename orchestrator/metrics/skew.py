"""Clock skew: how far each process's wall clock is from Redis' ``TIME``, and who is told.

The orchestrator's own decisions use Redis' clock (:mod:`orchestrator.state.clock`), so skew no
longer breaks them; but libraries that use the wall clock still feel it (Celery's retry ETAs,
kombu's visibility-timeout sweep), and a host drifting away is a problem an operator should fix.

Each process compares at start-up and then once a minute (every sync of its
:class:`~orchestrator.state.RedisClock`). Past :data:`SKEW_LIMIT_S` it logs a warning and raises
a ``clock_skew`` alert (one per process, with reminders); every comparison is exported as the
gauge ``krtc_clock_skew_seconds{process}`` (a hash in Redis, read back by the collector).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import cast

from redis import Redis
from redis.exceptions import RedisError

from orchestrator.state import Keys, RedisClock
from orchestrator.state.codec import text

__all__ = [
    "SKEW_LIMIT_S",
    "SKEW_CHECK_EVERY_S",
    "SKEW_STALE_AFTER_S",
    "SkewReporter",
    "process_name",
    "read_skews",
]

#: Seconds of skew past which a warning is logged and an alert raised.
SKEW_LIMIT_S = 1.0
#: Seconds between two comparisons of a process that watches by itself (beat).
SKEW_CHECK_EVERY_S = 60.0
#: Seconds after which a process's last comparison is no longer exported (it has gone).
SKEW_STALE_AFTER_S = 5 * SKEW_CHECK_EVERY_S

log = logging.getLogger("orchestrator.clock")

#: ``(kind, id, reason)``: how the reporter raises its alert.
AlertHook = Callable[[str, str, str], None]


def process_name(role: str) -> str:
    """``role@host``: the ``process`` label of a process (its role on its machine)."""
    return f"{role}@{socket.gethostname()}"


class SkewReporter:
    """Reports the skews a :class:`RedisClock` measures (install it as its ``on_sync``).

    Args:
        redis: the deployment's Redis (the gauge's hash lives there).
        keys: the key names.
        clock: the Redis clock whose syncs are reported (and that stamps the reports).
        process: the ``process`` label (:func:`process_name`).
        alert: raises the ``clock_skew`` alert; ``None`` only logs.
        limit_s: the skew past which it warns.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        clock: RedisClock,
        process: str,
        *,
        alert: AlertHook | None = None,
        limit_s: float = SKEW_LIMIT_S,
    ) -> None:
        self._redis = redis
        self.keys = keys
        self.clock = clock
        self.process = process
        self.alert = alert
        self.limit_s = limit_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def install(self) -> SkewReporter:
        """Report every sync of the clock from now on, starting with one now."""
        self.clock.on_sync = self.report
        try:
            self.clock.sync()
        except Exception:  # Redis down at start-up: the next sync reports
            log.warning("%s: could not compare the clock with Redis TIME yet", self.process)
        return self

    def watch(self, every_s: float = SKEW_CHECK_EVERY_S) -> SkewReporter:
        """Also compare every ``every_s`` seconds from a daemon thread (an idle process)."""
        self.install()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, args=(every_s,), name="clock-skew", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the watching thread, if any."""
        self._stop.set()

    def report(self, skew_s: float) -> None:
        """Export ``skew_s`` and warn past the limit; never raises."""
        try:
            entry = json.dumps({"skew_s": round(skew_s, 6), "at": self.clock(), "pid": os.getpid()})
            self._redis.hset(self.keys.metrics_clock_skew(), self.process, entry)
        except (RedisError, OSError):
            log.debug("could not record the clock skew of %s", self.process)
        if abs(skew_s) <= self.limit_s:
            return
        reason = (
            f"the wall clock of {self.process} is {skew_s:+.3f}s off Redis' TIME (more than "
            f"{self.limit_s:g}s): fix its time synchronisation (chrony/NTP); retry delays and "
            "the redelivery of unacknowledged tasks depend on it"
        )
        log.warning("clock skew: %s", reason)
        if self.alert is not None:
            try:
                self.alert("clock_skew", self.process, reason)
            except Exception:
                log.exception("could not raise the clock_skew alert")

    def _loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.clock.sync()
            except Exception:
                log.warning("%s: could not compare the clock with Redis TIME", self.process)


def read_skews(redis: Redis, keys: Keys, now: float) -> dict[str, float]:
    """The last skew of every process that compared within :data:`SKEW_STALE_AFTER_S`.

    Entries of processes gone longer than that are deleted, so the hash stays bounded.
    """
    raw = cast("dict[str | bytes, str | bytes]", redis.hgetall(keys.metrics_clock_skew()))
    skews: dict[str, float] = {}
    stale: list[str] = []
    for process, value in raw.items():
        try:
            entry = json.loads(text(value))
            if now - float(entry["at"]) <= SKEW_STALE_AFTER_S:
                skews[text(process)] = float(entry["skew_s"])
                continue
        except (ValueError, KeyError, TypeError):
            pass
        stale.append(text(process))
    if stale:
        redis.hdel(keys.metrics_clock_skew(), *stale)
    return skews
