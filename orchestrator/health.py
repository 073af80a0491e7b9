"""Container health checks: is *this* worker alive, is beat's reconciling going on?

A container engine runs a health check often (every 30 s) and on every container, so each check
here is one cheap question with a one-line answer, unlike the doctor (:mod:`orchestrator.doctor`),
which looks at the whole deployment:

* the worker: does the worker of this host answer a ping over the broker? Only this container's
  worker is asked (``destination``), so one dead worker among ten is reported by its own container.
* beat: did a reconcile round begin lately? Rounds begin on Redis' clock every
  ``KRTC_RECONCILE_INTERVAL``; the last one older than three intervals plus a minute means beat
  (or the workers that run the rounds) stopped. Measured on Redis' clock, so this host's clock
  does not matter.

:func:`role_of` tells which role a container runs, for the image's own ``HEALTHCHECK``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from celery import Celery
from celery.utils.nodenames import default_nodename

from orchestrator.doctor import Check
from orchestrator.reconcile.rounds import RoundGate
from orchestrator.settings import Settings
from orchestrator.state import SessionStore

__all__ = [
    "DEFAULT_PING_TIMEOUT_S",
    "beat_health",
    "beat_max_age_s",
    "container_role",
    "local_worker_name",
    "role_of",
    "worker_health",
]

#: Seconds the worker has to answer the ping (a busy threads pool still answers at once: the
#: remote-control consumer does not wait for jobs).
DEFAULT_PING_TIMEOUT_S = 5.0


def local_worker_name() -> str:
    """The name ``krtc-rec worker`` gives its worker on this host when not told one:
    Celery's default, ``celery@HOSTNAME``."""
    return str(default_nodename(None))


def worker_health(celery: Celery, name: str, *, timeout_s: float = DEFAULT_PING_TIMEOUT_S) -> Check:
    """Ping the worker ``name`` (only it) over the broker.

    Args:
        celery: an app on the deployment's broker.
        name: the worker's node name (``celery@HOST``).
        timeout_s: how long to wait for the answer.

    Returns:
        A passed check when ``name`` answered ``pong`` in time.
    """
    try:
        replies = cast(
            "list[dict[str, Any]] | None",
            celery.control.ping(destination=[name], timeout=timeout_s),
        )
    except Exception as exc:  # kombu and redis-py errors alike: the broker is not reachable
        return Check("worker", False, f"cannot reach the broker: {type(exc).__name__}: {exc}")
    for reply in replies or []:
        answer = reply.get(name)
        if isinstance(answer, dict) and answer.get("ok") == "pong":
            return Check("worker", True, f"{name} answered the ping")
    return Check("worker", False, f"{name} did not answer a ping within {timeout_s:g}s")


def beat_max_age_s(settings: Settings) -> float:
    """The oldest the last reconcile round may be: three intervals plus a minute."""
    return 3 * settings.reconcile_interval + 60


def beat_health(
    store: SessionStore, settings: Settings, *, max_age_s: float | None = None
) -> Check:
    """Whether a reconcile round began within ``max_age_s`` (Redis' clock).

    Args:
        store: the deployment's session store (its clock is Redis' time).
        settings: for the reconcile interval.
        max_age_s: the oldest acceptable round [default: :func:`beat_max_age_s`].

    Returns:
        A failed check when no round finished yet, or the last one began too long ago.
    """
    limit = beat_max_age_s(settings) if max_age_s is None else max_age_s
    try:
        gate = RoundGate(store.redis, store.keys, interval_s=settings.reconcile_interval)
        recent = gate.recent(1)
        now = store.clock()
    except Exception as exc:  # StateError, redis-py errors: say which
        return Check("beat", False, f"cannot read the rounds: {type(exc).__name__}: {exc}")
    if not recent:
        return Check("beat", False, "no reconcile round has finished yet")
    age = now - recent[0].started
    detail = f"last reconcile round began {age:.0f}s ago (limit {limit:g}s)"
    return Check("beat", age <= limit, detail)


def role_of(cmdline: Sequence[str]) -> str | None:
    """The ``krtc-rec`` subcommand in a process' command line, if any.

    ``["/sbin/docker-init", "--", "krtc-rec", "worker"]`` and
    ``["/usr/local/bin/python", "/usr/local/bin/krtc-rec", "beat"]`` give ``worker`` and ``beat``.
    """
    for index, arg in enumerate(cmdline[:-1]):
        if Path(arg).name == "krtc-rec":
            return cmdline[index + 1]
    return None


def container_role(proc: Path = Path("/proc")) -> str | None:
    """The role of this container: the ``krtc-rec`` subcommand on its first process' command
    line (``init: true`` puts an init first, whose command line still holds ``krtc-rec ROLE``)."""
    try:
        raw = (proc / "1" / "cmdline").read_bytes()
    except OSError:
        return None
    return role_of([part.decode(errors="replace") for part in raw.split(b"\0") if part])
