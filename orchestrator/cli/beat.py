"""``krtc-rec beat``: the scheduler that starts a reconcile round every interval."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from orchestrator.cli.output import fail
from orchestrator.errors import OrchestratorError
from orchestrator.settings import load_settings

__all__ = ["beat"]


@click.command()
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option(
    "--schedule-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where beat keeps its schedule state [default: a file in the temporary directory].",
)
def beat(loglevel: str, schedule_file: Path | None) -> None:
    """Run Celery beat: a reconcile round every KRTC_RECONCILE_INTERVAL seconds.

    Running two (a deploy, an HA pair) is safe: a round begins only when none is under way and
    the last one began most of an interval ago, whichever beat ticks first.
    """
    try:
        settings = load_settings()
        from workers.app import create_app

        app = create_app(settings)
    except OrchestratorError as exc:
        fail(exc)
    path = schedule_file or Path(tempfile.gettempdir()) / f"krtc-beat-{settings.redis_prefix}"
    # Beat decides no time itself (due times and round spacing are Redis'), but its host's
    # clock is checked against Redis like every other process's.
    from orchestrator.jobs.context import JobContext, watch_skew

    watch_skew(JobContext.from_settings(settings), "beat", thread=True)
    app.Beat(loglevel=loglevel, schedule=str(path), quiet=True).run()
