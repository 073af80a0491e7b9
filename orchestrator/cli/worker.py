"""``krtc-rec worker``: a Celery worker that runs the recording jobs."""

from __future__ import annotations

import click

from orchestrator.cli.output import fail
from orchestrator.errors import OrchestratorError
from orchestrator.settings import load_settings

__all__ = ["worker"]

#: Pools that suit I/O-bound HTTP calls (threads by default: see the README's measurements).
_POOLS = ["threads", "prefork", "solo"]


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="Jobs run at once [default: KRTC_WORKER_CONCURRENCY, 32].",
)
@click.option("--pool", type=click.Choice(_POOLS), default="threads", show_default=True)
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option("--hostname", "-n", help="Worker name (default: celery@HOST, as Celery names it).")
def worker(concurrency: int | None, pool: str, loglevel: str, hostname: str | None) -> None:
    """Run a worker: consumes krtc-stop, krtc-schedule, krtc and krtc-reconcile, in that order.

    Configured from the environment (REDIS_URL, KRTC_*). Stop it with SIGTERM (or Ctrl-C): it
    finishes the jobs under way; a job cut short by SIGKILL is delivered again after
    KRTC_VISIBILITY_TIMEOUT seconds.
    """
    try:
        settings = load_settings()
        settings.credentials()
        from orchestrator.tasking.queues import QUEUES
        from workers import runtime
        from workers.app import create_app

        app = create_app(settings)
        # Cancelling running tasks on a broker connection loss needs a pool that can kill a
        # job; the threads and solo pools cannot, and Celery then stops the worker for good
        # (found by the Redis-restart test). There the tasks run on, and a task whose ack is
        # lost runs again after the visibility timeout: the jobs are idempotent per session.
        app.conf.worker_cancel_long_running_tasks_on_connection_loss = pool == "prefork"
        runtime.context(settings)  # fail now, not at the first job, on a bad configuration
    except OrchestratorError as exc:
        fail(exc)
    argv = [
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency or settings.worker_concurrency}",
        f"--queues={','.join(QUEUES)}",
        f"--loglevel={loglevel}",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
