"""``krtc-rec healthcheck``: the container health check of a worker or beat (one line, 0 or 1)."""

from __future__ import annotations

import sys

import click

from orchestrator.errors import OrchestratorError

__all__ = ["healthcheck", "EXIT_HEALTHY", "EXIT_UNHEALTHY", "ROLES"]

EXIT_HEALTHY = 0
#: Any failure, a bad configuration included: container engines read every code but 0 and 1 as
#: an error of the check itself (Docker reserves 2).
EXIT_UNHEALTHY = 1
ROLES = ("worker", "beat", "auto")


def _report(ok: bool, line: str) -> None:
    click.echo(f"{'healthy' if ok else 'unhealthy'}: {line}")
    sys.exit(EXIT_HEALTHY if ok else EXIT_UNHEALTHY)


@click.command()
@click.argument("role", type=click.Choice(ROLES), default="auto")
@click.option(
    "--hostname",
    "-n",
    help="The worker's name, as given to krtc-rec worker --hostname [default: celery@HOST, "
    "the name krtc-rec worker uses on this host].",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds the worker has to answer.",
)
@click.option(
    "--max-age",
    type=click.FloatRange(min=0),
    help="Oldest acceptable reconcile round, seconds [default: 3 x KRTC_RECONCILE_INTERVAL + 60].",
)
def healthcheck(role: str, hostname: str | None, timeout: float, max_age: float | None) -> None:
    """Check this container's worker or beat; print one line, exit 0 (healthy) or 1.

    \b
    worker  the worker of this host (and only it) answers a ping over the broker.
    beat    a reconcile round began within 3 x KRTC_RECONCILE_INTERVAL + 60 s, on Redis'
            clock (the workers run the rounds: with none running, beat fails too).
    auto    the role this container runs (the image's HEALTHCHECK); other roles pass.
    """
    from orchestrator import health

    if role == "auto":
        detected = health.container_role()
        if detected not in ("worker", "beat"):
            _report(True, f"no health check for role {detected or 'unknown'}")
        role = str(detected)
    try:
        from orchestrator.settings import load_settings

        settings = load_settings()
        if role == "worker":
            from orchestrator.tasking.app import sending_app

            name = hostname or health.local_worker_name()
            check = health.worker_health(sending_app(settings), name, timeout_s=timeout)
        else:
            from orchestrator.state import SessionStore

            store = SessionStore.from_settings(settings)
            check = health.beat_health(store, settings, max_age_s=max_age)
    except OrchestratorError as exc:
        _report(False, str(exc))
    _report(check.ok, check.detail)
