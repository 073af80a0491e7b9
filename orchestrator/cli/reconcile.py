"""``krtc-rec reconcile --once``: one reconcile round in the foreground."""

from __future__ import annotations

import functools

import click

from orchestrator.cli.output import echo_json, fail
from orchestrator.errors import OrchestratorError
from orchestrator.settings import load_settings

__all__ = ["reconcile"]


@click.command()
@click.option("--once", is_flag=True, help="Run one round now (required: beat runs the rounds).")
@click.option("--json", "as_json", is_flag=True, help="Print every session's outcome as JSON.")
@click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True)
def reconcile(once: bool, as_json: bool, concurrency: int) -> None:
    """Query every unfinished session now, repair what differs, print what changed.

    Repairs that need a call other than query (a stop to issue again) are queued for the
    workers, as beat's rounds do. A session whose stored record does not decode is skipped
    (alert corrupt_session); see krtc-rec repair.
    """
    if not once:
        raise click.UsageError(
            "only --once is supported here; `krtc-rec beat` runs the rounds continuously"
        )
    try:
        settings = load_settings()
        from orchestrator.jobs.context import JobContext
        from orchestrator.reconcile.runner import run_once
        from orchestrator.tasking.app import sending_app
        from orchestrator.tasking.queues import send_task

        ctx = JobContext.from_settings(settings)
        ctx.enqueue = functools.partial(send_task, sending_app(settings))
        try:
            outcomes, seconds = run_once(ctx, concurrency=concurrency)
        finally:
            ctx.close()  # lets the alerts of this round reach their sinks
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json(
            {
                "seconds": round(seconds, 3),
                "sessions": [
                    {
                        "session": o.session_id,
                        "status": o.status,
                        "changes": o.changes,
                        "error": o.error,
                        "rate_limited": o.rate_limited,
                        "skipped": o.skipped,
                    }
                    for o in outcomes
                ],
            }
        )
        return
    changed = [o for o in outcomes if o.changes or o.error or o.rate_limited or o.skipped]
    for outcome in changed:
        for change in outcome.changes:
            click.echo(f"{outcome.session_id}  {change}")
        if outcome.error:
            click.echo(f"{outcome.session_id}  query failed: {outcome.error}")
        if outcome.rate_limited:
            click.echo(f"{outcome.session_id}  not queried: the rate limit of its appId")
        if outcome.skipped:
            click.echo(f"{outcome.session_id}  skipped: {outcome.skipped}")
    queried = sum(o.queried for o in outcomes)
    click.echo(
        f"{len(outcomes)} unfinished sessions, {queried} queried, "
        f"{sum(len(o.changes) for o in outcomes)} changes in {seconds:.2f}s",
        err=True,
    )
